//! [`LocalStore`]: the conformance suite, plus what only a file-system store can get wrong:
//! several instances (processes) on one root, left-over temporary files, the on-disk layout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hexyard_common::storage::{KeyPrefix, LocalStore, PutMode, StorageKey, Store, StoreError};
use hexyard_common::testing::{fixtures_dir, store_conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("data")).unwrap();
    assert_eq!(
        store.describe(),
        format!(
            "local:{}",
            fs::canonicalize(dir.path().join("data")).unwrap().display()
        )
    );
    store_conformance(&store).await;
    // Nothing left in the temporary directory after all those writes.
    let tmp: Vec<_> = fs::read_dir(store.root().join(".tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_live_at_their_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let k = StorageKey::tarball("r", "foo", "1.0.0-rc.1").unwrap();
    store
        .put(&k, Bytes::from_static(b"tar"), PutMode::CreateOnly)
        .await
        .unwrap();
    let on_disk = fs::read(store.root().join("repos/r/tarballs/foo-1.0.0-rc.1.tar")).unwrap();
    assert_eq!(on_disk, b"tar");
}

/// Two independent stores on one root behave like two processes: the lock files, not in-memory
/// state, serialize their conditional writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_race_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(LocalStore::new(dir.path()).unwrap());
    let b = Arc::new(LocalStore::new(dir.path()).unwrap());
    let k = StorageKey::names("r").unwrap();
    for round in 0..5 {
        let base = a
            .put(&k, Bytes::from(format!("base {round}")), PutMode::Overwrite)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (k, etag) = (k.clone(), base.etag.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .put(&k, Bytes::from(format!("w{i}")), PutMode::IfMatch(etag))
                    .await
                    .map(|_| i)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(i) => winners.push(i),
                Err(StoreError::PreconditionFailed) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let seen_by_b = b.get(&k).await.unwrap().unwrap();
        assert_eq!(seen_by_b.body, Bytes::from(format!("w{}", winners[0])));
        assert_eq!(a.head(&k).await.unwrap().unwrap(), seen_by_b.meta);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_temp_files_are_not_listed_and_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let k = StorageKey::package("r", "foo").unwrap();
    store
        .put(&k, Bytes::from_static(b"pkg"), PutMode::CreateOnly)
        .await
        .unwrap();
    let root = store.root().to_path_buf();
    // A crashed writer's left-over, an in-flight write of another process, and a stray
    // `.tmp-` file beside the objects.
    let stale = root.join(".tmp/.tmp-crashed");
    let fresh = root.join(".tmp/.tmp-inflight");
    let beside = root.join("repos/r/packages/.tmp-stray");
    for p in [&stale, &fresh, &beside] {
        fs::write(p, b"partial").unwrap();
    }
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();

    for prefix in [KeyPrefix::All, KeyPrefix::packages("r").unwrap()] {
        let listed: Vec<String> = store
            .list(&prefix)
            .await
            .unwrap()
            .iter()
            .map(|e| e.key.path())
            .collect();
        assert_eq!(listed, ["repos/r/packages/foo"]);
    }

    // Opening a store (start-up) removes only the stale temporary file.
    let _reopened = LocalStore::new(dir.path()).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
    assert_eq!(store.clean_temp_files(Duration::ZERO).unwrap(), 1);
    assert!(!fresh.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_in_place_of_an_object_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    fs::create_dir_all(store.root().join("repos/r/names")).unwrap();
    let k = StorageKey::names("r").unwrap();
    assert!(matches!(store.get(&k).await, Err(StoreError::Corrupt(_))));
    assert!(matches!(store.head(&k).await, Err(StoreError::Corrupt(_))));
    assert!(store.list(&KeyPrefix::All).await.unwrap().is_empty());
}

/// The real registry tree written by `mix hex.registry build`: every file maps to a key, and
/// stores and reads back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_registry_round_trip() {
    let registry = fixtures_dir().join("registry");
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path()).unwrap();
    let mut stored = Vec::new();
    for sub in ["", "packages", "tarballs"] {
        for entry in fs::read_dir(registry.join(sub)).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_file() {
                continue;
            }
            let rel = if sub.is_empty() {
                entry.file_name().into_string().unwrap()
            } else {
                format!("{sub}/{}", entry.file_name().into_string().unwrap())
            };
            let path = format!("repos/fixture_repo/{rel}");
            let key = StorageKey::from_path(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(key.path(), path);
            let body = fs::read(entry.path()).unwrap();
            store
                .put(&key, Bytes::from(body.clone()), PutMode::CreateOnly)
                .await
                .unwrap();
            stored.push((key, body));
        }
    }
    // names, versions, public_key, 6 package files, 8 tarballs.
    assert_eq!(stored.len(), 17);
    assert!(
        stored
            .iter()
            .any(|(k, _)| *k
                == StorageKey::tarball("fixture_repo", "fx_core", "1.0.0-rc.1").unwrap())
    );
    for (key, body) in &stored {
        assert_eq!(store.get(key).await.unwrap().unwrap().body, body.as_slice());
    }
    let tarballs = store
        .list(&KeyPrefix::tarballs("fixture_repo").unwrap())
        .await
        .unwrap();
    assert_eq!(tarballs.len(), 8);
}
