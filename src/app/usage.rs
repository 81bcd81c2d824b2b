//! `last_use_time`, batched: verifications note the time in memory and a
//! background task writes the latest per key every flush interval, so a hot
//! key costs no database write per verify.

use std::{collections::HashMap, sync::Mutex};

use sea_orm::{DatabaseConnection, DbErr};

use crate::store;

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<String, i64>>,
}

impl UsageRecorder {
    /// Notes that `key_id` was used at `time`.
    pub fn record(&self, key_id: &str, time: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(key_id) {
            Some(latest) => *latest = (*latest).max(time),
            None => {
                pending.insert(key_id.to_owned(), time);
            }
        }
    }

    /// Writes everything noted so far. On failure the uses are kept for the
    /// next flush.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let count = batch.len();
        let mut rest = batch.into_iter();
        while let Some((key_id, time)) = rest.next() {
            if let Err(e) = store::integration_keys::record_use(db, &key_id, time).await {
                self.record(&key_id, time);
                for (key_id, time) in rest {
                    self.record(&key_id, time);
                }
                return Err(e);
            }
        }
        Ok(count)
    }
}
