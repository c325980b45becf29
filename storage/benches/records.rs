//! Criterion benchmark of the embedded records store (redb in a temporary directory): what a
//! post creation, a feed page, a name search and a viewport listing cost on one core, with the
//! store already holding the sample places and a thousand posts. Every write is a durable
//! (fsynced) transaction. Run: `cargo bench -p wagu-storage --bench records`.
//!
//! The CQL backend is not benchmarked here: its cost is the database's round trips, which the
//! load-test harness is the place to measure.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use wagu_proto::PlaceId;
use wagu_proto::model::{Bounds, LatLng};
use wagu_proto::records::{AccountId, Post, PostDraft, PostId, TextOrigin};
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::{PlaceStore, PostStore, Records, SAMPLE_PLACES_CSV, Scope, import};

fn post(i: u64, author: &str) -> Post {
    Post {
        id: PostId(format!("bench-post-{i:08}")),
        author: AccountId(author.into()),
        author_name: "Bench".into(),
        place_name: "Sample".into(),
        location: LatLng {
            lat: 37.566 + (i % 50) as f64 * 1e-4,
            lng: 126.991,
        },
        created_at: 1_767_225_600_000 + i * 60_000,
        updated_at: 1_767_225_600_000 + i * 60_000,
        draft: PostDraft {
            place_id: PlaceId(format!("sample:{:04}", 1 + i % 300)),
            visit_date: "2026-11-20".into(),
            menu: vec![],
            rating: 4,
            text: "국물이 진하고 면이 쫄깃하다. 다음엔 만두도 먹어볼 것.".into(),
            photos: vec![],
            text_origin: TextOrigin::Author,
        },
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let s = Records::Embedded(EmbeddedRecords::open(dir.path()).await.unwrap());
        let parsed = import::parse(import::Format::Csv, SAMPLE_PLACES_CSV).unwrap();
        import::import(&s, parsed).await.unwrap();
        for i in 0..1_000 {
            s.create_post(&post(i, "author-a"), None).await.unwrap();
        }
        s
    });

    let mut next = 1_000_000u64;
    c.bench_function("embedded/create_post", |b| {
        b.iter(|| {
            next += 1;
            rt.block_on(store.create_post(&post(next, "author-b"), None))
                .unwrap()
        })
    });
    let author = Scope::Author(AccountId("author-a".into()));
    c.bench_function("embedded/feed_page_20_of_1000", |b| {
        b.iter(|| black_box(rt.block_on(store.feed(&author, None, 20)).unwrap()))
    });
    c.bench_function("embedded/search_places_prefix", |b| {
        b.iter(|| black_box(rt.block_on(store.search_places("b", None, 20)).unwrap()))
    });
    let district = Bounds {
        sw: LatLng {
            lat: 37.555,
            lng: 126.980,
        },
        ne: LatLng {
            lat: 37.578,
            lng: 127.003,
        },
    };
    c.bench_function("embedded/places_in_bounds_district", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(store.places_in_bounds(&district, None, 50))
                    .unwrap(),
            )
        })
    });
    let here = LatLng {
        lat: 37.567,
        lng: 126.991,
    };
    c.bench_function("embedded/posts_near_3km", |b| {
        b.iter(|| black_box(rt.block_on(store.posts_near(here, 3.0, None, 20)).unwrap()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
