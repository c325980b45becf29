//! The photo records contract (`wagu_storage::records::photos`), one suite run against both
//! backends:
//!
//! - `embedded_photo_contract` on a `redb` file in a temporary directory (and again after a
//!   reopen: photos are durable);
//! - `cql_photo_contract` on the test bed's database (Cassandra 5 standing in for ScyllaDB) in a
//!   keyspace of its own, dropped at the end. `WAGU_TEST_CQL_NODES` unset: skipped; set but
//!   unreachable: fails.
//!
//! Every expectation is computed from the fixtures written here. Both drivers start from an
//! empty store, which the sweep-queue expectations rely on; timestamps are fixed values far
//! in the past, so "due" never depends on the clock.

/// The records contract's backends (a fresh redb directory, a fresh CQL keyspace) and its
/// panic-catching helper, shared rather than written again.
#[allow(dead_code)]
#[path = "records/support.rs"]
mod support;

use support::{CqlKeyspace, catch_panic, embedded};

use wagu_proto::model::UnixMillis;
use wagu_proto::records::{AccountId, PhotoId, PostId};
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::photos::{
    PhotoRecord, PhotoStore, PhotoVariant, SweepEntry, VariantKind,
};

const DAY: u64 = 24 * 3600 * 1000;
/// 2001-09-09: every fixture time is an offset from here.
const T0: UnixMillis = 1_000_000_000_000;

fn photo(id: &str, owner: &str, content: &str, created_at: UnixMillis) -> PhotoRecord {
    let variant = |kind: VariantKind, w: u32, h: u32| PhotoVariant {
        kind,
        key: format!("photos/{}/{content}-{}.jpg", &content[..2], kind.as_str()),
        hash: format!("{content}-{}", kind.as_str()),
        content_type: "image/jpeg".into(),
        width: w,
        height: h,
        bytes: u64::from(w * h / 10),
    };
    PhotoRecord {
        id: PhotoId(id.into()),
        owner: AccountId(owner.into()),
        created_at,
        content_hash: content.into(),
        variants: vec![
            variant(VariantKind::Thumb, 320, 240),
            variant(VariantKind::Display, 1280, 960),
        ],
        posts: Default::default(),
        detached_at: None,
    }
}

fn entry(at: UnixMillis, id: &str) -> SweepEntry {
    SweepEntry {
        at,
        id: PhotoId(id.into()),
    }
}

