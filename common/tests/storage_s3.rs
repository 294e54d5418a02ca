//! The S3 backend against a real S3 server (moto, started per test on a free loopback port).
//! Fails, never skips, when moto is missing: run `bash .ci/setup`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use hexyard_common::config::{StoreConfig, StoreKind};
use hexyard_common::storage::s3::{PROBE_DIR, S3Options};
use hexyard_common::storage::{
    KeyPrefix, PutMode, S3Store, StorageKey, Store, StoreError, Written,
};
use hexyard_common::testing::s3::MotoServer;
use hexyard_common::testing::store_conformance;

const BUCKET: &str = "hexyard-test";

async fn moto_with_bucket() -> MotoServer {
    let moto = MotoServer::start();
    moto.create_bucket(BUCKET).await;
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_moto() {
    let moto = moto_with_bucket().await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "conformance")).unwrap();
    let started = Instant::now();
    store_conformance(&store).await;
    eprintln!(
        "store_conformance on moto took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Everything the suite wrote lives under the prefix, and it cleaned up after itself.
    let raw = moto
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.key_count(), Some(0), "{:?}", raw.contents());
}

#[tokio::test]
async fn prefixes_isolate_stores_on_one_bucket() {
    let moto = moto_with_bucket().await;
    let a = S3Store::new(&moto.s3_config(BUCKET, "a")).unwrap();
    let ab = S3Store::new(&moto.s3_config(BUCKET, "a/b")).unwrap();
    let bare = S3Store::new(&moto.s3_config(BUCKET, "")).unwrap();
    let key = StorageKey::package("hexpm", "foo").unwrap();
    for (store, body) in [(&a, "in a"), (&ab, "in a/b"), (&bare, "bare")] {
        store
            .put(&key, Bytes::from(body), PutMode::CreateOnly)
            .await
            .unwrap();
    }
    for (store, body) in [(&a, "in a"), (&ab, "in a/b"), (&bare, "bare")] {
        assert_eq!(store.get(&key).await.unwrap().unwrap().body, body);
        let listed = store.list(&KeyPrefix::All).await.unwrap();
        let paths: Vec<String> = listed.iter().map(|e| e.key.path()).collect();
        assert_eq!(paths, ["repos/hexpm/packages/foo"]);
    }
    let raw = moto
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let mut raw_keys: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    raw_keys.sort_unstable();
    assert_eq!(
        raw_keys,
        [
            "a/b/repos/hexpm/packages/foo",
            "a/repos/hexpm/packages/foo",
            "repos/hexpm/packages/foo"
        ]
    );
    // Deleting in one store leaves the others alone.
    assert!(a.delete(&key).await.unwrap());
    assert!(a.get(&key).await.unwrap().is_none());
    assert_eq!(ab.get(&key).await.unwrap().unwrap().body, "in a/b");
    assert_eq!(bare.get(&key).await.unwrap().unwrap().body, "bare");
}

#[tokio::test]
async fn objects_carry_content_type_and_cache_control() {
    let moto = moto_with_bucket().await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "p")).unwrap();
    let cases = [
        (
            StorageKey::tarball("hexpm", "foo", "1.0.0").unwrap(),
            "application/octet-stream",
            "public, max-age=604800",
        ),
        (
            StorageKey::docs("hexpm", "foo", "1.0.0").unwrap(),
            "application/gzip",
            "public, max-age=86400",
        ),
        (
            StorageKey::public_key("hexpm").unwrap(),
            "text/plain",
            "public, max-age=3600",
        ),
        (
            StorageKey::names("hexpm").unwrap(),
            "application/octet-stream",
            "public, max-age=60",
        ),
        (
            StorageKey::package("hexpm", "foo").unwrap(),
            "application/octet-stream",
            "public, max-age=60",
        ),
    ];
    let client = moto.client();
    for (key, content_type, cache_control) in &cases {
        let meta = store
            .put(key, Bytes::from_static(b"body"), PutMode::Overwrite)
            .await
            .unwrap();
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(format!("p/{}", key.path()))
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some(*content_type), "{key}");
        assert_eq!(head.cache_control(), Some(*cache_control), "{key}");
        assert_eq!(head.e_tag(), Some(meta.etag.as_str()), "{key}");
        assert_eq!(head.content_length(), Some(4), "{key}");
    }
}

