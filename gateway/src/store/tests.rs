use super::*;
use std::sync::Mutex;

/// A shared store whose subscriptions stay open but never deliver (a dropped connection
/// nobody noticed) and whose heartbeats go nowhere.
#[derive(Default)]
struct SilentStore {
    subscriptions: Mutex<Vec<tokio::sync::mpsc::Sender<String>>>,
    published: Mutex<Vec<String>>,
}

#[async_trait]
impl Store for SilentStore {
    async fn put(&self, _: &str, _: &[u8], _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn put_if_absent(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    async fn take(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    async fn compare_and_swap(
        &self,
        _: &str,
        _: &[u8],
        _: &[u8],
        _: Duration,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn delete(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn take_if(&self, _: &str, _: &[u8]) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn decr(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn incr(&self, _: &str, _: Duration) -> Result<u64, StoreError> {
        Ok(1)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn publish_event(&self, event: &str) -> Result<(), StoreError> {
        self.published.lock().expect("lock").push(event.to_string());
        Ok(())
    }
    async fn subscribe_events(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        self.subscriptions.lock().expect("lock").push(tx);
        Ok(Some(rx))
    }
}

/// A subscription that hears nothing, not even its own heartbeats, is given up after
/// three heartbeat periods and made again; one that hears events stays.
#[tokio::test(start_paused = true)]
async fn a_silent_subscription_is_taken_as_dead_and_made_again() {
    let store = SilentStore::default();
    let metrics = crate::metrics::Metrics::new().expect("metrics");
    let state = arc_swap::ArcSwap::from_pointee(EventsState::Disconnected);
    let follower = Follower {
        store: &store,
        metrics: &metrics,
        state: &state,
    };
    let subscribed = std::sync::atomic::AtomicUsize::new(0);
    let heard = Mutex::new(Vec::new());
    let follow = follower.follow(
        || {
            subscribed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        },
        |event: &str| heard.lock().expect("lock").push(event.to_string()),
    );
    let watch = async {
        // Within the silence bound: one subscription, connected, heartbeats sent.
        tokio::time::sleep(HEARTBEAT_EVERY * 2).await;
        assert_eq!(subscribed.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(**state.load(), EventsState::Connected);
        assert!(!store.published.lock().expect("lock").is_empty());
        // Past it: given up and subscribed again.
        tokio::time::sleep(HEARTBEAT_EVERY * 2 + RESUBSCRIBE_MIN * 2).await;
        assert_eq!(subscribed.load(std::sync::atomic::Ordering::Relaxed), 2);
        // A subscription that hears events (a revocation, then heartbeats) stays.
        let tx = store.subscriptions.lock().expect("lock").last().cloned();
        let tx = tx.expect("a subscription");
        tx.send("revoked abc".into()).await.expect("send");
        for _ in 0..6 {
            tokio::time::sleep(HEARTBEAT_EVERY).await;
            tx.send(HEARTBEAT.into()).await.expect("send");
        }
        assert_eq!(subscribed.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(*heard.lock().expect("lock"), ["revoked abc"]);
    };
    tokio::select! {
        _ = follow => panic!("the follower stopped"),
        _ = watch => {}
    }
}
