//! Request field validation. Descriptions never repeat the offending value:
//! a secret pasted into the wrong field must not come back in an error.

use crate::{
    domain::catalog,
    domain::{KeyKind, key_format::is_key_id},
    error::{Error, FieldViolation},
};

/// Longest display name of a key.
pub const MAX_DISPLAY_NAME_LEN: usize = 100;

/// Most violations one error lists. A request can hold thousands of bad
/// entries, but the error travels in response headers, which hyper-based
/// clients cap at 16 KiB by default: past that the caller would get no
/// answer it can read instead of INVALID_ARGUMENT.
pub const MAX_LISTED_VIOLATIONS: usize = 10;

/// Collects the bad fields of a request, so one error names them all (up to
/// `MAX_LISTED_VIOLATIONS`, then how many more there are).
#[derive(Default)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    unlisted: usize,
}

impl Violations {
    pub fn add(&mut self, field: &str, description: &str) {
        if self.listed.len() == MAX_LISTED_VIOLATIONS {
            self.unlisted += 1;
            return;
        }
        self.listed.push(FieldViolation {
            field: field.to_owned(),
            description: description.to_owned(),
        });
    }

    /// Records `problem`, if any, against `field`.
    pub fn check(&mut self, field: &str, problem: Option<&str>) {
        if let Some(problem) = problem {
            self.add(field, problem);
        }
    }

    /// The row count and keyset position of a List request, recording a bad
    /// `page_size` or a `page_token` that `decode` does not accept.
    pub fn page<T>(
        &mut self,
        page_size: i32,
        page_token: &str,
        decode: impl FnOnce(&str) -> Option<T>,
    ) -> (u64, Option<T>) {
        let size = super::validate::page_size(page_size)
            .inspect_err(|problem| self.add("page_size", problem))
            .unwrap_or_default();
        if page_token.is_empty() {
            return (size, None);
        }
        let position = decode(page_token);
        if position.is_none() {
            self.add("page_token", super::page_token::INVALID);
        }
        (size, position)
    }

    /// `Err(BadRequest)` if anything was recorded.
    pub fn finish(mut self) -> Result<(), Error> {
        if self.listed.is_empty() {
            return Ok(());
        }
        if self.unlisted > 0 {
            self.listed.push(FieldViolation {
                field: "(more)".to_owned(),
                description: format!("{} more problems not listed", self.unlisted),
            });
        }
        Err(Error::BadRequest(self.listed))
    }
}

pub fn integration_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.chars().count() > catalog::MAX_NAME_LEN {
        Some("must be at most 63 characters")
    } else if !catalog::is_valid_integration_name(name) {
        Some("must match [a-z][a-z0-9-]{0,62}")
    } else {
        None
    }
}

pub fn integration_key_id(key_id: &str) -> Option<&'static str> {
    if key_id.is_empty() {
        Some("must not be empty")
    } else if !is_key_id(KeyKind::Integration, key_id) {
        Some("must be a key id: 'lki_' followed by 16 letters or digits (not the full key)")
    } else {
        None
    }
}

pub fn display_name(name: &str) -> Option<&'static str> {
    if name.chars().count() > MAX_DISPLAY_NAME_LEN {
        Some("must be at most 100 characters")
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

/// A page size as a row count: 0 means the default, large values are capped.
pub fn page_size(size: i32) -> Result<u64, &'static str> {
    match u64::try_from(size) {
        Err(_) => Err("must not be negative"),
        Ok(0) => Ok(super::DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(super::MAX_PAGE_SIZE)),
    }
}

/// A timestamp that must lie after `now`, as stored micros.
pub fn future_time(ts: &prost_types::Timestamp, now: i64) -> Result<i64, &'static str> {
    match crate::grpc::time::from_timestamp(ts) {
        None => Err("must be a valid timestamp"),
        Some(t) if t <= now => Err("must be in the future"),
        Some(t) => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_at_most_so_many_violations_then_counts_the_rest() {
        let mut v = Violations::default();
        for i in 0..1000 {
            v.add(&format!("items[{i}]"), "is bad");
        }
        let Err(Error::BadRequest(listed)) = v.finish() else {
            panic!("a bad request");
        };
        assert_eq!(listed.len(), MAX_LISTED_VIOLATIONS + 1);
        assert_eq!(listed[0].field, "items[0]");
        let last = listed.last().unwrap();
        assert_eq!(last.field, "(more)");
        assert_eq!(last.description, "990 more problems not listed");
    }
}
