//! The records contract: one suite, run against every backend, holding each to the rules of
//! `wagu_storage::records` (accounts, external identities, refresh tokens, name and viewport
//! search, posts with idempotency keys, feeds and "near me").
//!
//! - `embedded_contract` runs it on a `redb` file in a temporary directory;
//! - `cql_contract` runs it on the test bed's database (Cassandra 5 standing in for ScyllaDB)
//!   in a keyspace of its own, dropped at the end. `WAGU_TEST_CQL_NODES` unset: skipped;
//!   set but unreachable: fails;
//! - `embedded_survives_reopen` writes, closes, opens the same directory again and reads
//!   everything back ("restart the server and find everything still there").
//!
//! The parts of the contract live by trait: `accounts.rs` ([`AccountStore`]), `places.rs`
//! ([`PlaceStore`]), `posts.rs` ([`PostStore`]); the backends (a fresh directory, a fresh
//! keyspace) and the shared helpers in `support.rs`.
//!
//! Every expectation is computed from the fixture data written here, never read back from
//! the store under test. Both drivers start from an empty store (a fresh directory, a fresh
//! keyspace), which the exact name-search expectations rely on; ids, emails and the paged
//! names also carry a random `zz…` run tag. Each part of the contract keeps to its own
//! accounts, places and map area, and a failing part does not stop the parts after it.

mod accounts;
mod places;
mod posts;
mod support;

use accounts::{PHC, refresh_record};
use places::{box_around, place};
use posts::post;
use support::*;

