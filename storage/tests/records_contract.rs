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
//! Every expectation is computed from the fixture data written here, never read back from
//! the store under test. Both drivers start from an empty store (a fresh directory, a fresh
//! keyspace), which the exact name-search expectations rely on; ids, emails and the paged
//! names also carry a random `zz…` run tag. Each part of the contract keeps to its own
//! accounts, places and map area, and a failing part does not stop the parts after it.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use unicode_normalization::UnicodeNormalization;
use wagu_proto::PlaceId;
use wagu_proto::model::{Bounds, LatLng, UnixMillis};
use wagu_proto::records::{
    AccountId, MAX_MENU_ITEMS, MAX_MENU_NAME_CHARS, MAX_PHOTO_ID_BYTES, MAX_PHOTOS,
    MAX_POST_TEXT_CHARS, MAX_PRICE, MenuItem, Page, PhotoId, Place, Post, PostDraft, PostId,
    TextOrigin,
};
use wagu_storage::records::cql::CqlRecords;
use wagu_storage::records::embedded::EmbeddedRecords;
use wagu_storage::records::{
    self, AccountRecord, AccountStore, BUCKET_MILLIS, Created, Idempotency, PlaceStore, PostCursor,
    PostStore, RecordError, RefreshRecord, RefreshUse, Scope, bucket_of, encode_cursor, geo,
};
use wagu_storage::{cql, testbed};

const MINUTE: u64 = 60 * 1000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// Drivers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_contract() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedRecords::open(dir.path())
        .await
        .expect("open the embedded store");
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_contract() {
    let Some(nodes) = testbed::service(testbed::CQL_NODES, "cql_contract") else {
        return;
    };
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
    // Run the body, then drop the keyspace whether it passed or not, then report.
    let outcome = catch_panic(contract(&store)).await;
    drop(store);
    let dropped = session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ())
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.unwrap_or_else(|e| panic!("DROP KEYSPACE {ks}: {e}"));
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
        ($name:ident) => {
            if let Err(panic) = catch_panic($name(s, &tag)).await {
                failed.push(format!("{}: {}", stringify!($name), panic_message(&*panic)));
            }
        };
    }
    part!(accounts);
    part!(identities);
    part!(refresh_tokens);
    part!(places_by_name);
    part!(place_moves);
    part!(places_in_bounds);
    part!(posts_crud);
    part!(edit_conflicts);
    part!(idempotency);
    part!(feeds);
    part!(near_feed);
    assert!(
        failed.is_empty(),
        "{} contract part(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts and refresh tokens
// ---------------------------------------------------------------------------------------------

const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn account(tag: &str, who: &str, display_name: &str) -> AccountRecord {
    AccountRecord {
        id: AccountId(rand_id()),
        email: format!("{tag}.{who}@example.com"),
        display_name: display_name.into(),
        password_hash: PHC.into(),
        created_at: now_ms(),
    }
}

async fn accounts<S: AccountStore>(s: &S, tag: &str) {
    let alice = account(tag, "alice", "Alice");
    let bob = account(tag, "bob", "밥");
    assert_eq!(s.account(&alice.id).await.unwrap(), None, "unknown id");
    assert_eq!(
        s.account_by_email(&alice.email).await.unwrap(),
        None,
        "unknown email"
    );
    s.create_account(&alice).await.expect("create alice");
    s.create_account(&bob).await.expect("create bob");
    for a in [&alice, &bob] {
        assert_eq!(s.account(&a.id).await.unwrap().as_ref(), Some(a), "by id");
        assert_eq!(
            s.account_by_email(&a.email).await.unwrap().as_ref(),
            Some(a),
            "by email"
        );
    }

    // A second account with a taken email is refused and leaves no trace.
    let mallory = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Mallory".into(),
        ..alice.clone()
    };
    match s.create_account(&mallory).await {
        Err(RecordError::Taken(_)) => {}
        other => panic!("duplicate email: expected RecordError::Taken, got {other:?}"),
    }
    assert_eq!(
        s.account(&mallory.id).await.unwrap(),
        None,
        "a refused account is not stored"
    );
    assert_eq!(
        s.account_by_email(&alice.email).await.unwrap(),
        Some(alice.clone()),
        "the email still leads to the first account"
    );

    // Two sign-ups racing for one email: exactly one wins.
    let one = account(tag, "race", "One");
    let two = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Two".into(),
        ..one.clone()
    };
    let (r1, r2) = tokio::join!(s.create_account(&one), s.create_account(&two));
    let (winner, loser) = match (&r1, &r2) {
        (Ok(()), Err(RecordError::Taken(_))) => (&one, &two),
        (Err(RecordError::Taken(_)), Ok(())) => (&two, &one),
        _ => panic!(
            "two concurrent sign-ups with one email: expected one Ok and one Taken, got {r1:?} and {r2:?}"
        ),
    };
    assert_eq!(
        s.account_by_email(&one.email).await.unwrap().as_ref(),
        Some(winner),
        "the email leads to the account that won"
    );
    assert_eq!(
        s.account(&loser.id).await.unwrap(),
        None,
        "the account that lost is not stored"
    );
}

/// Accounts of an OpenID Connect log-in: one per (provider, subject), created once however
/// many first log-ins race, and their email is not a login.
async fn identities<S: AccountStore>(s: &S, tag: &str) {
    let oidc = |who: &str, name: &str| AccountRecord {
        password_hash: String::new(),
        ..account(tag, who, name)
    };
    let subject = format!("{tag}-sub-1");
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        None,
        "an identity never linked"
    );

    let first = oidc("kakao-1", "카카오 사용자");
    assert_eq!(
        s.create_account_for_identity(&first, "kakao", &subject)
            .await
            .expect("create_account_for_identity"),
        first,
        "a first log-in creates the account given"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "by identity"
    );
    assert_eq!(
        s.account(&first.id).await.unwrap(),
        Some(first.clone()),
        "by id"
    );

    // A later first log-in through the same identity (another fresh id) gets the linked
    // account and creates nothing.
    let second = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Second".into(),
        ..first.clone()
    };
    assert_eq!(
        s.create_account_for_identity(&second, "kakao", &subject)
            .await
            .unwrap(),
        first,
        "an identity already linked returns its account"
    );
    assert_eq!(
        s.account(&second.id).await.unwrap(),
        None,
        "no second account for a linked identity"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "the identity still leads to the first account"
    );

    // The same subject under another provider is another identity.
    assert_eq!(
        s.account_by_identity("google", &subject).await.unwrap(),
        None,
        "the subject under another provider is not linked"
    );
    let elsewhere = oidc("google-1", "Google User");
    assert_eq!(
        s.create_account_for_identity(&elsewhere, "google", &subject)
            .await
            .unwrap(),
        elsewhere,
        "the same subject under another provider gets its own account"
    );
    assert_eq!(
        s.account_by_identity("google", &subject).await.unwrap(),
        Some(elsewhere.clone())
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "linking another provider's subject leaves this one alone"
    );

    // The email of an identity's account is not claimed: a password sign-up can take it.
    assert_eq!(
        s.account_by_email(&first.email).await.unwrap(),
        None,
        "an identity's email is not a login"
    );
    let password = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Password".into(),
        password_hash: PHC.into(),
        ..first.clone()
    };
    s.create_account(&password)
        .await
        .expect("a password sign-up with the email of an identity's account");
    assert_eq!(
        s.account_by_email(&first.email).await.unwrap(),
        Some(password.clone()),
        "the email leads to the password account"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "the identity still leads to its own account"
    );

    // Concurrent first log-ins through one identity: one account, the same for both.
    for round in 0..4 {
        let subject = format!("{tag}-race-{round}");
        let one = oidc(&format!("race-{round}-a"), "One");
        let two = oidc(&format!("race-{round}-b"), "Two");
        let (r1, r2) = tokio::join!(
            s.create_account_for_identity(&one, "kakao", &subject),
            s.create_account_for_identity(&two, "kakao", &subject)
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert_eq!(
            r1.id, r2.id,
            "round {round}: concurrent first log-ins return the same account"
        );
        let (winner, loser) = if r1.id == one.id {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert_eq!(
            r1, *winner,
            "round {round}: the account returned is one of the two given"
        );
        assert_eq!(r2, *winner, "round {round}: both get the winner's account");
        assert_eq!(
            s.account_by_identity("kakao", &subject).await.unwrap(),
            Some(winner.clone()),
            "round {round}: the identity leads to the winner"
        );
        assert_eq!(
            s.account(&loser.id).await.unwrap(),
            None,
            "round {round}: the loser's account is not stored"
        );
    }
}

fn refresh_record(account: &AccountId, family: &str, expires_at: UnixMillis) -> RefreshRecord {
    RefreshRecord {
        hash: format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ),
        account: account.clone(),
        family: family.into(),
        expires_at,
    }
}