async fn contract<S: PhotoStore>(s: &S) {
    let tag = format!("{:08x}", rand::random::<u32>());
    let id = |n: &str| format!("{n}{tag}");
    let a = photo(&id("a"), "owner1", "aa11", T0);
    let post1 = PostId(id("post1"));
    let post2 = PostId(id("post2"));

    // A new photo is stored as given, with no attachments.
    let stored = s.put_photo(&a).await.unwrap();
    assert_eq!(stored, a);
    assert_eq!(s.photo(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.photo(&PhotoId(id("missing"))).await.unwrap(), None);

    // The same id again (the same owner uploading the same photo) changes nothing.
    let again = PhotoRecord {
        created_at: T0 + 5 * DAY,
        ..a.clone()
    };
    assert_eq!(s.put_photo(&again).await.unwrap(), a);
    assert_eq!(s.photo(&a.id).await.unwrap().unwrap().created_at, T0);

    // Attachments: per post, with their time; re-storing the photo keeps them.
    s.attach_photo(&a.id, &post1, T0 + 1).await.unwrap();
    s.attach_photo(&a.id, &post2, T0 + 2).await.unwrap();
    s.put_photo(&again).await.unwrap();
    let got = s.photo(&a.id).await.unwrap().unwrap();
    assert_eq!(
        got.posts.clone().into_iter().collect::<Vec<_>>(),
        vec![(post1.clone(), T0 + 1), (post2.clone(), T0 + 2)]
    );
    assert_eq!(got.unused_since(), None);

    // Attaching to or detaching from a photo that does not exist creates nothing.
    let ghost = PhotoId(id("ghost"));
    s.attach_photo(&ghost, &post1, T0).await.unwrap();
    s.detach_photo(&ghost, &post1, T0).await.unwrap();
    assert_eq!(s.photo(&ghost).await.unwrap(), None);

    // Detaching: the attachment goes, the time is kept, the photo is queued at that time.
    s.detach_photo(&a.id, &post1, T0 + DAY).await.unwrap();
    let got = s.photo(&a.id).await.unwrap().unwrap();
    assert_eq!(
        got.posts.keys().cloned().collect::<Vec<_>>(),
        vec![post2.clone()]
    );
    assert_eq!(got.detached_at, Some(T0 + DAY));
    s.detach_photo(&a.id, &post2, T0 + 2 * DAY).await.unwrap();
    let got = s.photo(&a.id).await.unwrap().unwrap();
    assert!(got.posts.is_empty());
    assert_eq!(got.unused_since(), Some(T0 + 2 * DAY));

    // Two more photos sharing one content, by two owners, on other days.
    let b = photo(&id("b"), "owner1", "bb22", T0 + 3 * DAY);
    let c = photo(&id("c"), "owner2", "bb22", T0 + 4 * DAY);
    s.put_photo(&b).await.unwrap();
    s.put_photo(&c).await.unwrap();

    // The sweep queue: every upload and every detachment, oldest first, before the bound.
    let all = s.sweep_due(T0 + 10 * DAY, 100).await.unwrap();
    assert_eq!(
        all,
        vec![
            entry(T0, &a.id.0),
            entry(T0 + DAY, &a.id.0),
            entry(T0 + 2 * DAY, &a.id.0),
            entry(T0 + 3 * DAY, &b.id.0),
            entry(T0 + 4 * DAY, &c.id.0),
        ]
    );
    // The bound is exclusive; the limit is kept.
    assert_eq!(
        s.sweep_due(T0 + DAY, 100).await.unwrap(),
        vec![entry(T0, &a.id.0)]
    );
    assert_eq!(
        s.sweep_due(T0 + 10 * DAY, 2).await.unwrap(),
        all[..2].to_vec()
    );
    // Looked at: gone from the queue.
    s.unqueue(&all[0]).await.unwrap();
    s.unqueue(&all[1]).await.unwrap();
    assert_eq!(
        s.sweep_due(T0 + 10 * DAY, 100).await.unwrap(),
        all[2..].to_vec()
    );

    // Deleting: the first of two photos sharing content reports the other; the last does not.
    assert!(
        s.delete_photo(&b).await.unwrap(),
        "c still shares the blobs"
    );
    assert_eq!(s.photo(&b.id).await.unwrap(), None);
    assert!(
        !s.delete_photo(&c).await.unwrap(),
        "nothing shares them now"
    );
    assert!(!s.delete_photo(&a).await.unwrap());
    assert_eq!(s.photo(&a.id).await.unwrap(), None);
    // The queue is the sweep's to empty (an entry of a deleted photo reads as nothing).
    for e in &all[2..] {
        s.unqueue(e).await.unwrap();
    }
    assert!(s.sweep_due(T0 + 10 * DAY, 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_photo_contract() {
    let (_dir, store) = embedded().await;
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_photo_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let p = photo("keeper", "owner1", "cc33", T0);
    {
        let store = EmbeddedRecords::open(dir.path()).await.unwrap();
        assert_eq!(
            store.photo(&p.id).await.unwrap(),
            None,
            "a file without photo tables reads as empty"
        );
        store.put_photo(&p).await.unwrap();
        store
            .attach_photo(&p.id, &PostId("post".into()), T0 + 1)
            .await
            .unwrap();
    }
    let store = EmbeddedRecords::open(dir.path()).await.unwrap();
    let got = store.photo(&p.id).await.unwrap().unwrap();
    assert_eq!(got.variants, p.variants);
    assert_eq!(got.posts.len(), 1);
    assert_eq!(
        store.sweep_due(T0 + 1, 10).await.unwrap(),
        vec![entry(T0, "keeper")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_photo_contract() {
    let Some(keyspace) = CqlKeyspace::create("cql_photo_contract").await else {
        return;
    };
    let outcome = catch_panic(contract(&keyspace.store)).await;
    keyspace.drop_and_report(outcome).await;
}
