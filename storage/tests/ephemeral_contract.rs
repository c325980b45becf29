//! The ephemeral store's contract — values and append-only lists, both with a time to live —
//! run against every backend: in-process memory, the embedded redb file and real Redis (when
//! the test bed provides it). Then what only the embedded backend promises: its data outlives
//! the process, expired keys leave the file, concurrent writes share commits, one owner per
//! file.

use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wagu_storage::EphemeralStore;
use wagu_storage::ephemeral::EmbeddedStore;
use wagu_storage::ephemeral::embedded::Options;
use wagu_storage::testbed;

const LONG: Duration = Duration::from_secs(30);

async fn contract(store: &EphemeralStore, prefix: &str) {
    // Single values: write, read back, overwrite, delete.
    let k = format!("{prefix}:value");
    assert_eq!(store.get(&k).await.unwrap(), None, "absent key reads None");
    store
        .put(&k, Bytes::from_static(b"hello"), LONG)
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"hello"[..]));
    store
        .put(&k, Bytes::from_static(b"again"), LONG)
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"again"[..]));
    store.delete(&[&k]).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), None);

    // Bytes are opaque: not UTF-8, empty.
    let b = format!("{prefix}:binary");
    store
        .put(&b, Bytes::from_static(&[0, 255, 128, 0]), LONG)
        .await
        .unwrap();
    assert_eq!(
        store.get(&b).await.unwrap().as_deref(),
        Some(&[0u8, 255, 128, 0][..])
    );
    store.put(&b, Bytes::new(), LONG).await.unwrap();
    assert_eq!(store.get(&b).await.unwrap().as_deref(), Some(&[][..]));

    // Lists: appended in order, read whole, oldest first.
    let l = format!("{prefix}:list");
    assert!(store.list(&l).await.unwrap().is_empty(), "absent list");
    for i in 0..3u8 {
        store.append(&l, Bytes::from(vec![i]), LONG).await.unwrap();
    }
    let items = store.list(&l).await.unwrap();
    assert_eq!(
        items,
        vec![
            Bytes::from(vec![0]),
            Bytes::from(vec![1]),
            Bytes::from(vec![2])
        ]
    );
    let long = format!("{prefix}:long-list");
    for i in 0..300u32 {
        store
            .append(&long, Bytes::from(i.to_be_bytes().to_vec()), LONG)
            .await
            .unwrap();
    }
    let got: Vec<u32> = store
        .list(&long)
        .await
        .unwrap()
        .iter()
        .map(|b| u32::from_be_bytes(b[..].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "300 appends keep order");

    // Several at once keep their order, after what was there.
    store
        .append_many(
            &l,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            LONG,
        )
        .await
        .unwrap();
    store.append_many(&l, Vec::new(), LONG).await.unwrap();
    let items = store.list(&l).await.unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(&items[3][..], b"a");
    assert_eq!(&items[4][..], b"b");

    // One delete removes values and lists alike, and ignores absent keys.
    store
        .delete(&[&l, &b, &format!("{prefix}:never")])
        .await
        .unwrap();
    assert!(store.list(&l).await.unwrap().is_empty(), "deleted list");
    assert_eq!(store.get(&b).await.unwrap(), None, "deleted value");
    store.delete(&[]).await.unwrap();

    // Expiry: a value and a list outlive nothing past their TTL.
    let e = format!("{prefix}:expiring");
    store
        .put(&e, Bytes::from_static(b"x"), Duration::from_millis(150))
        .await
        .unwrap();
    store
        .append(&l, Bytes::from_static(b"y"), Duration::from_millis(150))
        .await
        .unwrap();
    // Each append renews the list's TTL: this one outlives the first append's 150 ms.
    let renewed = format!("{prefix}:renewed");
    store
        .append(
            &renewed,
            Bytes::from_static(b"1"),
            Duration::from_millis(150),
        )
        .await
        .unwrap();
    store
        .append(&renewed, Bytes::from_static(b"2"), LONG)
        .await
        .unwrap();
    assert!(store.get(&e).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get(&e).await.unwrap(), None, "value outlived its TTL");
    assert!(
        store.list(&l).await.unwrap().is_empty(),
        "list outlived its TTL"
    );
    assert_eq!(
        store.list(&renewed).await.unwrap().len(),
        2,
        "an append renews the whole list's TTL"
    );

    // An expired list is gone: appending starts a new one.
    store
        .append(&l, Bytes::from_static(b"fresh"), LONG)
        .await
        .unwrap();
    assert_eq!(
        store.list(&l).await.unwrap(),
        vec![Bytes::from_static(b"fresh")]
    );
    store.delete(&[&l, &long, &renewed]).await.unwrap();
}

async fn embedded(dir: &std::path::Path) -> EphemeralStore {
    EphemeralStore::embedded(dir, Duration::from_millis(100))
        .await
        .unwrap()
}