async fn refresh_tokens<S: AccountStore>(s: &S, tag: &str) {
    let now = now_ms();
    let acc = AccountId(rand_id());
    let fam = |n: u32| format!("{tag}-family-{n}");

    // Never issued.
    let ghost = refresh_record(&acc, &fam(0), now + HOUR);
    assert_eq!(
        s.use_refresh(&ghost.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a token never issued"
    );

    // Spent once, then replayed.
    let t = refresh_record(&acc, &fam(1), now + HOUR);
    s.put_refresh(&t).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&t.hash, now).await.unwrap(),
        RefreshUse::Fresh(t.clone()),
        "first use"
    );
    assert_eq!(
        s.use_refresh(&t.hash, now + 1).await.unwrap(),
        RefreshUse::Reused(t.clone(), now),
        "second use: reused, spent at the first use's `now`"
    );
    assert_eq!(
        s.use_refresh(&t.hash, now + MINUTE).await.unwrap(),
        RefreshUse::Reused(t.clone(), now),
        "third use: still the first use's time"
    );
    // Spent at another time than the suite's `now`: the time reported is that use's.
    let t2 = refresh_record(&acc, &fam(1), now + HOUR);
    s.put_refresh(&t2).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&t2.hash, now + 7).await.unwrap(),
        RefreshUse::Fresh(t2.clone()),
        "first use, at now + 7"
    );
    assert_eq!(
        s.use_refresh(&t2.hash, now + 9).await.unwrap(),
        RefreshUse::Reused(t2.clone(), now + 7),
        "second use: spent at now + 7"
    );

    // Revoking a family kills its unspent, spent and later tokens, and no other family's.
    let spent = refresh_record(&acc, &fam(3), now + HOUR);
    let unspent = refresh_record(&acc, &fam(3), now + HOUR);
    let other = refresh_record(&acc, &fam(4), now + HOUR);
    for r in [&spent, &unspent, &other] {
        s.put_refresh(r).await.expect("put_refresh");
    }
    assert_eq!(
        s.use_refresh(&spent.hash, now).await.unwrap(),
        RefreshUse::Fresh(spent.clone())
    );
    s.revoke_family(&fam(3), now + HOUR)
        .await
        .expect("revoke_family");
    assert_eq!(
        s.use_refresh(&unspent.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "an unspent token of a revoked family"
    );
    assert_eq!(
        s.use_refresh(&spent.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a spent token of a revoked family"
    );
    let later = refresh_record(&acc, &fam(3), now + HOUR);
    s.put_refresh(&later).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&later.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a token issued in a family after its revocation"
    );
    assert_eq!(
        s.use_refresh(&other.hash, now).await.unwrap(),
        RefreshUse::Fresh(other.clone()),
        "another family is untouched by the revocation"
    );

    // A revocation lasts until its `until`: one that ended before `now` revokes nothing.
    let ended = refresh_record(&acc, &fam(5), now + HOUR);
    s.put_refresh(&ended).await.expect("put_refresh");
    s.revoke_family(&fam(5), now - MINUTE)
        .await
        .expect("revoke_family");
    assert_eq!(
        s.use_refresh(&ended.hash, now).await.unwrap(),
        RefreshUse::Fresh(ended.clone()),
        "a token of a family whose revocation ended (until = now - 1 min) before now"
    );

    // Concurrent uses of one token (use i at `now + i`): exactly one is Fresh, the others
    // see it spent at the `now` of the one that was Fresh.
    for round in 0..6 {
        let r = refresh_record(&acc, &fam(10 + round), now + HOUR);
        s.put_refresh(&r).await.expect("put_refresh");
        let got = if round % 2 == 0 {
            let (a, b) = tokio::join!(s.use_refresh(&r.hash, now), s.use_refresh(&r.hash, now + 1));
            vec![a.unwrap(), b.unwrap()]
        } else {
            let (a, b, c) = tokio::join!(
                s.use_refresh(&r.hash, now),
                s.use_refresh(&r.hash, now + 1),
                s.use_refresh(&r.hash, now + 2)
            );
            vec![a.unwrap(), b.unwrap(), c.unwrap()]
        };
        let fresh: Vec<usize> = (0..got.len())
            .filter(|&i| got[i] == RefreshUse::Fresh(r.clone()))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "round {round}: {} concurrent uses of one token: exactly one Fresh; got {got:?}",
            got.len()
        );
        let spent_at = now + fresh[0] as u64;
        for (i, u) in got.iter().enumerate() {
            if i != fresh[0] {
                assert_eq!(
                    *u,
                    RefreshUse::Reused(r.clone(), spent_at),
                    "round {round}: use {i} is Reused at the Fresh use's time; got {got:?}"
                );
            }
        }
    }

    // Expiry is judged against the `now` the caller passes. Last, because a store may prune
    // by that `now`, and the clock does not run backwards.
    let before_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    let at_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    let after_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    for r in [&before_expiry, &at_expiry, &after_expiry] {
        s.put_refresh(r).await.expect("put_refresh");
    }
    assert_eq!(
        s.use_refresh(&before_expiry.hash, before_expiry.expires_at - 1)
            .await
            .unwrap(),
        RefreshUse::Fresh(before_expiry.clone()),
        "used a millisecond before its expiry"
    );
    assert_eq!(
        s.use_refresh(&at_expiry.hash, at_expiry.expires_at)
            .await
            .unwrap(),
        RefreshUse::Unknown,
        "used at its expiry (expires_at == now)"
    );
    assert_eq!(
        s.use_refresh(&after_expiry.hash, after_expiry.expires_at + DAY)
            .await
            .unwrap(),
        RefreshUse::Unknown,
        "used a day after its expiry"
    );
}

// ---------------------------------------------------------------------------------------------
// Places
// ---------------------------------------------------------------------------------------------

fn place(id: &str, name: &str, lat: f64, lng: f64) -> Place {
    Place {
        id: PlaceId(id.into()),
        name: name.into(),
        category: "korean".into(),
        address: format!("{name}, 1 Example-ro"),
        location: LatLng { lat, lng },
        phone: Some("+82 2-000-0000".into()),
        hours: None,
    }
}

async fn put_all<S: PlaceStore>(s: &S, places: &[&Place]) {
    for p in places {
        s.put_place(p)
            .await
            .unwrap_or_else(|e| panic!("put_place {}: {e}", p.id.0));
    }
}

/// One page of a name search, asserting it is the whole answer.
async fn search_all<S: PlaceStore>(s: &S, q: &str) -> Vec<Place> {
    let page = s
        .search_places(q, None, 100)
        .await
        .unwrap_or_else(|e| panic!("search_places({q:?}): {e}"));
    assert_eq!(page.next, None, "search {q:?} fits one page of 100");
    page.items
}

