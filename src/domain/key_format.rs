//! The key format: `<prefix>_<16 base62>_<43 base62 secret><6 base62 CRC32>`.
//!
//! The key id (`<prefix>_<16 base62>`) is public. The checksum lets secret
//! scanners recognise a leaked key, and lets the server reject typos and
//! garbage without touching the database or a hash.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Random base62 characters after the prefix in a key id (~95 bits).
pub const KEY_ID_RANDOM_LEN: usize = 16;
/// Base62 characters of the secret (~256 bits).
pub const SECRET_LEN: usize = 43;
/// Base62 characters of the CRC32 checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a key id: prefix (3) + `_` + random part.
pub const KEY_ID_LEN: usize = 3 + 1 + KEY_ID_RANDOM_LEN;
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Which kind of key, told apart by the key id's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `lki`: held by an integration, checked by VerifyIntegrationKey.
    Integration,
    /// `lkp`: an admin's key for management calls.
    Partner,
}

impl KeyKind {
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Integration => "lki",
            KeyKind::Partner => "lkp",
        }
    }
}

/// Why a presented string is not a key of the expected kind. Carries nothing
/// of the input, so it can be logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not a latchkey key")]
    Shape,
    #[error("key checksum mismatch")]
    Checksum,
}

/// A whole key in the clear. Its `Debug` shows only the key id, and its
/// memory is zeroed on drop.
pub struct ApiKey {
    full: Zeroizing<String>,
}

impl ApiKey {
    /// A new random key of `kind`, from the OS CSPRNG.
    pub fn generate(kind: KeyKind) -> Result<Self, getrandom::Error> {
        let mut full = Zeroizing::new(String::with_capacity(KEY_LEN));
        full.push_str(kind.prefix());
        full.push('_');
        push_random_base62(&mut full, KEY_ID_RANDOM_LEN)?;
        full.push('_');
        push_random_base62(&mut full, SECRET_LEN)?;
        let checksum = checksum(full.as_bytes());
        full.push_str(&checksum);
        Ok(Self { full })
    }

    /// Checks that `presented` is a well-formed key of `kind` with a correct
    /// checksum. Takes ownership so the input is zeroed whatever the outcome.
    pub fn parse(kind: KeyKind, presented: String) -> Result<Self, Malformed> {
        let full = Zeroizing::new(presented);
        let bytes = full.as_bytes();
        // ASCII first: the checks below slice at byte offsets, which must be
        // char boundaries (found by the key_format fuzzer).
        if bytes.len() != KEY_LEN
            || !bytes.is_ascii()
            || !is_key_id(kind, &full[..KEY_ID_LEN])
            || bytes[KEY_ID_LEN] != b'_'
            || !all_alphanumeric(&bytes[KEY_ID_LEN + 1..])
        {
            return Err(Malformed::Shape);
        }
        let (body, sum) = full.split_at(KEY_LEN - CHECKSUM_LEN);
        // Constant-time like every comparison of a digest, though a CRC of
        // the caller's own input reveals nothing they do not know.
        if !bool::from(checksum_digits(body.as_bytes()).ct_eq(sum.as_bytes())) {
            return Err(Malformed::Checksum);
        }
        Ok(Self { full })
    }

    /// The public key id, e.g. `lki_3kTMd9xPq0aZ7bWc`.
    pub fn key_id(&self) -> &str {
        &self.full[..KEY_ID_LEN]
    }

    /// The secret part alone (between the key id and the checksum): what a
    /// cache keyed by key id needs to tell the right key from a forgery.
    pub fn expose_secret_part(&self) -> &str {
        &self.full[KEY_ID_LEN + 1..KEY_LEN - CHECKSUM_LEN]
    }

    /// The whole key in the clear. Only for hashing, and for the one response
    /// that hands a new key to its owner.
    pub fn expose_secret(&self) -> &str {
        &self.full
    }

    /// The whole key as a secret to hand over once (the answer that
    /// creates it); this copy is zeroed.
    pub fn into_secret(self) -> secrecy::SecretString {
        secrecy::SecretString::from(self.full.as_str())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}_<redacted>)", self.key_id())
    }
}

/// Whether `s` is a well-formed key id of `kind` (no checksum: ids are public).
pub fn is_key_id(kind: KeyKind, s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == KEY_ID_LEN
        && s.starts_with(kind.prefix())
        && bytes[3] == b'_'
        && all_alphanumeric(&bytes[4..])
}

/// Whether every byte is an ASCII letter or digit: one table lookup per
/// byte and no early exit (every verify checks 65 of them).
fn all_alphanumeric(bytes: &[u8]) -> bool {
    const ALPHANUMERIC: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = (b as u8).is_ascii_alphanumeric();
            b += 1;
        }
        table
    };
    bytes
        .iter()
        .fold(true, |all, &b| all & ALPHANUMERIC[usize::from(b)])
}