#[tokio::test]
async fn moto_supports_conditional_writes() {
    let moto = moto_with_bucket().await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "probe")).unwrap();
    assert!(store.supports_conditional_writes().await.unwrap());
    // The probe object is gone.
    let raw = moto
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("probe/{PROBE_DIR}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.key_count(), Some(0), "{:?}", raw.contents());
}

/// The test server's conditional writes are compare-and-swap, as S3's are: in every one of
/// `RACE_ROUNDS` rounds of `WRITERS` writers with the same `If-Match`, exactly one wins. moto's own
/// check-then-write lets two win now and then (it once lost a release in the two-publisher
/// test); [`MotoServer`] serializes them. The server switches threads every microsecond here,
/// so that the race shows: with `HEXYARD_MOTO_UNSAFE=1` (moto as it is) this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_conditional_writes_are_atomic() {
    const RACE_ROUNDS: usize = 150;
    const WRITERS: usize = 32;
    let moto = MotoServer::start_stressed();
    moto.create_bucket(BUCKET).await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "race")).unwrap();
    let k = StorageKey::package("race_repo", "pkg").unwrap();
    let mut etag = store
        .put(&k, Bytes::from_static(b"round 0"), PutMode::CreateOnly)
        .await
        .unwrap()
        .etag;
    for round in 1..=RACE_ROUNDS {
        let results = futures::future::join_all((0..WRITERS).map(|i| {
            let (store, k, etag) = (&store, &k, etag.clone());
            async move {
                let body = Bytes::from(format!("round {round} writer {i}"));
                store.put(k, body, PutMode::IfMatch(etag)).await
            }
        }))
        .await;
        let mut winners = vec![];
        for r in results {
            match r {
                Ok(meta) => winners.push(meta.etag),
                Err(StoreError::PreconditionFailed) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?} all won");
        etag = winners.remove(0);
    }
}

/// The requests moto logged after byte `from` of its log, as "METHOD path" (no query) lines;
/// waits up to 2 s for at least `want` of them (moto logs a request as it answers it).
async fn requests_since(moto: &MotoServer, from: usize, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let log = moto.log_text();
        let seen: Vec<String> = log
            .get(from..)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let req = line.split('"').nth(1)?;
                let mut parts = req.split(' ');
                let (method, target) = (parts.next()?, parts.next()?);
                let path = target.split('?').next().unwrap_or(target);
                Some(format!("{method} {path}"))
            })
            .collect();
        if seen.len() >= want || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_put_is_one_request() {
    // Each write mode costs one PutObject and nothing else (no HEAD for the write time): the
    // publisher makes four writes per publish, so each extra request is four round trips.
    let moto = moto_with_bucket().await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "one")).unwrap();
    let key = StorageKey::package("hexpm", "single").unwrap();
    let path = format!("/{BUCKET}/one/repos/hexpm/packages/single");
    let from = moto.log_text().len();
    let mut etag = String::new();
    let mut expected = Vec::new();
    for (i, mode) in [
        PutMode::CreateOnly,
        PutMode::Overwrite,
        PutMode::IfMatch(String::new()),
    ]
    .into_iter()
    .enumerate()
    {
        let mode = match mode {
            PutMode::IfMatch(_) => PutMode::IfMatch(etag.clone()),
            m => m,
        };
        let body = Bytes::from(format!("body {i}"));
        let written = store.put(&key, body.clone(), mode.clone()).await.unwrap();
        assert_eq!(written.size, body.len() as u64);
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(stored.body, body);
        assert_eq!(written, Written::from(stored.meta), "{mode:?}");
        etag = written.etag;
        expected.push(format!("PUT {path}"));
        expected.push(format!("GET {path}"));
    }
    assert_eq!(requests_since(&moto, from, expected.len()).await, expected);
}

#[tokio::test]
async fn get_stream_streams_in_chunks() {
    let moto = moto_with_bucket().await;
    let store = S3Store::new(&moto.s3_config(BUCKET, "")).unwrap();
    let key = StorageKey::tarball("hexpm", "big", "1.0.0").unwrap();
    let body: Bytes = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let meta = store
        .put(&key, body.clone(), PutMode::CreateOnly)
        .await
        .unwrap();
    let (smeta, mut stream) = store.get_stream(&key).await.unwrap().unwrap();
    assert_eq!(Written::from(smeta), meta);
    let mut chunks = 0;
    let mut got = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() < body.len(), "the body came as one chunk");
        got.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(chunks > 1, "{chunks} chunks");
    assert!(got == body, "streamed body differs");
}