async fn places_by_name<S: PlaceStore>(s: &S, tag: &str) {
    assert!(
        !s.has_places().await.expect("has_places"),
        "a fresh store has no places"
    );
    // Seventeen significant digits: a location must come back bit for bit.
    let bistro = place(
        &format!("{tag}:bistro"),
        "Bistro Paul",
        37.566_535_138_604_49,
        126.977_969_383_620_1,
    );
    let papa = Place {
        hours: Some("Mo-Sa 11:00-22:00".into()),
        phone: None,
        ..place(&format!("{tag}:papa"), "Papa Paul", 37.5700, 126.9920)
    };
    // Only the required fields: empty strings and absent options come back as they went in.
    let golbaeng = Place {
        category: String::new(),
        address: String::new(),
        phone: None,
        hours: None,
        ..place(
            &format!("{tag}:golbaeng"),
            "을지로 골뱅이",
            37.5660,
            126.9910,
        )
    };
    let myeonok = place(&format!("{tag}:myeonok"), "을지면옥", 37.5667, 126.9925);
    // Stored as the keyboard sent it: decomposed (NFD) Hangul.
    let nfd_name: String = "맛집 서울".nfd().collect();
    assert_ne!(
        nfd_name, "맛집 서울",
        "fixture: the name is really decomposed"
    );
    let matjip = place(&format!("{tag}:matjip"), &nfd_name, 37.5651, 126.9801);
    let cafe = place(
        &format!("{tag}:cafe"),
        "ＣＡＦＥ Ｎｏｉｒ",
        37.5641,
        126.9811,
    );
    put_all(s, &[&bistro, &papa, &golbaeng, &myeonok, &matjip, &cafe]).await;
    assert!(s.has_places().await.expect("has_places"), "after put_place");
    for p in [&bistro, &papa, &golbaeng, &myeonok, &matjip, &cafe] {
        assert_eq!(
            s.place(&p.id).await.unwrap().as_ref(),
            Some(p),
            "place {}",
            p.id.0
        );
    }
    assert_eq!(
        s.place(&PlaceId(format!("{tag}:nowhere"))).await.unwrap(),
        None
    );

    // Latin: case-insensitive prefixes of the name and of later words.
    assert_eq!(search_all(s, "BIS").await, vec![bistro.clone()], "BIS");
    assert_eq!(
        search_all(s, "bistro p").await,
        vec![bistro.clone()],
        "bistro p"
    );
    assert_eq!(
        search_all(s, "  Bistro--PAUL! ").await,
        vec![bistro.clone()],
        "punctuation in the query"
    );
    // Both match through their token "paul": ordered by place id.
    let mut pauls = vec![bistro.clone(), papa.clone()];
    pauls.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(pids(&search_all(s, "pau").await), pids(&pauls), "pau");
    // "Papa Paul" matches "pa" through "papa paul" and "paul": it appears once, at its first
    // token ("papa paul" < "paul").
    assert_eq!(
        pids(&search_all(s, "pa").await),
        pids(&[papa.clone(), bistro.clone()]),
        "pa: a place matching through two tokens appears once"
    );
    assert_eq!(
        search_all(s, "caf").await,
        vec![cafe.clone()],
        "full-width name"
    );
    assert_eq!(
        search_all(s, "ＣＡＦ").await,
        vec![cafe.clone()],
        "full-width query"
    );
    assert_eq!(
        search_all(s, "noir").await,
        vec![cafe.clone()],
        "later word"
    );

    // Korean.
    assert!("을지로 골뱅이" < "을지면옥", "fixture: token order");
    assert_eq!(
        pids(&search_all(s, "을지").await),
        pids(&[golbaeng.clone(), myeonok.clone()]),
        "을지"
    );
    assert_eq!(search_all(s, "골뱅").await, vec![golbaeng.clone()], "골뱅");
    assert_eq!(
        pids(&search_all(s, "을").await),
        pids(&[golbaeng.clone(), myeonok.clone()]),
        "one syllable"
    );
    assert_eq!(search_all(s, "b").await, vec![bistro.clone()], "one letter");
    assert_eq!(
        search_all(s, "골뱅이").await,
        vec![golbaeng.clone()],
        "골뱅이"
    );
    let decomposed_query = "\u{110B}\u{1173}\u{11AF}\u{110C}\u{1175}"; // 을지, as jamo
    assert_eq!(
        pids(&search_all(s, decomposed_query).await),
        pids(&[golbaeng.clone(), myeonok.clone()]),
        "a decomposed query is normalised"
    );
    assert_eq!(
        search_all(s, "맛집").await,
        vec![matjip.clone()],
        "a decomposed name is found by the composed query, and returned as stored"
    );
    assert_eq!(search_all(s, "서울").await, vec![matjip.clone()], "서울");

    // No match, and queries with nothing to search for.
    assert!(
        search_all(s, &format!("{tag}q")).await.is_empty(),
        "no match"
    );
    expect_invalid(
        s.search_places("--", None, 10).await,
        "a query of punctuation",
    );
    expect_invalid(s.search_places("", None, 10).await, "an empty query");

    // Paging across many matches: ordered by (token, id), every match exactly once. Ids are
    // chosen so that id order and name order disagree, and two names are equal.
    let up = tag.to_uppercase();
    let noodles: Vec<Place> = [
        ("n5", 1),
        ("n2", 2),
        ("n9", 3),
        ("n1", 3),
        ("n7", 4),
        ("n3", 5),
        ("n8", 6),
        ("n4", 7),
    ]
    .iter()
    .map(|(id, k)| {
        let name = if k % 2 == 0 {
            format!("{up} Noodle {k}")
        } else {
            format!("{tag} noodle {k}")
        };
        place(&format!("{tag}:{id}"), &name, 37.5000, 127.0000)
    })
    .collect();
    put_all(s, &noodles.iter().collect::<Vec<_>>()).await;
    let mut expected = noodles.clone();
    expected.sort_by_key(|p| (p.name.to_lowercase(), p.id.clone()));
    assert_eq!(
        pids(&search_all(s, tag).await),
        pids(&expected),
        "{tag}: one page"
    );
    // A one-character token ("… noodle 3" ends in "3"): equal tokens, by place id.
    assert_eq!(
        pids(&search_all(s, "3").await),
        vec![format!("{tag}:n1"), format!("{tag}:n9")],
        "a digit"
    );
    for limit in [1, 2, 3, 5] {
        let q = tag.to_uppercase();
        let got = pages(
            limit,
            async |c| s.search_places(&q, c, limit).await,
            "name search",
        )
        .await
        .concat();
        assert_eq!(pids(&got), pids(&expected), "{tag}: pages of {limit}");
        assert_eq!(got, expected, "{tag}: pages of {limit}, whole places");
    }
    let two = pages(1, async |c| s.search_places("pau", c, 1).await, "pau").await;
    assert_eq!(two.len(), 2, "pau in pages of 1: two pages");

    // Cursors that this search did not issue.
    expect_invalid(
        s.search_places(tag, Some("not a cursor!"), 2).await,
        "a garbage cursor",
    );
    expect_invalid(
        s.search_places(
            tag,
            Some(&encode_cursor(&serde_json::json!({"cell": 0, "id": "x"}))),
            2,
        )
        .await,
        "a viewport cursor given to name search",
    );
}

/// Re-putting a place replaces its name and cell index entries.
async fn place_moves<S: PlaceStore>(s: &S, tag: &str) {
    let id = format!("{tag}:mover");
    let first = place(&id, "Oldname Tavern", 37.8813, 127.7298); // Chuncheon
    s.put_place(&first).await.expect("put_place");
    assert_eq!(search_all(s, "oldname").await, vec![first.clone()]);
    assert_eq!(
        in_box(s, &box_around(first.location, 0.001)).await,
        vec![first.clone()]
    );

    // Renamed and moved a little: another precision-6 cell, the same precision-4 cell.
    let second = Place {
        name: "Newname Grill".into(),
        category: "grill".into(),
        location: LatLng {
            lat: 37.8900,
            lng: 127.7400,
        },
        ..first.clone()
    };
    let (c6a, c6b) = (
        geo::encode(first.location, 6),
        geo::encode(second.location, 6),
    );
    let (c4a, c4b) = (
        geo::encode(first.location, 4),
        geo::encode(second.location, 4),
    );
    assert!(
        c6a != c6b && c4a == c4b,
        "fixture: a move within one city cell"
    );
    s.put_place(&second).await.expect("put_place again");
    assert_eq!(s.place(&first.id).await.unwrap(), Some(second.clone()));
    assert!(
        search_all(s, "oldname").await.is_empty(),
        "the old name is gone"
    );
    assert!(
        search_all(s, "tavern").await.is_empty(),
        "the old name's words are gone"
    );
    assert_eq!(search_all(s, "newname").await, vec![second.clone()]);
    assert_eq!(search_all(s, "grill").await, vec![second.clone()]);
    assert!(
        in_box(s, &box_around(first.location, 0.001))
            .await
            .is_empty(),
        "gone from the old viewport"
    );
    assert_eq!(
        in_box(s, &box_around(second.location, 0.001)).await,
        vec![second.clone()],
        "found in the new viewport"
    );
    assert!(cell_ids(s, &c6a).await.is_empty(), "old precision-6 cell");
    assert_eq!(
        cell_ids(s, &c6b).await,
        vec![id.clone()],
        "new precision-6 cell"
    );
    assert_eq!(
        cell_ids(s, &c4a).await,
        vec![id.clone()],
        "precision-4 cell, once"
    );

    // Put again unchanged: no entry is doubled.
    s.put_place(&second).await.expect("put_place unchanged");
    let rows = s
        .places_by_token("newname", None, 10)
        .await
        .expect("places_by_token");
    assert_eq!(
        rows.len(),
        1,
        "one name entry after an unchanged put: {rows:?}"
    );
    assert_eq!(cell_ids(s, &c6b).await, vec![id.clone()], "one cell entry");

    // Moved to another city.
    let third = Place {
        location: LatLng {
            lat: 35.1796,
            lng: 129.0756,
        },
        ..second.clone()
    };
    s.put_place(&third).await.expect("put_place moved");
    assert!(
        cell_ids(s, &c6b).await.is_empty(),
        "left the precision-6 cell"
    );
    assert!(
        cell_ids(s, &c4b).await.is_empty(),
        "left the precision-4 cell"
    );
    assert_eq!(
        cell_ids(s, &geo::encode(third.location, 4)).await,
        vec![id.clone()]
    );
    assert_eq!(
        in_box(s, &box_around(third.location, 0.001)).await,
        vec![third.clone()]
    );
    assert!(
        in_box(s, &box_around(second.location, 0.001))
            .await
            .is_empty()
    );
    assert_eq!(search_all(s, "newname").await, vec![third.clone()]);
}

async fn cell_ids<S: PlaceStore>(s: &S, cell: &str) -> Vec<String> {
    let rows = s
        .places_in_cell(cell, None, 100)
        .await
        .unwrap_or_else(|e| panic!("places_in_cell({cell}): {e}"));
    pids(&rows)
}