use wagu_proto::records::{AccountId, Post, PostId};
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::{
    AccountRecord, AccountStore, Created, Idempotency, PlaceStore, PostStore, RecordError,
    RefreshUse, Scope,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_contract() {
    let (_dir, store) = support::embedded().await;
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_contract() {
    let Some(ks) = support::CqlKeyspace::create("cql_contract").await else {
        return;
    };
    // Run the body, then drop the keyspace whether it passed or not, then report.
    let outcome = catch_panic(contract(&ks.store)).await;
    ks.drop_and_report(outcome).await;
}

/// Write one of everything, close the store, open the same directory again: all of it is
/// there, including what was spent (a refresh token) and remembered (an idempotency key);
/// then delete, close, reopen: the deletion is durable too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tag = run_tag();
    let now = now_ms();
    let account = AccountRecord {
        id: AccountId(rand_id()),
        email: format!("{tag}.keeper@example.com"),
        display_name: "지킴이".into(),
        password_hash: PHC.into(),
        created_at: now,
    };
    let spent = refresh_record(&account.id, &format!("{tag}-fam"), now + HOUR);
    let unspent = refresh_record(&account.id, &format!("{tag}-fam"), now + HOUR);
    let place = place(&format!("{tag}:keep"), "Durable Diner", 37.5665, 126.9780);
    let post = post(&account.id, "지킴이", &place, now - DAY, "still here");
    let idem = Idempotency {
        key: format!("{tag}-key"),
        fingerprint: "fp-1".into(),
    };

    {
        let s = EmbeddedRecords::open(dir.path())
            .await
            .expect("open the embedded store");
        s.create_account(&account).await.expect("create_account");
        s.put_refresh(&spent).await.expect("put_refresh");
        s.put_refresh(&unspent).await.expect("put_refresh");
        assert_eq!(
            s.use_refresh(&spent.hash, now).await.expect("use_refresh"),
            RefreshUse::Fresh(spent.clone())
        );
        s.put_place(&place).await.expect("put_place");
        assert_eq!(
            s.create_post(&post, Some(&idem))
                .await
                .expect("create_post"),
            Created::Created(post.clone())
        );
        drop(s);
    }

    {
        let s = EmbeddedRecords::open(dir.path())
            .await
            .expect("reopen the embedded store");
        assert_eq!(
            s.account(&account.id).await.unwrap(),
            Some(account.clone()),
            "account by id after reopen"
        );
        assert_eq!(
            s.account_by_email(&account.email).await.unwrap(),
            Some(account.clone()),
            "account by email after reopen"
        );
        let dup = AccountRecord {
            id: AccountId(rand_id()),
            ..account.clone()
        };
        assert!(
            matches!(s.create_account(&dup).await, Err(RecordError::Taken(_))),
            "the email index survives a reopen"
        );
        assert_eq!(
            s.use_refresh(&spent.hash, now).await.unwrap(),
            RefreshUse::Reused(spent.clone(), now),
            "a token spent before the restart stays spent, at the time it was spent"
        );
        assert_eq!(
            s.use_refresh(&unspent.hash, now).await.unwrap(),
            RefreshUse::Fresh(unspent.clone()),
            "a token issued before the restart can be spent after it"
        );
        assert!(s.has_places().await.unwrap(), "has_places after reopen");
        assert_eq!(s.place(&place.id).await.unwrap(), Some(place.clone()));
        let found = s.search_places("durable", None, 10).await.unwrap();
        assert_eq!(found.items, vec![place.clone()], "name index after reopen");
        let b = box_around(place.location, 0.002);
        let inside = s.places_in_bounds(&b, None, 10).await.unwrap();
        assert_eq!(inside.items, vec![place.clone()], "cell index after reopen");
        assert_eq!(s.post(&post.id).await.unwrap(), Some(post.clone()));
        for scope in [
            Scope::Author(account.id.clone()),
            Scope::Place(place.id.clone()),
        ] {
            let f = s.feed(&scope, None, 10).await.unwrap();
            assert_eq!(f.items, vec![post.clone()], "{scope:?} after reopen");
        }
        let near = s.posts_near(place.location, 1.0, None, 10).await.unwrap();
        assert_eq!(near.items, vec![post.clone()], "near feed after reopen");
        let retry = Post {
            id: PostId(rand_id()),
            ..post.clone()
        };
        assert_eq!(
            s.create_post(&retry, Some(&idem)).await.unwrap(),
            Created::Replayed(post.clone()),
            "an idempotency key is remembered across a restart"
        );
        s.delete_post(&post).await.expect("delete_post");
        drop(s);
    }

    let s = EmbeddedRecords::open(dir.path())
        .await
        .expect("reopen the embedded store a second time");
    assert_eq!(
        s.post(&post.id).await.unwrap(),
        None,
        "a deletion is durable"
    );
    let f = s
        .feed(&Scope::Author(account.id.clone()), None, 10)
        .await
        .unwrap();
    assert!(
        f.items.is_empty(),
        "a deleted post stays out of its author's feed"
    );
    let near = s.posts_near(place.location, 1.0, None, 10).await.unwrap();
    assert!(
        near.items.is_empty(),
        "a deleted post stays out of the near feed"
    );
    assert_eq!(s.place(&place.id).await.unwrap(), Some(place));
    assert_eq!(s.account(&account.id).await.unwrap(), Some(account));
}

/// The whole contract, on a fresh store. Each part uses its own accounts, places and map
/// area, so its expectations depend on its own fixture only.
async fn contract<S: AccountStore + PlaceStore + PostStore>(s: &S) {
    let tag = run_tag();
    eprintln!("records contract run tag: {tag}");
    // Each part is caught, so one failure does not hide the parts after it.
    let mut failed: Vec<String> = Vec::new();
    macro_rules! part {
        ($module:ident :: $name:ident) => {
            if let Err(panic) = catch_panic($module::$name(s, &tag)).await {
                failed.push(format!("{}: {}", stringify!($name), panic_message(&*panic)));
            }
        };
    }
    part!(accounts::accounts);
    part!(accounts::identities);
    part!(accounts::refresh_tokens);
    part!(places::places_by_name);
    part!(places::place_moves);
    part!(places::places_in_bounds);
    part!(posts::posts_crud);
    part!(posts::edit_conflicts);
    part!(posts::idempotency);
    part!(posts::feeds);
    part!(posts::near_feed);
    assert!(
        failed.is_empty(),
        "{} contract part(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
