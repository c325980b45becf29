//! Real S3 round trips against the test bed's S3-compatible server.

use bytes::Bytes;
use wagu_storage::BlobStore;
use wagu_storage::blob::S3Blobs;
use wagu_storage::testbed;

#[tokio::test]
async fn smoke_s3_put_get_delete() {
    let Some(cfg) = testbed::s3("smoke_s3_put_get_delete") else {
        return;
    };
    let store = BlobStore::S3(S3Blobs::new(&cfg));
    store
        .ping()
        .await
        .unwrap_or_else(|e| panic!("S3 promised at {:?} but unreachable: {e}", cfg.endpoint));
    let key = format!("smoke/{}.bin", rand::random::<u64>());
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put(&key, Bytes::from(body.clone()), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&body[..]));
    let listed = store.list("smoke/", 1000).await.unwrap();
    assert!(listed.contains(&key), "{key} not in {listed:?}");
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(
        store.get("../outside").await.is_err(),
        "hostile key accepted"
    );
}

#[tokio::test]
async fn smoke_s3_refuses_wrong_credentials() {
    let Some(mut cfg) = testbed::s3("smoke_s3_refuses_wrong_credentials") else {
        return;
    };
    cfg.secret_key = Some("not-the-secret".into());
    let store = BlobStore::S3(S3Blobs::new(&cfg));
    let err = store
        .put("smoke/denied.bin", Bytes::from_static(b"x"), "text/plain")
        .await;
    assert!(err.is_err(), "a bad signature was accepted");
}
