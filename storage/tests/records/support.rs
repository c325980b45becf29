//! The contract's backends (a fresh `redb` directory, a fresh CQL keyspace on the test bed)
//! and the helpers every part shares: paging, panics, clocks, ids.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scylla::client::session::Session;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{Page, Place, Post};
use wagu_storage::records::cql::CqlRecords;
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::{self, RecordError};
use wagu_storage::{cql, testbed};

/// A fresh embedded store in a temporary directory (kept while the directory lives).
pub(crate) async fn embedded() -> (tempfile::TempDir, EmbeddedRecords) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedRecords::open(dir.path())
        .await
        .expect("open the embedded store");
    (dir, store)
}

/// A fresh keyspace on the test bed's CQL database, with a store on it.
pub(crate) struct CqlKeyspace {
    pub(crate) store: CqlRecords,
    session: Arc<Session>,
    ks: String,
}

impl CqlKeyspace {
    /// `None` when the test bed promises no CQL (`WAGU_TEST_CQL_NODES` unset); panics when it
    /// promises one that is unreachable.
    pub(crate) async fn create(test: &str) -> Option<Self> {
        let nodes = testbed::service(testbed::CQL_NODES, test)?;
        let session = Arc::new(
            cql::connect(&cql::parse_nodes(&nodes))
                .await
                .unwrap_or_else(|e| panic!("CQL promised at {nodes} but unreachable: {e}")),
        );
        let ks = format!("wagu_contract_{}", rand::random::<u32>());
        records::cql::migrate(&session, &ks, 1)
            .await
            .unwrap_or_else(|e| panic!("migrating keyspace {ks}: {e}"));
        let store = CqlRecords::new(session.clone(), &ks)
            .await
            .unwrap_or_else(|e| panic!("opening CqlRecords on {ks}: {e}"));
        Some(CqlKeyspace { store, session, ks })
    }

    /// Drops the keyspace, then re-raises the body's panic if it had one.
    pub(crate) async fn drop_and_report(self, outcome: Result<(), Box<dyn Any + Send>>) {
        let CqlKeyspace { store, session, ks } = self;
        drop(store);
        let dropped = session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ())
            .await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        dropped.unwrap_or_else(|e| panic!("DROP KEYSPACE {ks}: {e}"));
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}

pub(crate) const MINUTE: u64 = 60 * 1000;
pub(crate) const HOUR: u64 = 60 * MINUTE;
pub(crate) const DAY: u64 = 24 * HOUR;

/// Every page of a listing, with the rules every page follows: at most `limit` items, and a
/// page with a `next` cursor is full.
pub(crate) async fn pages<T>(
    limit: usize,
    mut fetch: impl AsyncFnMut(Option<&str>) -> records::Result<Page<T>>,
    what: &str,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = fetch(cursor.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{what}, pages of {limit}: page {}: {e}", out.len() + 1));
        let n = page.items.len();
        assert!(
            n <= limit,
            "{what}: a page of {n} items for a limit of {limit}"
        );
        out.push(page.items);
        match page.next {
            Some(next) => {
                assert_eq!(n, limit, "{what}: a page with a next cursor is full");
                assert!(out.len() < 1000, "{what}: paging does not end");
                cursor = Some(next);
            }
            None => return out,
        }
    }
}

/// Polls a future, turning a panic inside it into an `Err`, so a test can clean up first.
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

#[track_caller]
pub(crate) fn expect_invalid<T: std::fmt::Debug>(r: records::Result<T>, what: &str) {
    match r {
        Err(RecordError::Invalid(_)) => {}
        other => panic!("{what}: expected RecordError::Invalid, got {other:?}"),
    }
}

pub(crate) fn pids(v: &[Place]) -> Vec<String> {
    v.iter().map(|p| p.id.0.clone()).collect()
}

pub(crate) fn pids_of(v: &[Post]) -> Vec<String> {
    v.iter().map(|p| p.id.0.clone()).collect()
}

pub(crate) fn ll(lat: f64, lng: f64) -> LatLng {
    LatLng { lat, lng }
}

pub(crate) fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as UnixMillis
}

/// 22 characters of URL-safe base64: 128 random bits, like the server's ids.
pub(crate) fn rand_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// `zz` and six random letters or digits: a word no fixture name or query starts with.
pub(crate) fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut tag = String::from("zz");
    for _ in 0..6 {
        tag.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    tag
}