/// An embedded store whose checkpoint never comes during a test: what it acknowledges stays
/// in its log (and, until a read, out of its tables).
async fn embedded_without_checkpoints(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open_with(
        dir,
        Options {
            checkpoint_every: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract(&EphemeralStore::memory(), "mem").await;
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path()).await;
    assert_eq!(store.backend(), "embedded");
    store.ping().await.unwrap();
    contract(&store, "emb").await;
}

#[tokio::test]
async fn smoke_redis_write_read_expire_delete() {
    let Some(url) = testbed::service(testbed::REDIS_URL, "smoke_redis_write_read_expire_delete")
    else {
        return;
    };
    let store = EphemeralStore::redis(&url)
        .await
        .unwrap_or_else(|e| panic!("Redis promised at {url} but unreachable: {e}"));
    assert_eq!(store.backend(), "redis");
    store.ping().await.unwrap();
    contract(&store, &format!("wagu-smoke-{}", rand::random::<u32>())).await;
}

fn inner(store: &EphemeralStore) -> &EmbeddedStore {
    match store {
        EphemeralStore::Embedded(e) => e,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn embedded_values_and_lists_outlive_the_store_that_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = embedded(dir.path()).await;
        store
            .put("k", Bytes::from_static(b"snapshot"), LONG)
            .await
            .unwrap();
        store
            .put(
                "short",
                Bytes::from_static(b"x"),
                Duration::from_millis(200),
            )
            .await
            .unwrap();
        for i in 0..5u8 {
            store
                .append("log", Bytes::from(vec![i]), LONG)
                .await
                .unwrap();
        }
    }
    // Dropped without any close: what was acknowledged is in the file. The reopen waits for
    // the old writer thread to let go of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = embedded(dir.path()).await;
    assert_eq!(
        store.get("k").await.unwrap().as_deref(),
        Some(&b"snapshot"[..])
    );
    assert_eq!(store.list("log").await.unwrap().len(), 5);
    // The TTL kept counting on the wall clock while nothing had the file open.
    assert_eq!(store.get("short").await.unwrap(), None);
    // The list goes on where it stopped.
    store
        .append("log", Bytes::from_static(&[5]), LONG)
        .await
        .unwrap();
    let l = store.list("log").await.unwrap();
    assert_eq!(l.len(), 6);
    assert_eq!(l[5].as_ref(), &[5]);
}

#[tokio::test]
async fn embedded_expired_keys_leave_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path()).await;
    let big = Bytes::from(vec![7u8; 4096]);
    // More than one sweep transaction's worth, as values and as lists.
    for i in 0..1500 {
        store
            .put(&format!("v{i}"), big.clone(), Duration::from_millis(50))
            .await
            .unwrap();
    }
    for i in 0..100 {
        for _ in 0..5 {
            store
                .append(&format!("l{i}"), big.clone(), Duration::from_millis(50))
                .await
                .unwrap();
        }
    }
    store.put("keep", big.clone(), LONG).await.unwrap();
    // A read brings the tables up to date with the log (the writer applies batches lazily).
    assert!(store.get("keep").await.unwrap().is_some());
    let full = EmbeddedStore::file_bytes(dir.path()).unwrap();
    // The background sweep (every 100 ms here) removes them without being asked.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while inner(&store)
        .stats()
        .swept
        .load(std::sync::atomic::Ordering::Relaxed)
        < 1600
    {
        assert!(
            std::time::Instant::now() < deadline,
            "swept only {:?} keys",
            inner(&store).stats().swept
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.get("keep").await.unwrap().as_deref(), Some(&big[..]));
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Reopening compacts: the file shrinks back towards what is live.
    let store = embedded(dir.path()).await;
    let after = EmbeddedStore::file_bytes(dir.path()).unwrap();
    assert!(
        after * 4 < full,
        "file {after} bytes after the sweep and a reopen, {full} when full"
    );
    assert_eq!(store.get("keep").await.unwrap().as_deref(), Some(&big[..]));
}

#[tokio::test]
async fn embedded_concurrent_writes_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path()).await;
    let before = inner(&store)
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.append(&format!("room{}", i % 40), Bytes::from(vec![1; 64]), LONG)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let commits = inner(&store)
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    for i in 0..40 {
        assert_eq!(store.list(&format!("room{i}")).await.unwrap().len(), 10);
    }
    assert!(
        commits < 400,
        "400 concurrent appends took {commits} commits: no group commit"
    );
}