/// One page of a viewport listing, asserting it is the whole answer.
async fn in_box<S: PlaceStore>(s: &S, b: &Bounds) -> Vec<Place> {
    let page = s
        .places_in_bounds(b, None, 100)
        .await
        .unwrap_or_else(|e| panic!("places_in_bounds({b:?}): {e}"));
    assert_eq!(page.next, None, "viewport fits one page of 100");
    page.items
}

fn box_around(c: LatLng, half: f64) -> Bounds {
    Bounds {
        sw: ll(c.lat - half, c.lng - half),
        ne: ll(c.lat + half, c.lng + half),
    }
}

/// What a viewport listing must return: cell by cell in cover order, each by id, only the
/// places inside the box.
fn expected_in_bounds(b: &Bounds, fixture: &[Place]) -> Vec<Place> {
    let cells = geo::place_cover(b).expect("fixture: a listable viewport");
    let mut out = Vec::new();
    for cell in &cells {
        let mut here: Vec<Place> = fixture
            .iter()
            .filter(|p| {
                geo::encode(p.location, cell.len()) == *cell && geo::contains(b, p.location)
            })
            .cloned()
            .collect();
        here.sort_by(|a, b| a.id.cmp(&b.id));
        out.extend(here);
    }
    out
}

async fn places_in_bounds<S: PlaceStore>(s: &S, tag: &str) {
    // A small viewport in Daejeon, read at precision 6.
    let view = Bounds {
        sw: ll(36.3500, 127.3800),
        ne: ll(36.3580, 127.3920),
    };
    let p = |n: &str, lat: f64, lng: f64| {
        place(&format!("{tag}:b{n}"), &format!("Daejeon {n}"), lat, lng)
    };
    let inside = [
        p("07", 36.3501, 127.3801),
        p("03", 36.3540, 127.3850),
        p("11", 36.3541, 127.3851),
        p("01", 36.3542, 127.3852),
        p("05", 36.3579, 127.3919),
        p("10", 36.3520, 127.3900),
        p("02", 36.3500, 127.3800), // the south-west corner: on the edge is inside
        p("08", 36.3555, 127.3835),
    ];
    // Outside the box but in cells the viewport reads.
    let near_miss = [
        p("04", 36.3582, 127.3850),
        p("09", 36.3540, 127.3922),
        p("06", 36.3498, 127.3870),
    ];
    // Further out: in the city cell, not in the viewport's cells.
    let far = [p("12", 36.3700, 127.4100), p("00", 36.3300, 127.3600)];
    let cells = geo::place_cover(&view).expect("fixture: a small viewport");
    assert!(
        cells.iter().all(|c| c.len() == 6),
        "fixture: read at precision 6"
    );
    for q in &near_miss {
        assert!(
            !geo::contains(&view, q.location) && cells.contains(&geo::encode(q.location, 6)),
            "fixture: {} is outside the box, in one of its cells",
            q.id.0
        );
    }
    for q in &far {
        assert!(
            !cells.contains(&geo::encode(q.location, 6)),
            "fixture: {} is far",
            q.id.0
        );
    }
    let mut per_cell: Vec<usize> = cells
        .iter()
        .map(|c| {
            inside
                .iter()
                .filter(|q| geo::encode(q.location, 6) == *c)
                .count()
        })
        .collect();
    per_cell.sort();
    assert!(
        per_cell.iter().filter(|&&n| n > 0).count() >= 3 && per_cell.last() > Some(&1),
        "fixture: inside places spread over several cells, some sharing one: {per_cell:?}"
    );
    let all: Vec<Place> = inside
        .iter()
        .chain(&near_miss)
        .chain(&far)
        .cloned()
        .collect();
    put_all(s, &all.iter().collect::<Vec<_>>()).await;

    let expected = expected_in_bounds(&view, &all);
    assert_eq!(
        expected.len(),
        inside.len(),
        "fixture: the expectation holds every inside place"
    );
    assert_eq!(
        pids(&in_box(s, &view).await),
        pids(&expected),
        "small viewport"
    );
    for limit in [1, 2, 3] {
        let got = pages(
            limit,
            async |c| s.places_in_bounds(&view, c, limit).await,
            "viewport",
        )
        .await
        .concat();
        assert_eq!(
            pids(&got),
            pids(&expected),
            "small viewport in pages of {limit}"
        );
        assert_eq!(
            got, expected,
            "small viewport in pages of {limit}, whole places"
        );
    }

    // A city-sized viewport, read at precision 4: every fixture place, and only them.
    let city = Bounds {
        sw: ll(36.2500, 127.2800),
        ne: ll(36.4500, 127.4800),
    };
    let city_cells = geo::place_cover(&city).expect("fixture: a city viewport");
    assert!(
        city_cells.iter().all(|c| c.len() == 4),
        "fixture: read at precision 4"
    );
    let expected = expected_in_bounds(&city, &all);
    assert_eq!(
        expected.len(),
        all.len(),
        "fixture: the city holds every place"
    );
    assert_eq!(
        pids(&in_box(s, &city).await),
        pids(&expected),
        "city viewport"
    );
    for limit in [2, 5] {
        let got = pages(
            limit,
            async |c| s.places_in_bounds(&city, c, limit).await,
            "city",
        )
        .await
        .concat();
        assert_eq!(
            pids(&got),
            pids(&expected),
            "city viewport in pages of {limit}"
        );
    }

    // A viewport across the antimeridian.
    let fiji = Bounds {
        sw: ll(-17.0, 179.9),
        ne: ll(-16.9, -179.9),
    };
    let east = place(&format!("{tag}:fiji-e"), "Fiji East", -16.95, 179.95);
    let west = place(&format!("{tag}:fiji-w"), "Fiji West", -16.95, -179.95);
    put_all(s, &[&east, &west]).await;
    let expected = expected_in_bounds(&fiji, &[east.clone(), west.clone()]);
    assert_eq!(expected.len(), 2, "fixture: both sides of the antimeridian");
    assert_eq!(
        pids(&in_box(s, &fiji).await),
        pids(&expected),
        "antimeridian viewport"
    );

    // An empty viewport.
    assert!(
        in_box(s, &box_around(ll(-45.0, -120.0), 0.01))
            .await
            .is_empty()
    );

    // Refused: too large to list, and cursors this listing did not issue.
    let world = Bounds {
        sw: ll(-80.0, -170.0),
        ne: ll(80.0, 170.0),
    };
    expect_invalid(
        s.places_in_bounds(&world, None, 10).await,
        "the whole world",
    );
    expect_invalid(
        s.places_in_bounds(&view, Some("garbage"), 2).await,
        "a garbage cursor",
    );
    expect_invalid(
        s.places_in_bounds(
            &view,
            Some(&encode_cursor(&serde_json::json!({"cell": 999, "id": "x"}))),
            2,
        )
        .await,
        "a cursor past the viewport's cells",
    );
    expect_invalid(
        s.places_in_bounds(
            &view,
            Some(&encode_cursor(
                &serde_json::json!({"token": "a", "id": "x"}),
            )),
            2,
        )
        .await,
        "a name-search cursor given to a viewport",
    );
}

// ---------------------------------------------------------------------------------------------
// Posts
// ---------------------------------------------------------------------------------------------

fn post(
    author: &AccountId,
    author_name: &str,
    place: &Place,
    created_at: UnixMillis,
    text: &str,
) -> Post {
    Post {
        id: PostId(rand_id()),
        author: author.clone(),
        author_name: author_name.into(),
        place_name: place.name.clone(),
        location: place.location,
        created_at,
        updated_at: created_at,
        draft: PostDraft {
            place_id: place.id.clone(),
            visit_date: "2026-01-15".into(),
            menu: vec![
                MenuItem {
                    name: "물냉면".into(),
                    price: Some(14_000),
                },
                MenuItem {
                    name: "편육".into(),
                    price: None,
                },
            ],
            rating: 4,
            text: text.into(),
            photos: vec![PhotoId("ph_1".into())],
            text_origin: TextOrigin::Author,
        },
    }
}

/// Newest first by (created_at, id), both descending.
fn newest_first(mut v: Vec<Post>) -> Vec<Post> {
    v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    v
}

/// One page of a feed, asserting it is the whole answer.
async fn feed_all<S: PostStore>(s: &S, scope: &Scope) -> Vec<Post> {
    let page = s
        .feed(scope, None, 100)
        .await
        .unwrap_or_else(|e| panic!("feed({scope:?}): {e}"));
    assert_eq!(page.next, None, "feed {scope:?} fits one page of 100");
    page.items
}

async fn near_all<S: PostStore>(s: &S, c: LatLng, radius_km: f64) -> Vec<Post> {
    let page = s
        .posts_near(c, radius_km, None, 100)
        .await
        .unwrap_or_else(|e| panic!("posts_near({c:?}, {radius_km}): {e}"));
    assert_eq!(page.next, None, "near feed fits one page of 100");
    page.items
}