/// CRC32 (IEEE) of `body`, in base62, most significant digit first, padded to
/// six characters with `0`.
pub fn checksum(body: &[u8]) -> String {
    checksum_digits(body).iter().map(|&b| b as char).collect()
}

/// `checksum` as its ASCII digits, without allocating (every verify
/// parses a key).
fn checksum_digits(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body);
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

/// Appends `count` uniformly random base62 characters. Bytes of 248 and above
/// are discarded so that `byte % 62` is unbiased (248 = 4 * 62).
fn push_random_base62(out: &mut String, count: usize) -> Result<(), getrandom::Error> {
    let mut pushed = 0;
    let mut buf = Zeroizing::new([0u8; 64]);
    while pushed < count {
        getrandom::fill(buf.as_mut())?;
        for &b in buf.iter().filter(|&&b| b < 248) {
            if pushed == count {
                break;
            }
            out.push(BASE62[(b % 62) as usize] as char);
            pushed += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphanumeric_table_agrees_with_std() {
        for b in 0..=u8::MAX {
            assert_eq!(all_alphanumeric(&[b]), b.is_ascii_alphanumeric(), "{b}");
        }
        assert!(all_alphanumeric(b"aZ09"));
        assert!(!all_alphanumeric(b"aZ-09"));
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let s = key.expose_secret();
        assert_eq!(s.len(), KEY_LEN);
        assert!(s.starts_with("lki_"));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(key.key_id(), &s[..20]);
        assert_eq!(&s[20..21], "_");
        assert_eq!(checksum(&s.as_bytes()[..64]), &s[64..]);
    }

    #[test]
    fn generated_keys_parse_back() {
        for kind in [KeyKind::Integration, KeyKind::Partner] {
            let key = ApiKey::generate(kind).unwrap();
            let parsed = ApiKey::parse(kind, key.expose_secret().to_owned()).unwrap();
            assert_eq!(parsed.key_id(), key.key_id());
        }
    }

    #[test]
    fn parse_rejects_the_wrong_kind_a_typo_and_garbage() {
        let key = ApiKey::generate(KeyKind::Integration).unwrap();
        let s = key.expose_secret().to_owned();
        assert_eq!(
            ApiKey::parse(KeyKind::Partner, s.clone()).unwrap_err(),
            Malformed::Shape
        );
        let mut typo = s.into_bytes();
        typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            ApiKey::parse(KeyKind::Integration, typo).unwrap_err(),
            Malformed::Checksum
        );
        for garbage in ["", "lki_", "hello", &"x".repeat(KEY_LEN), &"é".repeat(35)] {
            assert_eq!(
                ApiKey::parse(KeyKind::Integration, garbage.to_owned()).unwrap_err(),
                Malformed::Shape
            );
        }
    }

    #[test]
    fn parse_rejects_multibyte_characters_at_the_id_boundary() {
        // fuzz/artifacts/key_format/crash-67c72a1c…: a 70-byte string with a
        // three-byte character across byte 20 made `parse` panic.
        let crash: &[u8] = &[
            108, 107, 105, 95, 70, 117, 122, 187, 83, 101, 101, 100, 75, 255, 255, 255, 255, 255,
            255, 255, 107, 70, 117, 122, 83, 106, 101, 101, 100, 83, 101, 99, 114, 116, 78, 111,
            108, 107, 105, 95, 70, 117, 122, 131, 83, 101, 101, 100, 75, 116, 65, 82,
        ];
        let presented = String::from_utf8_lossy(crash).into_owned();
        assert_eq!(presented.len(), KEY_LEN);
        for kind in [KeyKind::Integration, KeyKind::Partner] {
            assert_eq!(
                ApiKey::parse(kind, presented.clone()).unwrap_err(),
                Malformed::Shape
            );
        }
        // A two-byte character at every offset of an otherwise key-length
        // string: never a panic, always Shape.
        for offset in 0..=KEY_LEN - 2 {
            let mut presented = "a".repeat(KEY_LEN - 2);
            presented.insert(offset, 'é');
            assert_eq!(presented.len(), KEY_LEN);
            assert_eq!(
                ApiKey::parse(KeyKind::Integration, presented).unwrap_err(),
                Malformed::Shape
            );
        }
    }

    #[test]
    fn checksum_is_crc32_in_padded_base62() {
        // crc32("") == 0
        assert_eq!(checksum(b""), "000000");
        // crc32("123456789") == 0xCBF43926 == 3421780262 == "3jZRME" in base62.
        assert_eq!(checksum(b"123456789"), "3jZRME");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate(KeyKind::Partner).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.key_id()));
        assert!(!shown.contains(&key.expose_secret()[21..]));
    }
}
