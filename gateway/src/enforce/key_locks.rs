//! Per-key serialisation: two requests that decide about the same object key wait for each
//! other; requests on different keys never do.
//!
//! A decision and the backend call it permits must not interleave with another decision on the
//! same key (a delete allowed on facts that a concurrent locked PUT is about to change). The map
//! holds an entry only while someone holds or waits for it.

use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{Mutex, OwnedMutexGuard};

type Key = (String, String);

#[derive(Default)]
pub struct KeyLocks {
    map: Arc<DashMap<Key, Arc<Mutex<()>>>>,
}

/// Held while one request decides and acts on a key.
pub struct KeyGuard {
    map: Arc<DashMap<Key, Arc<Mutex<()>>>>,
    key: Key,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for the key to be free, then holds it until the guard drops.
    pub async fn lock(&self, bucket: &str, key: &str) -> KeyGuard {
        let k = (bucket.to_owned(), key.to_owned());
        let mutex = self.map.entry(k.clone()).or_default().clone();
        let guard = mutex.lock_owned().await;
        KeyGuard {
            map: self.map.clone(),
            key: k,
            guard: Some(guard),
        }
    }

    /// Locks several keys of one bucket, in sorted order so that two batches never deadlock.
    pub async fn lock_all(
        &self,
        bucket: &str,
        keys: impl IntoIterator<Item = &str>,
    ) -> Vec<KeyGuard> {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for k in keys {
            guards.push(self.lock(bucket, k).await);
        }
        guards
    }

    /// No key is held or waited for.
    #[cfg(test)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard.take();
        // The map and this guard hold one reference each when nobody else waits.
        self.map
            .remove_if(&self.key, |_, m| Arc::strong_count(m) == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_waits_other_keys_do_not() {
        let locks = Arc::new(KeyLocks::default());
        let held = locks.lock("b", "k").await;
        // Another key is free.
        let other = tokio::time::timeout(Duration::from_secs(5), locks.lock("b", "j"))
            .await
            .expect("other key must not wait");
        drop(other);
        // The same key waits until the first guard drops.
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock("b", "k").await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        let g = waiter.await.expect("join");
        drop(g);
        assert!(locks.is_empty());
    }
}