#[tokio::test]
async fn embedded_writes_reach_the_tables_many_batches_at_a_time_and_a_read_still_sees_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_without_checkpoints(dir.path()).await;
    let applies = |s: &EmbeddedStore| s.stats().applies.load(Ordering::Relaxed);
    // One after another: each write is its own batch, its own log record and sync.
    for i in 0..50u8 {
        store
            .append("chat", Bytes::from(vec![i]), LONG)
            .await
            .unwrap();
    }
    store
        .put("snap", Bytes::from_static(b"v1"), LONG)
        .await
        .unwrap();
    assert_eq!(store.stats().commits.load(Ordering::Relaxed), 51);
    assert_eq!(
        applies(&store),
        0,
        "acknowledged, in the log, not in the tables yet"
    );

    let chat = store.list("chat").await.unwrap();
    assert_eq!(chat.len(), 50, "a read sees every acknowledged write");
    assert_eq!(chat[49].as_ref(), &[49]);
    assert_eq!(
        applies(&store),
        1,
        "51 batches went into the tables in one transaction"
    );
    assert_eq!(
        store.get("snap").await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        applies(&store),
        1,
        "nothing new to apply: the read goes straight to the file"
    );

    // A write after the read, then a read of it.
    store.delete(&["snap"]).await.unwrap();
    assert_eq!(store.get("snap").await.unwrap(), None);
    assert_eq!(applies(&store), 2);
    assert_eq!(
        store.stats().durable_commits.load(Ordering::Relaxed),
        0,
        "none of it was a durable commit: the log keeps it"
    );
}

#[tokio::test]
async fn a_second_server_cannot_open_the_same_embedded_file() {
    let dir = tempfile::tempdir().unwrap();
    let _first = embedded(dir.path()).await;
    let second = EphemeralStore::embedded(dir.path(), Duration::from_secs(1)).await;
    let Err(e) = second else {
        panic!("two stores on one file")
    };
    assert!(e.to_string().contains("in use by another server"), "{e}");
}

/// Copies the store's files as they are on disk now, as a crash would leave them (the page
/// cache survives `kill -9`; what a power cut would lose is what nothing synced).
fn crash_copy(from: &std::path::Path, to: &std::path::Path, with_log: bool) {
    std::fs::copy(
        from.join(wagu_storage::ephemeral::embedded::FILE_NAME),
        to.join(wagu_storage::ephemeral::embedded::FILE_NAME),
    )
    .unwrap();
    if with_log {
        std::fs::copy(
            from.join(wagu_storage::ephemeral::wal::FILE_NAME),
            to.join(wagu_storage::ephemeral::wal::FILE_NAME),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn embedded_writes_acknowledged_between_durable_commits_survive_a_crash_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_without_checkpoints(dir.path()).await;
    store
        .put("snap", Bytes::from_static(b"v1"), LONG)
        .await
        .unwrap();
    store
        .put("snap", Bytes::from_static(b"v2"), LONG)
        .await
        .unwrap();
    store
        .put("gone", Bytes::from_static(b"x"), LONG)
        .await
        .unwrap();
    store.delete(&["gone"]).await.unwrap();
    // A read applies what is logged to the tables, without an fsync: still only the log keeps it.
    assert_eq!(store.get("gone").await.unwrap(), None);
    for i in 0..20u8 {
        store
            .append("log", Bytes::from(vec![i]), LONG)
            .await
            .unwrap();
    }
    store
        .append_many(
            "log",
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            LONG,
        )
        .await
        .unwrap();
    assert_eq!(
        store.stats().durable_commits.load(Ordering::Relaxed),
        0,
        "nothing was committed durably after opening: the writes are only in the log"
    );

    // The database file alone, without its log, lacks them: the log is what keeps them.
    let bare = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), bare.path(), false);
    let without = EmbeddedStore::open(bare.path(), LONG).await.unwrap();
    assert_eq!(without.get("snap").await.unwrap(), None);
    assert!(without.list("log").await.unwrap().is_empty());

    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path(), true);
    let revived = EmbeddedStore::open(crashed.path(), LONG).await.unwrap();
    assert_eq!(revived.stats().replayed.load(Ordering::Relaxed), 25);
    assert_eq!(
        revived.get("snap").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(revived.get("gone").await.unwrap(), None);
    let log = revived.list("log").await.unwrap();
    assert_eq!(log.len(), 22, "each append once, in order");
    assert_eq!(log[19].as_ref(), &[19]);
    assert_eq!(log[21].as_ref(), b"b");
    // The revived store goes on: new writes follow, and a clean close leaves nothing to replay.
    revived
        .append("log", Bytes::from_static(b"c"), LONG)
        .await
        .unwrap();
    drop(revived);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = EmbeddedStore::open(crashed.path(), LONG).await.unwrap();
    assert_eq!(again.stats().replayed.load(Ordering::Relaxed), 0);
    assert_eq!(again.list("log").await.unwrap().len(), 23);
}

#[tokio::test]
async fn embedded_store_refuses_to_open_over_a_log_record_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    drop(embedded(dir.path()).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A whole record with a good checksum whose contents are no write this store knows.
    let (mut wal, _) = wagu_storage::ephemeral::wal::Wal::open(dir.path(), 0, 1 << 20).unwrap();
    wal.append(1, 0, b"\xffnot a write").unwrap();
    drop(wal);
    let Err(e) = EmbeddedStore::open(dir.path(), LONG).await else {
        panic!("opened over a corrupt log record")
    };
    assert!(e.to_string().contains("record 1 is corrupt"), "{e}");
}
