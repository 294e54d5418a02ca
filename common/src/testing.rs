//! Test helpers shared by the crates' tests (feature `testing`): the storage conformance suite
//! and the location of the golden fixtures.
//!
//! These helpers panic (via `assert!`) on failure: they are meant to be called from tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fuzz;
pub mod ports;
pub mod s3;

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::storage::{KeyPrefix, PutMode, StorageKey, Store, StoreError, Written};

/// The `shared/fixtures/hex` directory: `<manifest>/../../shared/fixtures/hex` (checkout next to
/// `shared/`), else `<manifest>/../shared/fixtures/hex`. Returns the first candidate when none
/// exists, so a test fails on a readable path.
pub fn fixtures_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../shared/fixtures/hex"),
        manifest.join("../shared/fixtures/hex"),
    ];
    candidates
        .iter()
        .find(|p| p.is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Repositories the conformance suite writes into; emptied when the suite starts.
pub const CONFORMANCE_REPOS: [&str; 4] = ["conf_a", "conf_a_b", "conf_many", "conf_race"];

fn key_pkg(repo: &str, name: &str) -> StorageKey {
    StorageKey::package(repo, name).unwrap()
}

async fn clear(store: &dyn Store) {
    for repo in CONFORMANCE_REPOS {
        for entry in store.list(&KeyPrefix::repo(repo).unwrap()).await.unwrap() {
            store.delete(&entry.key).await.unwrap();
        }
    }
}

async fn body_of(store: &dyn Store, key: &StorageKey) -> Option<Bytes> {
    store.get(key).await.unwrap().map(|o| o.body)
}

/// The behaviour every [`Store`] backend must show. Panics on the first deviation. Works on a
/// store that holds other data: it only touches the repositories in [`CONFORMANCE_REPOS`], which
/// it empties first.
pub async fn store_conformance(store: &dyn Store) {
    clear(store).await;
    assert!(!store.describe().is_empty());
    missing(store).await;
    round_trip_and_modes(store).await;
    listing_without_bleed(store).await;
    many_keys(store).await;
    large_body(store).await;
    if_match_race(store).await;
    create_only_race(store).await;
    clear(store).await;
}

async fn missing(store: &dyn Store) {
    let k = key_pkg("conf_a", "missing");
    assert!(
        store.get(&k).await.unwrap().is_none(),
        "get of a missing key"
    );
    assert!(
        store.head(&k).await.unwrap().is_none(),
        "head of a missing key"
    );
    assert!(store.get_stream(&k).await.unwrap().is_none());
    assert!(!store.delete(&k).await.unwrap(), "delete of a missing key");
    assert!(
        store
            .list(&KeyPrefix::repo("conf_a").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn round_trip_and_modes(store: &dyn Store) {
    let k = key_pkg("conf_a", "foo");
    let v1 = Bytes::from_static(b"version one");
    let m1 = store
        .put(&k, v1.clone(), PutMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(m1.size, v1.len() as u64);
    assert!(
        m1.etag.len() > 2 && m1.etag.starts_with('"') && m1.etag.ends_with('"'),
        "etag must be quoted: {}",
        m1.etag
    );
    let got = store.get(&k).await.unwrap().unwrap();
    assert_eq!(got.body, v1);
    assert_eq!(Written::from(got.meta.clone()), m1);
    assert_eq!(store.head(&k).await.unwrap().unwrap(), got.meta);

    // CreateOnly on an existing key: AlreadyExists, content unchanged.
    let err = store
        .put(&k, Bytes::from_static(b"intruder"), PutMode::CreateOnly)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    assert_eq!(store.get(&k).await.unwrap().unwrap(), got);

    // Overwrite replaces and changes the etag, even with the same length.
    let v2 = Bytes::from_static(b"version two");
    let m2 = store.put(&k, v2.clone(), PutMode::Overwrite).await.unwrap();
    assert_ne!(m2.etag, m1.etag);
    assert_eq!(body_of(store, &k).await.unwrap(), v2);

    // IfMatch with the current etag succeeds and yields a new etag.
    let v3 = Bytes::from_static(b"version three");
    let m3 = store
        .put(&k, v3.clone(), PutMode::IfMatch(m2.etag.clone()))
        .await
        .unwrap();
    assert_ne!(m3.etag, m2.etag);
    assert_ne!(m3.etag, m1.etag);
    assert_eq!(store.head(&k).await.unwrap().unwrap().etag, m3.etag);

    // IfMatch with a stale etag: PreconditionFailed, content unchanged.
    for stale in [m2.etag.clone(), m1.etag.clone(), "\"bogus\"".to_owned()] {
        let err = store
            .put(&k, Bytes::from_static(b"lost"), PutMode::IfMatch(stale))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PreconditionFailed), "{err:?}");
    }
    assert_eq!(body_of(store, &k).await.unwrap(), v3);

    // get_stream yields the same body and metadata.
    let (meta, stream) = store.get_stream(&k).await.unwrap().unwrap();
    assert_eq!(meta.etag, m3.etag);
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), v3.to_vec());

    // IfMatch on a missing key.
    let absent = key_pkg("conf_a", "absent");
    let err = store
        .put(
            &absent,
            Bytes::from_static(b"x"),
            PutMode::IfMatch(m3.etag.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed), "{err:?}");
    assert!(store.head(&absent).await.unwrap().is_none());

    // An empty body is a valid object.
    let empty = key_pkg("conf_a", "empty");
    let me = store
        .put(&empty, Bytes::new(), PutMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(me.size, 0);
    assert_eq!(body_of(store, &empty).await.unwrap(), Bytes::new());

    // Delete, then the key is gone; a second delete reports false.
    assert!(store.delete(&k).await.unwrap());
    assert!(store.get(&k).await.unwrap().is_none());
    assert!(store.head(&k).await.unwrap().is_none());
    assert!(!store.delete(&k).await.unwrap());
    assert!(store.delete(&empty).await.unwrap());
    // CreateOnly works again after a delete.
    store
        .put(&k, v1.clone(), PutMode::CreateOnly)
        .await
        .unwrap();
    assert!(store.delete(&k).await.unwrap());
}

async fn listing_without_bleed(store: &dyn Store) {
    let keys = [
        key_pkg("conf_a", "foo"),
        key_pkg("conf_a", "foo_bar"),
        StorageKey::tarball("conf_a", "foo", "1.0.0").unwrap(),
        StorageKey::tarball("conf_a", "foo_bar", "1.0.0").unwrap(),
        StorageKey::tarball("conf_a", "foo", "1.0.0-rc.1").unwrap(),
        StorageKey::docs("conf_a", "foo", "1.0.0").unwrap(),
        StorageKey::names("conf_a").unwrap(),
        StorageKey::versions("conf_a").unwrap(),
        StorageKey::public_key("conf_a").unwrap(),
        // A repository whose name extends the first one's.
        key_pkg("conf_a_b", "foo"),
        StorageKey::tarball("conf_a_b", "foo", "1.0.0").unwrap(),
    ];
    for (i, k) in keys.iter().enumerate() {
        let body = Bytes::from(format!("body {i} {}", k.path()));
        store.put(k, body, PutMode::CreateOnly).await.unwrap();
    }
    let paths = |entries: Vec<crate::storage::ListEntry>| -> Vec<String> {
        entries.iter().map(|e| e.key.path()).collect()
    };
    let packages = store
        .list(&KeyPrefix::packages("conf_a").unwrap())
        .await
        .unwrap();
    assert_eq!(
        paths(packages),
        ["repos/conf_a/packages/foo", "repos/conf_a/packages/foo_bar"]
    );
    let tarballs = store
        .list(&KeyPrefix::tarballs("conf_a").unwrap())
        .await
        .unwrap();
    assert_eq!(
        paths(tarballs.clone()),
        [
            "repos/conf_a/tarballs/foo-1.0.0-rc.1.tar",
            "repos/conf_a/tarballs/foo-1.0.0.tar",
            "repos/conf_a/tarballs/foo_bar-1.0.0.tar",
        ]
    );
    // Sizes and etags in the listing agree with head.
    for e in &tarballs {
        let meta = store.head(&e.key).await.unwrap().unwrap();
        assert_eq!((e.size, &e.etag), (meta.size, &meta.etag));
    }
    let docs = store
        .list(&KeyPrefix::docs("conf_a").unwrap())
        .await
        .unwrap();
    assert_eq!(paths(docs), ["repos/conf_a/docs/foo-1.0.0.tar.gz"]);
    let repo = store
        .list(&KeyPrefix::repo("conf_a").unwrap())
        .await
        .unwrap();
    assert_eq!(repo.len(), 9, "{:?}", paths(repo));
    let repo_b = store
        .list(&KeyPrefix::repo("conf_a_b").unwrap())
        .await
        .unwrap();
    assert_eq!(
        paths(repo_b),
        [
            "repos/conf_a_b/packages/foo",
            "repos/conf_a_b/tarballs/foo-1.0.0.tar"
        ]
    );
    let all = store.list(&KeyPrefix::All).await.unwrap();
    let all: BTreeSet<String> = paths(all).into_iter().collect();
    for k in &keys {
        assert!(all.contains(&k.path()), "All misses {}", k.path());
    }
    for k in &keys {
        assert!(store.delete(k).await.unwrap());
    }
}

async fn many_keys(store: &dyn Store) {
    const N: usize = 1_100;
    let names: Vec<String> = (0..N).map(|i| format!("p{i:04}")).collect();
    futures::stream::iter(names.iter())
        .map(|name| async move {
            let k = key_pkg("conf_many", name);
            store
                .put(
                    &k,
                    Bytes::from(name.clone().into_bytes()),
                    PutMode::CreateOnly,
                )
                .await
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let listed = store
        .list(&KeyPrefix::packages("conf_many").unwrap())
        .await
        .unwrap();
    assert_eq!(listed.len(), N);
    let listed_names: Vec<String> = listed
        .iter()
        .map(|e| match &e.key {
            StorageKey::Package { name, .. } => {
                assert_eq!(e.size, 5);
                name.to_string()
            }
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    assert_eq!(listed_names, names);
    futures::stream::iter(listed.iter())
        .map(|e| store.delete(&e.key))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

async fn large_body(store: &dyn Store) {
    let len = 16 * 1024 * 1024;
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let body = Bytes::from(body);
    let k = StorageKey::tarball("conf_a", "big", "1.0.0").unwrap();
    let meta = store
        .put(&k, body.clone(), PutMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(meta.size, len as u64);
    let got = store.get(&k).await.unwrap().unwrap();
    assert!(got.body == body, "16 MiB body differs after round trip");
    let (smeta, stream) = store.get_stream(&k).await.unwrap().unwrap();
    assert_eq!(Written::from(smeta), meta);
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    assert!(chunks.concat() == body.to_vec(), "streamed body differs");
    assert!(store.delete(&k).await.unwrap());
}

async fn if_match_race(store: &dyn Store) {
    let k = key_pkg("conf_race", "index");
    let base = store
        .put(&k, Bytes::from_static(b"base"), PutMode::CreateOnly)
        .await
        .unwrap();
    let results = futures::future::join_all((0..16).map(|i| {
        let k = k.clone();
        let etag = base.etag.clone();
        async move {
            store
                .put(
                    &k,
                    Bytes::from(format!("writer {i}")),
                    PutMode::IfMatch(etag),
                )
                .await
                .map(|m| (i, m))
        }
    }))
    .await;
    let mut winners = Vec::new();
    for r in results {
        match r {
            Ok(w) => winners.push(w),
            Err(StoreError::PreconditionFailed) => {}
            Err(e) => panic!("unexpected error in IfMatch race: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one IfMatch writer must win");
    let (i, meta) = &winners[0];
    let got = store.get(&k).await.unwrap().unwrap();
    assert_eq!(got.body, Bytes::from(format!("writer {i}")));
    assert_eq!(&got.meta.etag, &meta.etag);
    assert!(store.delete(&k).await.unwrap());
}

async fn create_only_race(store: &dyn Store) {
    let k = StorageKey::tarball("conf_race", "pkg", "1.0.0").unwrap();
    let results = futures::future::join_all((0..16).map(|i| {
        let k = k.clone();
        async move {
            store
                .put(&k, Bytes::from(format!("creator {i}")), PutMode::CreateOnly)
                .await
                .map(|_| i)
        }
    }))
    .await;
    let mut winners = Vec::new();
    for r in results {
        match r {
            Ok(i) => winners.push(i),
            Err(StoreError::AlreadyExists) => {}
            Err(e) => panic!("unexpected error in CreateOnly race: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one CreateOnly writer must win");
    assert_eq!(
        body_of(store, &k).await.unwrap(),
        Bytes::from(format!("creator {}", winners[0]))
    );
    assert!(store.delete(&k).await.unwrap());
}
