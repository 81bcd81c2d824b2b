//! The feed of key and grant changes that `WatchKeyChanges` streams to
//! resource servers' guards: this replica's own changes and those other
//! replicas announce, and a reset whenever changes may have been missed.
//!
//! One bounded broadcast buffer for all subscribers: a subscriber that
//! falls behind by more than it holds gets a reset instead of the changes
//! it missed, so a slow subscriber never costs unbounded memory.

use tokio::sync::{broadcast, watch};

/// One change, as `WatchKeyChangesResponse` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Changes may have been missed: drop every cached verdict.
    Reset,
    /// The key with this id changed.
    Key(String),
    /// The grants of the integration with this name changed.
    Integration(String),
}

pub struct KeyChangeFeed {
    changes: broadcast::Sender<KeyChange>,
    /// True once the server shuts down: every stream ends.
    closed: watch::Sender<bool>,
}

impl KeyChangeFeed {
    /// A feed whose subscribers may fall `buffer` changes behind.
    pub fn new(buffer: usize) -> Self {
        Self {
            changes: broadcast::channel(buffer.max(1)).0,
            closed: watch::channel(false).0,
        }
    }

    /// Tells every subscriber (none: nothing to do).
    pub fn publish(&self, change: KeyChange) {
        let _ = self.changes.send(change);
    }

    /// Ends every subscription (at shutdown: streams must not hold the
    /// drain open).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A subscription whose first change is `Reset`.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            changes: self.changes.subscribe(),
            closed: self.closed.subscribe(),
            started: false,
        }
    }
}

pub struct Subscription {
    changes: broadcast::Receiver<KeyChange>,
    closed: watch::Receiver<bool>,
    started: bool,
}

impl Subscription {
    /// The next change; `None` once the feed is closed.
    pub async fn next(&mut self) -> Option<KeyChange> {
        if *self.closed.borrow() {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(KeyChange::Reset);
        }
        tokio::select! {
            _ = self.closed.wait_for(|closed| *closed) => None,
            received = self.changes.recv() => match received {
                Ok(change) => Some(change),
                // Fell behind: what was missed is unknown, so reset.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(KeyChange::Reset),
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_with_a_reset_and_resets_a_subscriber_that_fell_behind() {
        let feed = KeyChangeFeed::new(4);
        let mut subscription = feed.subscribe();
        assert_eq!(subscription.next().await, Some(KeyChange::Reset));
        feed.publish(KeyChange::Key("lki_a".into()));
        assert_eq!(
            subscription.next().await,
            Some(KeyChange::Key("lki_a".into()))
        );
        // Ten changes into a buffer of four, unread: a reset, then the
        // newest ones the buffer still holds, in order.
        for i in 0..10 {
            feed.publish(KeyChange::Key(format!("lki_{i}")));
        }
        assert_eq!(subscription.next().await, Some(KeyChange::Reset));
        assert_eq!(
            subscription.next().await,
            Some(KeyChange::Key("lki_6".into()))
        );
        feed.close();
        assert_eq!(subscription.next().await, None);
        assert_eq!(feed.subscribe().next().await, None);
    }
}
