#![allow(clippy::expect_used)]
//! Registry codec timings on a hex.pm-sized index: a `versions` file of 10,000 packages with
//! 30,000 releases (3 each, one of them retired), signed with a 2048-bit key.
//!
//! `cargo bench -p hexyard-benches --bench codec`

use criterion::{Criterion, criterion_group, criterion_main};
use hexyard_common::registry::{self, proto};
use hexyard_common::signing::SigningKey;
use prost::Message;
use std::hint::black_box;

fn versions(n: usize) -> proto::Versions {
    proto::Versions {
        packages: (0..n)
            .map(|i| proto::VersionsPackage {
                name: format!("package_{i:05}"),
                versions: vec!["0.1.0".into(), "0.2.0".into(), "1.0.0".into()],
                retired: if i % 10 == 0 { vec![1] } else { vec![] },
                with_advisories: vec![],
            })
            .collect(),
        repository: "bench_repo".into(),
    }
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::generate().expect("key");
    let vk = key.verifying_key();
    let v = versions(10_000);
    let payload = v.encode_to_vec();
    let signed = registry::encode_signed(&v, &key).expect("sign");
    eprintln!(
        "versions: 10,000 packages, 30,000 releases: payload {} bytes, gzip {} bytes",
        payload.len(),
        signed.len()
    );
    let mut g = c.benchmark_group("versions_10k");
    g.sample_size(30);
    g.bench_function("protobuf_encode", |b| {
        b.iter(|| black_box(&v).encode_to_vec())
    });
    g.bench_function("sign_payload", |b| {
        b.iter(|| key.sign(black_box(&payload)).expect("sign"))
    });
    g.bench_function("encode_sign_gzip", |b| {
        b.iter(|| registry::encode_signed(black_box(&v), &key).expect("sign"))
    });
    g.bench_function("gunzip_verify_decode", |b| {
        b.iter(|| registry::decode_versions(black_box(&signed), &vk, "bench_repo").expect("decode"))
    });
    g.bench_function("protobuf_decode", |b| {
        b.iter(|| proto::Versions::decode(black_box(payload.as_slice())).expect("decode"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
