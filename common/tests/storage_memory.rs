//! The conformance suite against [`MemoryStore`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hexyard_common::storage::MemoryStore;
use hexyard_common::testing::store_conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conformance() {
    let store = MemoryStore::new();
    store_conformance(&store).await;
    // The suite leaves nothing behind.
    use hexyard_common::storage::{KeyPrefix, Store};
    assert!(store.list(&KeyPrefix::All).await.unwrap().is_empty());
}
