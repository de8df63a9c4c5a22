//! Cost of the lavaplayer track codec, which runs for every track in every event and
//! player response: decode from base64, and re-encode with a new position.
//!
//! Run: `cargo bench --bench track_codec`.

use criterion::{criterion_group, criterion_main, Criterion};
use quaver_control::track::codec;

/// Vector S3 of reference/lavalink-protocol.md (296 bytes, every optional field set).
const S3: &str = "QAABJAMAClRhbGsgYSBMb3QACjQwNHZpbmNlbnQAAAAAAAHr1gBxTzpodHRwczovL2FwaS12Mi5zb3VuZGNsb3VkLmNvbS9tZWRpYS9zb3VuZGNsb3VkOnRyYWNrczo4NTE0MjEwNzYvMzUyYTRiOTAtNzYxOS00M2E5LWJiOGItMjIxMzE0YzFjNjNhL3N0cmVhbS9obHMAAQAsaHR0cHM6Ly9zb3VuZGNsb3VkLmNvbS80MDR2aW5jZW50L3RhbGstYS1sb3QBADpodHRwczovL2kxLnNuZGNkbi5jb20vYXJ0d29ya3MtRTN1ek5Gc0Y4QzBXLTAtb3JpZ2luYWwuanBnAQAMUVpITkExOTg1Nzg0AApzb3VuZGNsb3VkAAAAAAAAAAA=";

fn bench(c: &mut Criterion) {
    c.bench_function("decode_base64 S3", |b| {
        b.iter(|| codec::decode_base64(std::hint::black_box(S3)).unwrap())
    });
    let mut blob = codec::decode_base64(S3).unwrap();
    c.bench_function("encode_base64 S3 at a new position", |b| {
        b.iter(|| {
            blob.position_ms += 20;
            codec::encode_base64(std::hint::black_box(&blob)).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