async fn create<S: PostStore>(s: &S, p: &Post) {
    assert_eq!(
        s.create_post(p, None).await.expect("create_post"),
        Created::Created(p.clone()),
        "create_post {}",
        p.id
    );
}

async fn posts_crud<S: PlaceStore + PostStore>(s: &S, tag: &str) {
    // Incheon: two places a few kilometres apart, in different post cells.
    let p1 = place(
        &format!("{tag}:crud-1"),
        "Incheon One",
        37.456_291_234_567_89,
        126.705_212_345_678_91,
    );
    let p2 = place(&format!("{tag}:crud-2"), "Incheon Two", 37.4563, 126.6052);
    assert_ne!(
        geo::encode(p1.location, geo::POST_PRECISION),
        geo::encode(p2.location, geo::POST_PRECISION),
        "fixture: two post cells"
    );
    put_all(s, &[&p1, &p2]).await;
    let author = AccountId(rand_id());
    let base = now_ms() - 10 * DAY;
    let original = post(&author, "Alice", &p1, base, "first visit");
    let other = post(&author, "Alice", &p1, base + HOUR, "second visit");
    assert_eq!(s.post(&original.id).await.unwrap(), None, "before creation");
    create(s, &original).await;
    create(s, &other).await;
    assert_eq!(s.post(&original.id).await.unwrap(), Some(original.clone()));
    assert_eq!(s.post(&other.id).await.unwrap(), Some(other.clone()));
    let by_author = Scope::Author(author.clone());
    let at = |p: &Place| Scope::Place(p.id.clone());
    let cell = |p: &Place| Scope::Cell(geo::encode(p.location, geo::POST_PRECISION));
    let both = [&other, &original];
    same_posts(
        &feed_all(s, &by_author).await,
        &both,
        "author feed, created",
    );
    same_posts(&feed_all(s, &at(&p1)).await, &both, "place feed, created");
    same_posts(&feed_all(s, &cell(&p1)).await, &both, "cell feed, created");
    same_posts(&near_all(s, p1.location, 1.0).await, &both, "near, created");

    // Edit the text: every feed shows the new version.
    let edited = Post {
        author_name: "Alice Kim".into(),
        updated_at: base + DAY,
        draft: PostDraft {
            text: "first visit (edited)".into(),
            rating: 5,
            text_origin: TextOrigin::AiEdited,
            menu: vec![],
            photos: vec![PhotoId("ph_2".into()), PhotoId("ph_3".into())],
            ..original.draft.clone()
        },
        ..original.clone()
    };
    s.replace_post(&original, &edited)
        .await
        .expect("replace_post");
    assert_eq!(
        s.post(&original.id).await.unwrap(),
        Some(edited.clone()),
        "post, edited"
    );
    let both = [&other, &edited];
    same_posts(&feed_all(s, &by_author).await, &both, "author feed, edited");
    same_posts(&feed_all(s, &at(&p1)).await, &both, "place feed, edited");
    same_posts(&feed_all(s, &cell(&p1)).await, &both, "cell feed, edited");
    same_posts(&near_all(s, p1.location, 1.0).await, &both, "near, edited");

    // Change its place: it moves between place feeds and post cells.
    let moved = Post {
        place_name: p2.name.clone(),
        location: p2.location,
        updated_at: base + 2 * DAY,
        draft: PostDraft {
            place_id: p2.id.clone(),
            ..edited.draft.clone()
        },
        ..edited.clone()
    };
    s.replace_post(&edited, &moved)
        .await
        .expect("replace_post to another place");
    assert_eq!(
        s.post(&original.id).await.unwrap(),
        Some(moved.clone()),
        "post, moved"
    );
    same_posts(
        &feed_all(s, &by_author).await,
        &[&other, &moved],
        "author feed, moved",
    );
    same_posts(
        &feed_all(s, &at(&p1)).await,
        &[&other],
        "old place feed, moved",
    );
    same_posts(
        &feed_all(s, &at(&p2)).await,
        &[&moved],
        "new place feed, moved",
    );
    same_posts(
        &feed_all(s, &cell(&p1)).await,
        &[&other],
        "old cell feed, moved",
    );
    same_posts(
        &feed_all(s, &cell(&p2)).await,
        &[&moved],
        "new cell feed, moved",
    );
    same_posts(
        &near_all(s, p1.location, 1.0).await,
        &[&other],
        "near old place, moved",
    );
    same_posts(
        &near_all(s, p2.location, 1.0).await,
        &[&moved],
        "near new place, moved",
    );

    // Delete, with the caller's copy stale (from before the move): gone from everywhere,
    // the new place included; the other post stays.
    s.delete_post(&edited)
        .await
        .expect("delete_post of a stale copy");
    assert_eq!(s.post(&moved.id).await.unwrap(), None, "post, deleted");
    same_posts(
        &feed_all(s, &by_author).await,
        &[&other],
        "author feed, deleted",
    );
    same_posts(
        &feed_all(s, &at(&p1)).await,
        &[&other],
        "old place feed, deleted",
    );
    same_posts(&feed_all(s, &at(&p2)).await, &[], "new place feed, deleted");
    same_posts(
        &feed_all(s, &cell(&p2)).await,
        &[],
        "new cell feed, deleted",
    );
    same_posts(
        &near_all(s, p2.location, 1.0).await,
        &[],
        "near new place, deleted",
    );
    assert_eq!(s.post(&other.id).await.unwrap(), Some(other.clone()));

    s.delete_post(&other).await.expect("delete_post");
    assert_eq!(s.post(&other.id).await.unwrap(), None);
    same_posts(
        &feed_all(s, &by_author).await,
        &[],
        "author feed, all deleted",
    );
    same_posts(&feed_all(s, &at(&p1)).await, &[], "place feed, all deleted");
    same_posts(
        &feed_all(s, &cell(&p1)).await,
        &[],
        "cell feed, all deleted",
    );
    same_posts(
        &near_all(s, p1.location, 1.0).await,
        &[],
        "near, all deleted",
    );

    // Editing a deleted post is a conflict and does not bring it back.
    let ghost = Post {
        updated_at: base + 3 * DAY,
        draft: PostDraft {
            text: "edited after deletion".into(),
            ..moved.draft.clone()
        },
        ..moved.clone()
    };
    expect_conflict(
        s.replace_post(&moved, &ghost).await,
        "replace_post of a deleted post",
    );
    assert_eq!(s.post(&moved.id).await.unwrap(), None, "still deleted");
    same_posts(
        &feed_all(s, &by_author).await,
        &[],
        "author feed, ghost edit",
    );
    same_posts(&feed_all(s, &at(&p2)).await, &[], "place feed, ghost edit");
    same_posts(
        &near_all(s, p2.location, 1.0).await,
        &[],
        "near, ghost edit",
    );

    // A post at every size limit (too large for one CQL batch), and one with every list
    // and the text empty.
    let template = post(&author, "Alice", &p1, base + 2 * HOUR, "");
    let big = Post {
        author_name: "가".repeat(40),
        place_name: "나".repeat(200),
        draft: PostDraft {
            text: "맛".repeat(MAX_POST_TEXT_CHARS),
            menu: (0..MAX_MENU_ITEMS)
                .map(|i| MenuItem {
                    name: format!("{i:02}{}", "면".repeat(MAX_MENU_NAME_CHARS - 2)),
                    price: Some(MAX_PRICE - i as u64),
                })
                .collect(),
            photos: (0..MAX_PHOTOS)
                .map(|i| PhotoId(format!("{i}{}", "p".repeat(MAX_PHOTO_ID_BYTES - 1))))
                .collect(),
            ..template.draft.clone()
        },
        ..template
    };
    let bare = Post {
        draft: PostDraft {
            text: String::new(),
            menu: vec![],
            photos: vec![],
            ..template.draft.clone()
        },
        ..post(&author, "Alice", &p1, base + 3 * HOUR, "")
    };
    create(s, &big).await;
    create(s, &bare).await;
    assert_eq!(
        s.post(&big.id).await.unwrap(),
        Some(big.clone()),
        "big post"
    );
    assert_eq!(
        s.post(&bare.id).await.unwrap(),
        Some(bare.clone()),
        "bare post"
    );
    let both = [&bare, &big];
    same_posts(
        &feed_all(s, &by_author).await,
        &both,
        "author feed, big and bare",
    );
    same_posts(
        &feed_all(s, &at(&p1)).await,
        &both,
        "place feed, big and bare",
    );
    same_posts(
        &near_all(s, p1.location, 1.0).await,
        &both,
        "near, big and bare",
    );
    let small = Post {
        updated_at: big.updated_at + 1,
        draft: PostDraft {
            text: "short now".into(),
            menu: vec![],
            ..big.draft.clone()
        },
        ..big.clone()
    };
    s.replace_post(&big, &small)
        .await
        .expect("replace big by small");
    assert_eq!(
        s.post(&big.id).await.unwrap(),
        Some(small.clone()),
        "big, shrunk"
    );
    same_posts(
        &feed_all(s, &at(&p1)).await,
        &[&bare, &small],
        "place feed, shrunk",
    );
    let grown = Post {
        updated_at: small.updated_at + 1,
        draft: PostDraft {
            text: "멋".repeat(MAX_POST_TEXT_CHARS),
            ..big.draft.clone()
        },
        ..big.clone()
    };
    s.replace_post(&small, &grown)
        .await
        .expect("replace small by big");
    assert_eq!(s.post(&big.id).await.unwrap(), Some(grown.clone()), "grown");
    same_posts(
        &feed_all(s, &by_author).await,
        &[&bare, &grown],
        "author feed, grown",
    );
    for p in [&grown, &bare] {
        s.delete_post(p).await.expect("delete_post");
        assert_eq!(s.post(&p.id).await.unwrap(), None);
    }
    same_posts(
        &feed_all(s, &by_author).await,
        &[],
        "author feed, big deleted",
    );
    same_posts(&feed_all(s, &at(&p1)).await, &[], "place feed, big deleted");
    same_posts(
        &near_all(s, p1.location, 1.0).await,
        &[],
        "near, big deleted",
    );
}

