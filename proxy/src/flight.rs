//! Single flight: concurrent callers asking for the same key share one execution of the work
//! (one upstream request for 200 concurrent misses on one tarball).

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// In-flight work by key. `T` is cloned to every waiter.
pub struct Flights<T: Clone> {
    map: Mutex<HashMap<String, Shared<BoxFuture<'static, T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// Runs `work` for `key`, unless a run for `key` is already in flight, in which case its
    /// result is awaited instead. `work` is only polled by the callers, so a caller that goes
    /// away does not cancel it for the others (the next waiter drives it).
    pub async fn run<F>(&self, key: &str, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (fut, leader) = {
            let mut map = match self.map.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            match map.get(key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = work.boxed().shared();
                    map.insert(key.to_owned(), f.clone());
                    (f, true)
                }
            }
        };
        let out = fut.clone().await;
        if leader || !self.is_current(key, &fut) {
            let mut map = match self.map.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            if map.get(key).is_some_and(|f| f.ptr_eq(&fut)) {
                map.remove(key);
            }
        }
        out
    }

    fn is_current(&self, key: &str, fut: &Shared<BoxFuture<'static, T>>) -> bool {
        self.map
            .lock()
            .map(|m| m.get(key).is_some_and(|f| f.ptr_eq(fut)))
            .unwrap_or(false)
    }

    /// Keys in flight (for tests and metrics).
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run() {
        let flights = Arc::new(Flights::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..200 {
            let (f, r) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                f.run("k", async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    r.fetch_add(1, Ordering::SeqCst) + 1
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
        // A later call runs again.
        let r = runs.clone();
        let v = flights
            .run("k", async move { r.fetch_add(1, Ordering::SeqCst) + 1 })
            .await;
        assert_eq!(v, 2);
    }
}