fn short_timeouts() -> S3Options {
    S3Options {
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(1_000),
        attempt_timeout: Duration::from_millis(1_000),
        operation_timeout: Duration::from_millis(2_500),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    }
}

fn assert_unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> String {
    match r {
        Err(StoreError::Unavailable(msg)) => msg,
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn stopped_server_is_unavailable_then_recovers() {
    let mut moto = moto_with_bucket().await;
    let options = short_timeouts();
    let store = S3Store::with_options(&moto.s3_config(BUCKET, ""), &options).unwrap();
    let key = StorageKey::tarball("hexpm", "foo", "1.0.0").unwrap();
    store
        .put(&key, Bytes::from_static(b"before"), PutMode::CreateOnly)
        .await
        .unwrap();

    moto.stop();
    let started = Instant::now();
    let msg = assert_unavailable(store.get(&key).await, "get");
    let took = started.elapsed();
    assert!(
        took < options.operation_timeout + Duration::from_millis(500),
        "get took {took:?}"
    );
    assert!(msg.contains(&moto.endpoint()), "{msg}");
    assert!(msg.contains("GetObject"), "{msg}");
    assert_unavailable(store.head(&key).await, "head");
    assert_unavailable(store.get_stream(&key).await.map(|o| o.is_some()), "stream");
    assert_unavailable(
        store
            .put(&key, Bytes::from_static(b"x"), PutMode::Overwrite)
            .await,
        "put",
    );
    assert_unavailable(store.delete(&key).await, "delete");
    assert_unavailable(store.list(&KeyPrefix::All).await, "list");
    assert_unavailable(store.supports_conditional_writes().await, "probe");

    // moto keeps nothing across a restart: the bucket is created again.
    moto.restart();
    moto.create_bucket(BUCKET).await;
    assert!(store.get(&key).await.unwrap().is_none());
    let meta = store
        .put(&key, Bytes::from_static(b"after"), PutMode::CreateOnly)
        .await
        .unwrap();
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(got.body, "after");
    assert_eq!(Written::from(got.meta), meta);
}

#[tokio::test]
async fn silent_server_times_out_as_unavailable() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut config = hexyard_common::config::S3Config {
        bucket: BUCKET.to_owned(),
        endpoint: Some(format!("http://{addr}")),
        force_path_style: true,
        ..Default::default()
    };
    config.credentials = Some(hexyard_common::config::S3Credentials {
        access_key_id: hexyard_common::config::Secret::new("id"),
        secret_access_key: hexyard_common::config::Secret::new("secret"),
        session_token: None,
    });
    let options = short_timeouts();
    let store = S3Store::with_options(&config, &options).unwrap();
    let key = StorageKey::names("hexpm").unwrap();
    let started = Instant::now();
    let msg = assert_unavailable(store.get(&key).await, "get");
    let took = started.elapsed();
    assert!(msg.contains("timed out"), "{msg}");
    assert!(
        took >= options.attempt_timeout
            && took < options.operation_timeout + Duration::from_secs(1),
        "get took {took:?}"
    );
    accept.abort();
}

#[tokio::test]
async fn open_builds_an_s3_store_from_config() {
    let moto = moto_with_bucket().await;
    let config = StoreConfig {
        kind: StoreKind::S3,
        s3: Some(moto.s3_config(BUCKET, "opened")),
        ..StoreConfig::default()
    };
    let store = hexyard_common::storage::open(&config).unwrap();
    assert_eq!(
        store.describe(),
        format!("s3://{BUCKET}/opened/ ({})", moto.endpoint())
    );
    let key = StorageKey::public_key("hexpm").unwrap();
    store
        .put(&key, Bytes::from_static(b"pem"), PutMode::CreateOnly)
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().body, "pem");

    let missing = StoreConfig {
        kind: StoreKind::S3,
        s3: None,
        ..StoreConfig::default()
    };
    match hexyard_common::storage::open(&missing) {
        Err(StoreError::Unavailable(msg)) => {
            assert_eq!(msg, "store.kind is s3 but store.s3 is missing")
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(s) => panic!("opened {}", s.describe()),
    }
}