/// Compares post ids first (a readable failure), then whole posts.
#[track_caller]
fn same_posts(got: &[Post], expected: &[&Post], what: &str) {
    let want: Vec<String> = expected.iter().map(|p| p.id.0.clone()).collect();
    assert_eq!(pids_of(got), want, "{what}: post ids");
    for (g, w) in got.iter().zip(expected) {
        assert_eq!(g, *w, "{what}: post {}", w.id.0);
    }
}

#[track_caller]
fn expect_conflict<T: std::fmt::Debug>(r: records::Result<T>, what: &str) {
    match r {
        Err(RecordError::Conflict(_)) => {}
        other => panic!("{what}: expected RecordError::Conflict, got {other:?}"),
    }
}

/// `replace_post` is a compare-and-set on `updated_at`: an edit from a version that is no
/// longer stored (edited or deleted since) is a conflict and writes nothing.
async fn edit_conflicts<S: PlaceStore + PostStore>(s: &S, tag: &str) {
    // Jeonju: two places in different post cells.
    let p1 = place(
        &format!("{tag}:edit-1"),
        "Jeonju Bibimbap",
        35.8242,
        127.1480,
    );
    let p2 = place(
        &format!("{tag}:edit-2"),
        "Jeonju Kongnamul",
        35.8150,
        127.0600,
    );
    assert_ne!(
        geo::encode(p1.location, geo::POST_PRECISION),
        geo::encode(p2.location, geo::POST_PRECISION),
        "fixture: two post cells"
    );
    put_all(s, &[&p1, &p2]).await;
    let author = AccountId(rand_id());
    let base = now_ms() - 5 * DAY;
    let original = post(&author, "Editor", &p1, base, "original");
    create(s, &original).await;
    let by_author = Scope::Author(author.clone());
    let at = |p: &Place| Scope::Place(p.id.clone());
    let cell = |p: &Place| Scope::Cell(geo::encode(p.location, geo::POST_PRECISION));
    let edit = |from: &Post, to: &Place, updated_at: UnixMillis, text: &str| Post {
        place_name: to.name.clone(),
        location: to.location,
        updated_at,
        draft: PostDraft {
            place_id: to.id.clone(),
            text: text.into(),
            ..from.draft.clone()
        },
        ..from.clone()
    };
    // Where a post of this part is listed: exactly `p` (or nowhere when `None`).
    let listed_only = async |p: Option<&Post>, what: &str| {
        let want: Vec<&Post> = p.into_iter().collect();
        same_posts(
            &feed_all(s, &by_author).await,
            &want,
            &format!("{what}: author feed"),
        );
        for pl in [&p1, &p2] {
            let here: Vec<&Post> = want
                .iter()
                .copied()
                .filter(|x| x.draft.place_id == pl.id)
                .collect();
            same_posts(
                &feed_all(s, &at(pl)).await,
                &here,
                &format!("{what}: place feed {}", pl.name),
            );
            same_posts(
                &feed_all(s, &cell(pl)).await,
                &here,
                &format!("{what}: cell feed {}", pl.name),
            );
            same_posts(
                &near_all(s, pl.location, 1.0).await,
                &here,
                &format!("{what}: near {}", pl.name),
            );
        }
    };

    // Two edits from the same version: the first applies; the second (which would also move
    // the post) is a conflict, and the stored post and every feed keep the first edit.
    let first = edit(&original, &p1, base + HOUR, "first edit");
    let second = edit(&original, &p2, base + 2 * HOUR, "second edit");
    s.replace_post(&original, &first)
        .await
        .expect("the first edit from the original");
    expect_conflict(
        s.replace_post(&original, &second).await,
        "a second edit from the same (now stale) version",
    );
    assert_eq!(
        s.post(&original.id).await.unwrap(),
        Some(first.clone()),
        "the stored post is the first edit"
    );
    listed_only(Some(&first), "after a conflicting edit").await;

    // A stale copy with the current content but an older `updated_at` is stale too.
    let stale_copy = Post {
        updated_at: original.updated_at,
        ..first.clone()
    };
    expect_conflict(
        s.replace_post(&stale_copy, &second).await,
        "an edit from a copy with an older updated_at",
    );
    assert_eq!(s.post(&original.id).await.unwrap(), Some(first.clone()));

    // Read again, edit again: applies (and moves the post).
    let third = edit(&first, &p2, base + 3 * HOUR, "third edit");
    s.replace_post(&first, &third)
        .await
        .expect("an edit from the current version");
    assert_eq!(s.post(&original.id).await.unwrap(), Some(third.clone()));
    listed_only(Some(&third), "after an edit from the current version").await;

    // Concurrent edits from one version: exactly one applies, the others are conflicts.
    let racers: Vec<Post> = (0..3u64)
        .map(|i| {
            let to = if i % 2 == 0 { &p1 } else { &p2 };
            edit(&third, to, base + 4 * HOUR + i, &format!("racer {i}"))
        })
        .collect();
    let (r0, r1, r2) = tokio::join!(
        s.replace_post(&third, &racers[0]),
        s.replace_post(&third, &racers[1]),
        s.replace_post(&third, &racers[2])
    );
    let results = [r0, r1, r2];
    let winners: Vec<usize> = (0..3).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(
        winners.len(),
        1,
        "three concurrent edits from one version: exactly one applies; got {results:?}"
    );
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            assert!(
                matches!(r, Err(RecordError::Conflict(_))),
                "racer {i}: expected Conflict, got {r:?}"
            );
        }
    }
    let winner = racers[winners[0]].clone();
    assert_eq!(
        s.post(&original.id).await.unwrap(),
        Some(winner.clone()),
        "the stored post is the edit that applied"
    );
    listed_only(Some(&winner), "after concurrent edits").await;

    // Deleted, then edited from the last version read (moving it back): a conflict, the post
    // stays deleted and no feed lists it again.
    s.delete_post(&winner).await.expect("delete_post");
    let other = if winner.draft.place_id == p1.id {
        &p2
    } else {
        &p1
    };
    let ghost = edit(
        &winner,
        other,
        winner.updated_at + 1,
        "edited after deletion",
    );
    expect_conflict(
        s.replace_post(&winner, &ghost).await,
        "an edit of a deleted post",
    );
    assert_eq!(
        s.post(&original.id).await.unwrap(),
        None,
        "the post stays deleted"
    );
    listed_only(None, "after an edit of a deleted post").await;
}

