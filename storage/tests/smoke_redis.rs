//! Real Redis round trips (write, read back, expire, delete) through the ephemeral store, plus
//! the same contract run against the in-process backend.

use bytes::Bytes;
use std::time::Duration;
use wagu_storage::EphemeralStore;
use wagu_storage::testbed;

async fn contract(store: &EphemeralStore, prefix: &str) {
    let k = format!("{prefix}:value");
    store
        .put(&k, Bytes::from_static(b"hello"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"hello"[..]));
    store.delete(&[&k]).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap(), None);

    let l = format!("{prefix}:list");
    for i in 0..3u8 {
        store
            .append(&l, Bytes::from(vec![i]), Duration::from_secs(30))
            .await
            .unwrap();
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

    let e = format!("{prefix}:expiring");
    store
        .put(&e, Bytes::from_static(b"x"), Duration::from_millis(150))
        .await
        .unwrap();
    store
        .append(&l, Bytes::from_static(b"y"), Duration::from_millis(150))
        .await
        .unwrap();
    assert!(store.get(&e).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get(&e).await.unwrap(), None, "value outlived its TTL");
    assert!(
        store.list(&l).await.unwrap().is_empty(),
        "list outlived its TTL"
    );
}

#[tokio::test]
async fn smoke_memory_ephemeral_contract() {
    contract(&EphemeralStore::memory(), "mem").await;
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
