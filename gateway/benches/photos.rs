//! The photo pipeline on a 12-megapixel JPEG (4000 × 3000, the size of a phone photo): decode,
//! orient, the display and thumb variants, JPEG encode — once with `fast_image_resize` and once
//! with `image`'s own resize (both Lanczos3), to choose the resampler
//! (`wagu_gateway::photos::pipeline::RESAMPLER`). Throughput is in photos per second.
//!
//!   cargo bench -p wagu-gateway --bench photos
//!
//! Figures and peak memory (examples/photo_peak_rss.rs) are in docs/PERFORMANCE.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wagu_gateway::photos::PhotoConfig;
use wagu_gateway::photos::pipeline::{self, Resampler};

fn pipeline(c: &mut Criterion) {
    let jpeg = pipeline::synthetic_jpeg(4000, 3000);
    let limits = PhotoConfig::default().decode_limits();
    let mut g = c.benchmark_group("photo_12mp");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_only", |b| {
        b.iter(|| black_box(pipeline::decode(black_box(&jpeg), &limits).unwrap()))
    });
    for (name, r) in [
        ("fast_image_resize", Resampler::Fast),
        ("image_resize", Resampler::Image),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(pipeline::process(black_box(&jpeg), &limits, r).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