async fn idempotency<S: PlaceStore + PostStore>(s: &S, tag: &str) {
    // Suwon.
    let place = place(&format!("{tag}:idem"), "Suwon Galbi", 37.2636, 127.0286);
    put_all(s, &[&place]).await;
    let (alice, bob) = (AccountId(rand_id()), AccountId(rand_id()));
    let now = now_ms();
    let key = |n: u32, fp: &str| Idempotency {
        key: format!("{tag}-key-{n}"),
        fingerprint: fp.into(),
    };

    let first = post(&alice, "Alice", &place, now - 10 * MINUTE, "맛있어요");
    assert_eq!(
        s.create_post(&first, Some(&key(1, "fp-a"))).await.unwrap(),
        Created::Created(first.clone())
    );
    // The retry carries a new id and time, as the server chose them again: the first post
    // comes back, and nothing new is stored.
    let retry = Post {
        id: PostId(rand_id()),
        created_at: now - 9 * MINUTE,
        updated_at: now - 9 * MINUTE,
        ..first.clone()
    };
    assert_eq!(
        s.create_post(&retry, Some(&key(1, "fp-a"))).await.unwrap(),
        Created::Replayed(first.clone()),
        "same key, same fingerprint"
    );
    assert_eq!(
        s.post(&retry.id).await.unwrap(),
        None,
        "a replay stores nothing"
    );

    let different = post(&alice, "Alice", &place, now - 8 * MINUTE, "different body");
    match s.create_post(&different, Some(&key(1, "fp-b"))).await {
        Err(RecordError::IdempotencyMismatch) => {}
        other => panic!("same key, other fingerprint: expected IdempotencyMismatch, got {other:?}"),
    }
    assert_eq!(
        s.post(&different.id).await.unwrap(),
        None,
        "a mismatch stores nothing"
    );
    assert_eq!(
        s.create_post(&retry, Some(&key(1, "fp-a"))).await.unwrap(),
        Created::Replayed(first.clone()),
        "the key still replays after a mismatch"
    );

    // The same key by another author, and another key by the same author: independent.
    let bobs = post(&bob, "Bob", &place, now - 7 * MINUTE, "맛있어요");
    assert_eq!(
        s.create_post(&bobs, Some(&key(1, "fp-a"))).await.unwrap(),
        Created::Created(bobs.clone()),
        "another author's key"
    );
    let second = post(&alice, "Alice", &place, now - 6 * MINUTE, "again");
    assert_eq!(
        s.create_post(&second, Some(&key(2, "fp-a"))).await.unwrap(),
        Created::Created(second.clone()),
        "another key"
    );
    let plain = post(&alice, "Alice", &place, now - 5 * MINUTE, "no key");
    create(s, &plain).await;

    // Two identical requests at once: one creates, the other replays that post.
    let c1 = post(&alice, "Alice", &place, now - 4 * MINUTE, "double tap");
    let c2 = Post {
        id: PostId(rand_id()),
        ..c1.clone()
    };
    let k3 = key(3, "fp-c");
    let (r1, r2) = tokio::join!(s.create_post(&c1, Some(&k3)), s.create_post(&c2, Some(&k3)));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let (kept, dropped) = match (&r1, &r2) {
        (Created::Created(a), Created::Replayed(b)) if a == &c1 && b == &c1 => (&c1, &c2),
        (Created::Replayed(a), Created::Created(b)) if a == &c2 && b == &c2 => (&c2, &c1),
        _ => panic!(
            "two concurrent creates with one key: expected one Created and a Replayed of that post, got {r1:?} and {r2:?}"
        ),
    };
    assert_eq!(
        s.post(&dropped.id).await.unwrap(),
        None,
        "the replayed request stored nothing"
    );

    let expected = newest_first(vec![
        first.clone(),
        second.clone(),
        plain.clone(),
        kept.clone(),
    ]);
    assert_eq!(
        pids_of(&feed_all(s, &Scope::Author(alice.clone())).await),
        pids_of(&expected),
        "alice's feed holds each post once"
    );
    assert_eq!(
        feed_all(s, &Scope::Author(bob.clone())).await,
        vec![bobs.clone()]
    );
    let mut at_place = expected.clone();
    at_place.push(bobs.clone());
    assert_eq!(
        pids_of(&feed_all(s, &Scope::Place(place.id.clone())).await),
        pids_of(&newest_first(at_place)),
        "the place feed holds each post once"
    );

    // The key's post is deleted: a retry has nothing to replay, so it creates the post again
    // with the retry's content under the id and timestamps the key recorded (one key, one
    // post, one `created_at`), and later retries replay it.
    s.delete_post(&first).await.expect("delete_post");
    let late = Post {
        id: PostId(rand_id()),
        created_at: now - 3 * MINUTE,
        updated_at: now - 3 * MINUTE,
        ..first.clone()
    };
    let made = match s.create_post(&late, Some(&key(1, "fp-a"))).await {
        Ok(Created::Created(p)) => p,
        other => panic!("a retry after its post was deleted: expected Created, got {other:?}"),
    };
    assert_eq!(
        made,
        Post {
            id: first.id.clone(),
            created_at: first.created_at,
            updated_at: first.updated_at,
            ..late.clone()
        },
        "the re-created post: the retry's content, the key's id and timestamps"
    );
    assert_eq!(s.post(&made.id).await.unwrap(), Some(made.clone()));
    assert_eq!(
        s.post(&late.id).await.unwrap(),
        None,
        "nothing under the retry's id"
    );
    let later = Post {
        id: PostId(rand_id()),
        ..late.clone()
    };
    assert_eq!(
        s.create_post(&later, Some(&key(1, "fp-a"))).await.unwrap(),
        Created::Replayed(made.clone()),
        "the next retry replays the re-created post"
    );
    let expected = newest_first(vec![
        second.clone(),
        plain.clone(),
        kept.clone(),
        made.clone(),
    ]);
    assert_eq!(
        pids_of(&feed_all(s, &Scope::Author(alice.clone())).await),
        pids_of(&expected),
        "alice's feed after the re-creation"
    );
}

/// Exact paging of a feed at several page sizes.
async fn check_feed<S: PostStore>(s: &S, scope: &Scope, expected: &[Post]) {
    for limit in [1, 2, 3, 4, 7, 100] {
        let got = pages(limit, async |c| s.feed(scope, c, limit).await, "feed")
            .await
            .concat();
        assert_eq!(
            pids_of(&got),
            pids_of(expected),
            "{scope:?} in pages of {limit}"
        );
        assert_eq!(got, expected, "{scope:?} in pages of {limit}, whole posts");
    }
}

async fn feeds<S: PlaceStore + PostStore>(s: &S, tag: &str) {
    // Daegu: two places, two authors, posts spread over four months (several 30-day
    // buckets), three posts at one instant, and two either side of a bucket boundary.
    let p1 = place(
        &format!("{tag}:feed-1"),
        "Daegu Makchang",
        35.8714,
        128.6014,
    );
    let p2 = place(
        &format!("{tag}:feed-2"),
        "Daegu Jjimgalbi",
        35.8690,
        128.5930,
    );
    put_all(s, &[&p1, &p2]).await;
    let (a, b) = (AccountId(rand_id()), AccountId(rand_id()));
    let now = now_ms();
    let tie = now - 29 * DAY;
    let boundary = bucket_of(now - 40 * DAY) as u64 * BUCKET_MILLIS;
    let fixture: Vec<(&AccountId, &Place, UnixMillis)> = vec![
        (&a, &p1, now - 12 * HOUR),
        (&a, &p2, now - 3 * DAY),
        (&a, &p1, now - 12 * DAY),
        (&b, &p1, now - 12 * DAY - HOUR),
        (&a, &p1, tie),
        (&a, &p1, tie),
        (&b, &p1, tie),
        (&a, &p2, now - 33 * DAY),
        (&a, &p1, boundary),
        (&a, &p1, boundary - 1),
        (&b, &p2, now - 47 * DAY),
        (&a, &p1, now - 61 * DAY),
        (&a, &p1, now - 64 * DAY),
        (&b, &p1, now - 75 * DAY),
        (&a, &p2, now - 95 * DAY),
        (&a, &p1, now - 125 * DAY),
        (&b, &p2, now - 400 * DAY), // a year of empty buckets before it
    ];
    let mut posts: Vec<Post> = fixture
        .iter()
        .enumerate()
        .map(|(i, (who, at, t))| post(who, "Feeder", at, *t, &format!("feed post {i}")))
        .collect();
    // One post with no text, menu or photos.
    posts[1].draft.text.clear();
    posts[1].draft.menu.clear();
    posts[1].draft.photos.clear();
    let mut buckets: Vec<i32> = posts.iter().map(|p| bucket_of(p.created_at)).collect();
    buckets.sort();
    buckets.dedup();
    assert!(
        buckets.len() >= 4,
        "fixture: posts span several buckets: {buckets:?}"
    );
    // Created out of order: the feeds order them, not the insertion.
    let mut order: Vec<usize> = (0..posts.len()).collect();
    order.sort_by_key(|i| (i * 7) % posts.len());
    for i in order {
        create(s, &posts[i]).await;
    }

    let of =
        |f: &dyn Fn(&Post) -> bool| newest_first(posts.iter().filter(|p| f(p)).cloned().collect());
    let by_a = of(&|p| p.author == a);
    let by_b = of(&|p| p.author == b);
    let at_p1 = of(&|p| p.draft.place_id == p1.id);
    let at_p2 = of(&|p| p.draft.place_id == p2.id);
    assert_eq!(
        by_a.iter().filter(|p| p.created_at == tie).count(),
        2,
        "fixture: a tie in an author feed"
    );
    assert_eq!(
        at_p1.iter().filter(|p| p.created_at == tie).count(),
        3,
        "fixture: a tie in a place feed"
    );
    check_feed(s, &Scope::Author(a.clone()), &by_a).await;
    check_feed(s, &Scope::Author(b.clone()), &by_b).await;
    check_feed(s, &Scope::Place(p1.id.clone()), &at_p1).await;
    check_feed(s, &Scope::Place(p2.id.clone()), &at_p2).await;
    assert!(
        feed_all(s, &Scope::Author(AccountId(rand_id())))
            .await
            .is_empty(),
        "an author with no posts"
    );
    assert!(
        feed_all(s, &Scope::Place(PlaceId(format!("{tag}:no-posts"))))
            .await
            .is_empty(),
        "a place with no posts"
    );

    // Empty a whole bucket (and one more post): the feeds skip it. A cursor at a deleted
    // post still pages on from where it points.
    let emptied = bucket_of(now - 64 * DAY);
    let (gone, kept): (Vec<Post>, Vec<Post>) = posts
        .iter()
        .cloned()
        .partition(|p| bucket_of(p.created_at) == emptied || p.created_at == now - 12 * DAY);
    assert!(
        gone.len() >= 3 && gone.iter().any(|p| p.author == a) && gone.iter().any(|p| p.author == b),
        "fixture: a bucket of several authors' posts to empty"
    );
    assert!(
        kept.iter().any(|p| bucket_of(p.created_at) < emptied),
        "fixture: posts older than the emptied bucket"
    );
    for p in &gone {
        s.delete_post(p).await.expect("delete_post");
    }
    let of =
        |f: &dyn Fn(&Post) -> bool| newest_first(kept.iter().filter(|p| f(p)).cloned().collect());
    check_feed(s, &Scope::Author(a.clone()), &of(&|p| p.author == a)).await;
    check_feed(s, &Scope::Author(b.clone()), &of(&|p| p.author == b)).await;
    check_feed(
        s,
        &Scope::Place(p1.id.clone()),
        &of(&|p| p.draft.place_id == p1.id),
    )
    .await;
    check_feed(
        s,
        &Scope::Place(p2.id.clone()),
        &of(&|p| p.draft.place_id == p2.id),
    )
    .await;
    for deleted in gone.iter().filter(|p| p.author == a) {
        let cursor = encode_cursor(&PostCursor::of(deleted));
        let page = s
            .feed(&Scope::Author(a.clone()), Some(&cursor), 100)
            .await
            .expect("feed from a deleted post's cursor");
        let older = of(&|p| p.author == a && PostCursor::of(p) < PostCursor::of(deleted));
        assert_eq!(
            pids_of(&page.items),
            pids_of(&older),
            "author feed from a cursor at deleted post {}",
            deleted.id.0
        );
        assert_eq!(page.next, None);
    }

    // Cursors this feed did not issue.
    let scope = Scope::Author(a.clone());
    expect_invalid(s.feed(&scope, Some("garbage"), 2).await, "a garbage cursor");
    expect_invalid(
        s.feed(
            &scope,
            Some(&encode_cursor(
                &serde_json::json!({"token": "a", "id": "x"}),
            )),
            2,
        )
        .await,
        "a name-search cursor given to a feed",
    );
}

