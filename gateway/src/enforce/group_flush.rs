//! Group commit for the lock index.
//!
//! A locked write may reach the backend only once its pending record is on disk. Flushing
//! from the request's own task would block a runtime thread for the length of an fsync, and
//! every other request on that thread with it; flushing once per request would queue the
//! requests behind one fsync each. Instead one thread flushes: a request stages its record,
//! asks for a flush and waits. The thread takes every request that has arrived, flushes once
//! and answers them all, so concurrent writes share one fsync. A flush started after a
//! request arrived covers every record that request staged before asking.

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use policy::index::{IndexError, IndexResult, LockIndex};
use tokio::sync::oneshot;

use crate::error::GatewayError;

type Waiter = oneshot::Sender<IndexResult<()>>;

/// Hands out flushes of one index; the thread behind it ends when this is dropped.
pub struct GroupFlush {
    requests: mpsc::Sender<Waiter>,
}

impl GroupFlush {
    /// Starts the flushing thread. It holds the index weakly: dropping the gateway's last
    /// handle closes the index, whatever the thread is doing.
    ///
    /// # Panics
    /// The operating system refuses a new thread.
    #[must_use]
    pub fn start(index: &Arc<dyn LockIndex>) -> Self {
        let (requests, incoming) = mpsc::channel::<Waiter>();
        let index: Weak<dyn LockIndex> = Arc::downgrade(index);
        let spawned = std::thread::Builder::new()
            .name("index-flush".into())
            .spawn(move || {
                while let Ok(first) = incoming.recv() {
                    let mut waiting = vec![first];
                    waiting.extend(incoming.try_iter());
                    let result = match index.upgrade() {
                        Some(index) => index.flush(),
                        None => Err(IndexError::Storage("the index is closed".into())),
                    };
                    for waiter in waiting {
                        let _ = waiter.send(result.clone());
                    }
                }
            });
        if let Err(e) = spawned {
            panic!("cannot start the lock index's flushing thread: {e}");
        }
        Self { requests }
    }

    /// Returns once everything the index holds now is on disk.
    ///
    /// # Errors
    /// The flush failed, or the flushing thread is gone: the caller must not proceed as if
    /// its record were durable (fail closed).
    pub async fn flush(&self) -> Result<(), GatewayError> {
        let (tx, rx) = oneshot::channel();
        let gone = || GatewayError::IndexUnavailable("the index's flushing thread stopped".into());
        self.requests.send(tx).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(GatewayError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::index::{LockRecord, LockSource, SledIndex};
    use policy::lock::{ObjectLock, ObjectRef, Retention, RetentionMode};

    fn record(key: &str) -> LockRecord {
        let until = chrono::Utc::now() + chrono::Duration::days(1);
        let lock = ObjectLock {
            retention: Some(Retention {
                mode: RetentionMode::Compliance,
                until,
            }),
            ..ObjectLock::default()
        };
        LockRecord::new(
            ObjectRef::new("b", key, None),
            lock,
            LockSource::Header,
            chrono::Utc::now(),
        )
    }

    #[tokio::test]
    async fn concurrent_flushes_all_return() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index: Arc<dyn LockIndex> = Arc::new(SledIndex::open(dir.path()).expect("open"));
        let flusher = Arc::new(GroupFlush::start(&index));
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (index, flusher) = (Arc::clone(&index), Arc::clone(&flusher));
            tasks.push(tokio::spawn(async move {
                index.begin(&record(&format!("k{i}"))).expect("begin");
                flusher.flush().await
            }));
        }
        for t in tasks {
            t.await.expect("joins").expect("flushed");
        }
        assert_eq!(index.pending().expect("pending").len(), 64);
    }

    #[tokio::test]
    async fn a_closed_index_refuses_instead_of_pretending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index: Arc<dyn LockIndex> = Arc::new(SledIndex::open(dir.path()).expect("open"));
        let flusher = GroupFlush::start(&index);
        drop(index);
        assert!(matches!(
            flusher.flush().await,
            Err(GatewayError::IndexUnavailable(_))
        ));
    }
}