async fn near_feed<S: PlaceStore + PostStore>(s: &S, tag: &str) {
    // Gwangju: places within 3 km of the centre, one inside the circle's box but outside
    // the circle, one 20 km away. The newest posts are outside the circle, so the listing
    // has to read on past them.
    let center = ll(35.1595, 126.8526);
    let radius = 3.0;
    let at = |n: &str, dlat: f64, dlng: f64| {
        place(
            &format!("{tag}:near-{n}"),
            &format!("Gwangju {n}"),
            center.lat + dlat,
            center.lng + dlng,
        )
    };
    let inside = [
        at("a", 0.0050, 0.0000),
        at("b", -0.0150, 0.0120),
        at("c", 0.0000, -0.0250),
        at("d", 0.0200, 0.0150),
    ];
    let corner = at("corner", 0.0190, 0.0285);
    let far = at("far", 0.1797, 0.0);
    for p in &inside {
        let d = geo::distance_km(center, p.location);
        assert!(d < radius - 0.2, "fixture: {} is {d} km away", p.id.0);
    }
    let d = geo::distance_km(center, corner.location);
    assert!(d > radius + 0.2, "fixture: the corner is {d} km away");
    assert!(
        geo::contains(&geo::circle_bounds(center, radius), corner.location),
        "fixture: the corner is inside the circle's box"
    );
    let d = geo::distance_km(center, far.location);
    assert!((19.0..21.0).contains(&d), "fixture: far is {d} km away");
    let mut cells: Vec<String> = inside
        .iter()
        .map(|p| geo::encode(p.location, geo::POST_PRECISION))
        .collect();
    cells.sort();
    cells.dedup();
    assert!(
        cells.len() >= 2,
        "fixture: inside places span several post cells: {cells:?}"
    );
    put_all(s, &inside.iter().chain([&corner, &far]).collect::<Vec<_>>()).await;

    let author = AccountId(rand_id());
    let now = now_ms();
    let tie = now - 20 * DAY;
    let fixture: Vec<(&Place, UnixMillis)> = vec![
        (&far, now - HOUR),
        (&corner, now - 2 * HOUR),
        (&corner, now - 3 * HOUR),
        (&inside[0], now - DAY),
        (&inside[1], now - 2 * DAY),
        (&far, now - 3 * DAY),
        (&inside[2], now - 5 * DAY),
        (&inside[3], tie),
        (&inside[1], tie),
        (&inside[0], tie),
        (&corner, now - 31 * DAY),
        (&inside[2], now - 40 * DAY),
        (&inside[3], now - 66 * DAY),
        (&inside[0], now - 90 * DAY),
        (&far, now - 100 * DAY),
    ];
    let posts: Vec<Post> = fixture
        .iter()
        .enumerate()
        .map(|(i, (p, t))| post(&author, "Walker", p, *t, &format!("near post {i}")))
        .collect();
    for p in posts.iter().rev() {
        create(s, p).await;
    }
    let within = |r: f64| {
        newest_first(
            posts
                .iter()
                .filter(|p| geo::distance_km(center, p.location) <= r)
                .cloned()
                .collect(),
        )
    };
    let expected = within(radius);
    assert_eq!(expected.len(), 9, "fixture: nine posts inside the circle");
    for limit in [1, 2, 3, 5, 100] {
        let got = pages(
            limit,
            async |c| s.posts_near(center, radius, c, limit).await,
            "near",
        )
        .await
        .concat();
        assert_eq!(pids_of(&got), pids_of(&expected), "near, pages of {limit}");
        assert_eq!(got, expected, "near, pages of {limit}, whole posts");
    }
    let wide = within(geo::MAX_NEAR_KM);
    assert_eq!(
        wide.len(),
        12,
        "fixture: the corner is within the largest radius"
    );
    assert_eq!(
        pids_of(&near_all(s, center, geo::MAX_NEAR_KM).await),
        pids_of(&wide),
        "the largest radius"
    );
    assert_eq!(
        pids_of(&near_all(s, far.location, 1.0).await),
        pids_of(&newest_first(
            posts
                .iter()
                .filter(|p| p.draft.place_id == far.id)
                .cloned()
                .collect()
        )),
        "near the far place"
    );
    assert!(
        near_all(s, ll(-45.0, -120.0), 5.0).await.is_empty(),
        "nowhere"
    );

    for bad in [0.0, -1.0, geo::MAX_NEAR_KM + 0.001, f64::NAN, f64::INFINITY] {
        expect_invalid(
            s.posts_near(center, bad, None, 10).await,
            &format!("radius {bad}"),
        );
    }
    expect_invalid(
        s.posts_near(center, radius, Some("garbage"), 2).await,
        "a garbage cursor",
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Every page of a listing, with the rules every page follows: at most `limit` items, and a
/// page with a `next` cursor is full.
async fn pages<T>(
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
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Box<dyn Any + Send>> {
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
fn expect_invalid<T: std::fmt::Debug>(r: records::Result<T>, what: &str) {
    match r {
        Err(RecordError::Invalid(_)) => {}
        other => panic!("{what}: expected RecordError::Invalid, got {other:?}"),
    }
}

fn pids(v: &[Place]) -> Vec<String> {
    v.iter().map(|p| p.id.0.clone()).collect()
}

fn pids_of(v: &[Post]) -> Vec<String> {
    v.iter().map(|p| p.id.0.clone()).collect()
}

fn ll(lat: f64, lng: f64) -> LatLng {
    LatLng { lat, lng }
}

fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as UnixMillis
}

/// 22 characters of URL-safe base64: 128 random bits, like the server's ids.
fn rand_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// `zz` and six random letters or digits: a word no fixture name or query starts with.
fn run_tag() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut tag = String::from("zz");
    for _ in 0..6 {
        tag.push(ALPHABET[rand::random_range(0..ALPHABET.len())] as char);
    }
    tag
}
