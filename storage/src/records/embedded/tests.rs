//! Tests of what only the embedded backend has: reopening the file, one server per data
//! directory, pruning, concurrency through redb's single writer, and the index tables kept in
//! step. The contract every backend keeps is `storage/tests/records/`.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use wagu_proto::PlaceId;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{AccountId, Place, Post, PostId};

use super::posts::StoredIdempotency;
use super::rows::{from_json, to_json};
use super::schema::*;
use super::*;
use crate::records::{
    AccountRecord, AccountStore, Created, Idempotency, NameCursor, PlaceStore, PostCursor,
    PostStore, RefreshRecord, RefreshUse, Scope, geo,
};
use wagu_proto::records::{MenuItem, PostDraft, TextOrigin};

// Coordinates that serde_json's default parser reads back one ulp off (both of Seoul's,
// Busan's longitude): what the exact-bits envelope is for.
const SEOUL: LatLng = LatLng {
    lat: 37.565_054_875_432_324,
    lng: 126.999_169_842_204_45,
};
const BUSAN: LatLng = LatLng {
    lat: 35.179_553_845_186_36,
    lng: 129.044_555_907_985_63,
};

fn account(id: &str, email: &str) -> AccountRecord {
    AccountRecord {
        id: AccountId(id.into()),
        email: email.into(),
        display_name: "민지".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: 1_700_000_000_000,
    }
}

fn place(id: &str, name: &str, at: LatLng) -> Place {
    Place {
        id: PlaceId(id.into()),
        name: name.into(),
        category: "korean".into(),
        address: "을지로 1".into(),
        location: at,
        phone: Some("+82 2 000 0000".into()),
        hours: None,
    }
}

fn post(id: &str, author: &str, place: &str, created_at: UnixMillis, at: LatLng) -> Post {
    Post {
        id: PostId(id.into()),
        author: AccountId(author.into()),
        author_name: "민지".into(),
        place_name: "을지면옥".into(),
        location: at,
        created_at,
        updated_at: created_at,
        draft: PostDraft {
            place_id: PlaceId(place.into()),
            visit_date: "2026-11-20".into(),
            menu: vec![MenuItem {
                name: "냉면".into(),
                price: Some(14_000),
            }],
            rating: 5,
            text: "좋아요".into(),
            photos: vec![],
            text_origin: TextOrigin::Author,
        },
    }
}

fn refresh(hash: &str, family: &str, expires_at: UnixMillis) -> RefreshRecord {
    RefreshRecord {
        hash: hash.into(),
        account: AccountId("a1".into()),
        family: family.into(),
        expires_at,
    }
}

fn ids(posts: &[Post]) -> Vec<&str> {
    posts.iter().map(|p| p.id.as_str()).collect()
}

fn table_len<K: redb::Key + 'static, V: redb::Value + 'static>(
    s: &EmbeddedRecords,
    t: TableDefinition<K, V>,
) -> u64 {
    let r = s.db.begin_read().unwrap();
    r.open_table(t).unwrap().len().unwrap()
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = account("a1", "minji@example.com");
    let pl = place("osm:node/1", "을지면옥", SEOUL);
    let p = post("p1", "a1", "osm:node/1", 1_000, SEOUL);
    {
        let s = EmbeddedRecords::open(dir.path()).await.unwrap();
        assert!(!s.has_places().await.unwrap());
        s.create_account(&a).await.unwrap();
        s.put_refresh(&refresh("h1", "f1", u64::MAX)).await.unwrap();
        s.put_place(&pl).await.unwrap();
        assert_eq!(
            s.create_post(&p, None).await.unwrap(),
            Created::Created(p.clone())
        );
    }
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    s.ping().await.unwrap();
    assert_eq!(s.account(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.account_by_email("minji@example.com").await.unwrap(),
        Some(a)
    );
    assert_eq!(
        s.account_by_email("nobody@example.com").await.unwrap(),
        None
    );
    assert!(matches!(
        s.use_refresh("h1", 5).await.unwrap(),
        RefreshUse::Fresh(_)
    ));
    assert!(s.has_places().await.unwrap());
    // Bit for bit, not one ulp off.
    let back = s.place(&pl.id).await.unwrap().unwrap();
    assert_eq!(back.location.lat.to_bits(), SEOUL.lat.to_bits());
    assert_eq!(back.location.lng.to_bits(), SEOUL.lng.to_bits());
    assert_eq!(back, pl);
    assert_eq!(s.post(&p.id).await.unwrap(), Some(p.clone()));
    let near = s
        .places_in_cell(&geo::encode(SEOUL, 6), None, 10)
        .await
        .unwrap();
    assert_eq!(near, vec![pl.clone()]);
    let found = s.places_by_token("을지", None, 10).await.unwrap();
    assert_eq!(found, vec![("을지면옥".to_string(), pl)]);
    for scope in [
        Scope::Author(p.author.clone()),
        Scope::Place(p.draft.place_id.clone()),
        Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION)),
    ] {
        assert_eq!(
            s.posts_in_scope(&scope, None, 10).await.unwrap(),
            vec![p.clone()]
        );
    }
}

/// A file written before `identities` existed (schema 1, without that table) opens, and
/// gains the table: identity log-ins work on it.
#[tokio::test]
async fn older_files_gain_the_identities_table() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, SCHEMA_VERSION)
            .unwrap();
        w.open_table(ACCOUNTS).unwrap();
        w.open_table(ACCOUNTS_BY_EMAIL).unwrap();
        w.commit().unwrap();
    }
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    assert_eq!(s.account_by_identity("kakao", "1").await.unwrap(), None);
    let a = account("a1", "minji@example.com");
    assert_eq!(
        s.create_account_for_identity(&a, "kakao", "1")
            .await
            .unwrap(),
        a
    );
    assert_eq!(s.account_by_identity("kakao", "1").await.unwrap(), Some(a));
    assert_eq!(table_len(&s, ACCOUNTS_BY_EMAIL), 0);
}

#[tokio::test]
async fn one_server_per_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let Err(e) = EmbeddedRecords::open(dir.path()).await else {
        panic!("a second open of the same file must fail");
    };
    assert!(e.to_string().contains("in use"), "{e}");
    drop(s);
    EmbeddedRecords::open(dir.path()).await.unwrap();
}

#[tokio::test]
async fn refresh_tokens_are_spent_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let r1 = refresh("h1", "f1", 10_000);
    s.put_refresh(&r1).await.unwrap();
    assert_eq!(
        s.use_refresh("h1", 1_000).await.unwrap(),
        RefreshUse::Fresh(r1.clone())
    );
    // Reused, with the time of the use that spent it.
    assert_eq!(
        s.use_refresh("h1", 1_001).await.unwrap(),
        RefreshUse::Reused(r1.clone(), 1_000)
    );
    assert_eq!(
        s.use_refresh("h1", 2_000).await.unwrap(),
        RefreshUse::Reused(r1.clone(), 1_000)
    );
    assert_eq!(
        s.use_refresh("nope", 1_000).await.unwrap(),
        RefreshUse::Unknown
    );

    // The caller revokes the family: its unspent tokens stop working until `until`.
    let r2 = refresh("h2", "f1", 10_000);
    s.put_refresh(&r2).await.unwrap();
    s.revoke_family("f1", 5_000).await.unwrap();
    // A shorter second revocation does not cut the first one short.
    s.revoke_family("f1", 2_000).await.unwrap();
    assert_eq!(
        s.use_refresh("h2", 4_999).await.unwrap(),
        RefreshUse::Unknown
    );
    assert_eq!(
        s.use_refresh("h1", 4_999).await.unwrap(),
        RefreshUse::Unknown
    );
    assert_eq!(
        s.use_refresh("h2", 5_000).await.unwrap(),
        RefreshUse::Fresh(r2)
    );

    // Expired at `expires_at` exactly.
    s.put_refresh(&refresh("h3", "f3", 3_000)).await.unwrap();
    assert_eq!(
        s.use_refresh("h3", 3_000).await.unwrap(),
        RefreshUse::Unknown
    );
    assert!(matches!(
        s.use_refresh("h3", 2_999).await.unwrap(),
        RefreshUse::Fresh(_)
    ));
}

#[tokio::test]
async fn expired_tokens_and_revocations_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    for i in 0..(PRUNE_BATCH as u64 + 3) {
        s.put_refresh(&refresh(&format!("old{i}"), "f", 1_000 + i))
            .await
            .unwrap();
    }
    for i in 0..4 {
        s.put_refresh(&refresh(&format!("live{i}"), "g", u64::MAX))
            .await
            .unwrap();
    }
    s.revoke_family("f", 2_000).await.unwrap();
    let later = 10_000 + PRUNE_GRACE_MS;
    let all = PRUNE_BATCH as u64 + 3 + 4;
    // Pruning rides on writes that happen anyway (spending a live token); a use that
    // writes nothing (an unknown or expired token) prunes nothing.
    s.use_refresh("x", later).await.unwrap();
    s.use_refresh("old0", later).await.unwrap();
    assert_eq!(table_len(&s, REFRESH), all);
    // Within the grace period nothing goes.
    s.use_refresh("live0", 1_000 + PRUNE_GRACE_MS)
        .await
        .unwrap();
    assert_eq!(table_len(&s, REFRESH), all);
    s.use_refresh("live1", later).await.unwrap();
    assert_eq!(
        table_len(&s, REFRESH),
        all - PRUNE_BATCH as u64,
        "one batch per write"
    );
    assert_eq!(table_len(&s, REVOKED), 0);
    s.use_refresh("live2", later).await.unwrap();
    assert_eq!(table_len(&s, REFRESH), 4);
    assert_eq!(table_len(&s, REFRESH_BY_EXPIRY), 4);
    assert_eq!(table_len(&s, REVOKED_BY_UNTIL), 0);
    assert!(matches!(
        s.use_refresh("live3", later).await.unwrap(),
        RefreshUse::Fresh(_)
    ));
}

/// A use that finds nothing to spend (unknown, expired, revoked, already spent) does not
/// open a write transaction: it answers while another writer holds redb's write lock,
/// where anything calling `begin_write` would wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_that_spend_nothing_do_not_wait_for_writers() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let now = 5_000;
    s.put_refresh(&refresh("spent", "f1", 10_000))
        .await
        .unwrap();
    s.put_refresh(&refresh("expired", "f1", now)).await.unwrap();
    s.put_refresh(&refresh("revoked", "f2", 10_000))
        .await
        .unwrap();
    s.put_refresh(&refresh("live", "f1", 10_000)).await.unwrap();
    s.revoke_family("f2", 10_000).await.unwrap();
    assert!(matches!(
        s.use_refresh("spent", 1_000).await.unwrap(),
        RefreshUse::Fresh(_)
    ));

    let writer = s.db.begin_write().unwrap();
    let quick = std::time::Duration::from_secs(5);
    for (hash, want) in [
        ("made-up", RefreshUse::Unknown),
        ("expired", RefreshUse::Unknown),
        ("revoked", RefreshUse::Unknown),
        (
            "spent",
            RefreshUse::Reused(refresh("spent", "f1", 10_000), 1_000),
        ),
    ] {
        let got = tokio::time::timeout(quick, s.use_refresh(hash, now))
            .await
            .unwrap_or_else(|_| panic!("{hash}: waited for the write lock"));
        assert_eq!(got.unwrap(), want, "{hash}");
    }
    // The check can tell: spending a live token does wait for the writer.
    let spend = tokio::spawn({
        let s = s.clone();
        async move { s.use_refresh("live", now).await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!spend.is_finished(), "spending must take the write lock");
    drop(writer);
    assert!(matches!(spend.await.unwrap(), RefreshUse::Fresh(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_spend_a_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    s.put_refresh(&refresh("h", "f", u64::MAX)).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_refresh("h", 1).await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            RefreshUse::Fresh(_) => fresh += 1,
            RefreshUse::Reused(_, at) => assert_eq!(at, 1),
            RefreshUse::Unknown => panic!("the token exists"),
        }
    }
    assert_eq!(fresh, 1);
}

#[tokio::test]
async fn feeds_are_newest_first_with_ties_broken_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    for (id, at) in [("a", 5), ("c", 5), ("b", 5), ("d", 7), ("e", 3)] {
        s.create_post(&post(id, "u", "pl", at, SEOUL), None)
            .await
            .unwrap();
    }
    // Scopes whose key is a prefix of another's do not leak into each other.
    s.create_post(&post("z", "uu", "pl2", 6, BUSAN), None)
        .await
        .unwrap();
    let author = Scope::Author(AccountId("u".into()));
    let all = s.posts_in_scope(&author, None, 10).await.unwrap();
    assert_eq!(ids(&all), ["d", "c", "b", "a", "e"]);
    let place = Scope::Place(PlaceId("pl".into()));
    assert_eq!(
        ids(&s.posts_in_scope(&place, None, 10).await.unwrap()),
        ["d", "c", "b", "a", "e"]
    );
    let cell = Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION));
    assert_eq!(
        ids(&s.posts_in_scope(&cell, None, 2).await.unwrap()),
        ["d", "c"]
    );

    // Strictly below the cursor, within a tie.
    let after_c = PostCursor {
        created_at: 5,
        id: PostId("c".into()),
    };
    let rest = s.posts_in_scope(&author, Some(&after_c), 10).await.unwrap();
    assert_eq!(ids(&rest), ["b", "a", "e"]);
    let bottom = PostCursor {
        created_at: 0,
        id: PostId(String::new()),
    };
    assert!(
        s.posts_in_scope(&author, Some(&bottom), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.posts_in_scope(&Scope::Author(AccountId("nobody".into())), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The provided pager walks the same order, two at a time.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.feed(&author, cursor.as_deref(), 2).await.unwrap();
        seen.extend(page.items.iter().map(|p| p.id.0.clone()));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["d", "c", "b", "a", "e"]);
}

#[tokio::test]
async fn put_place_moves_its_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let mut pl = place("p1", "Bistro Paul", SEOUL);
    s.put_place(&pl).await.unwrap();
    assert_eq!(s.places_by_token("pau", None, 10).await.unwrap().len(), 1);
    pl.name = "Cafe Luna".into();
    pl.location = BUSAN;
    s.put_place(&pl).await.unwrap();

    assert!(
        s.places_by_token("bistro", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.places_by_token("paul", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.places_by_token("lu", None, 10).await.unwrap(),
        vec![("luna".to_string(), pl.clone())]
    );
    for p in geo::PLACE_PRECISIONS {
        assert!(
            s.places_in_cell(&geo::encode(SEOUL, p), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.places_in_cell(&geo::encode(BUSAN, p), None, 10)
                .await
                .unwrap(),
            vec![pl.clone()]
        );
    }
    assert_eq!(table_len(&s, PLACES_BY_NAME), 2, "cafe luna, luna");
    assert_eq!(
        table_len(&s, PLACES_BY_CELL),
        geo::PLACE_PRECISIONS.len() as u64
    );
    assert_eq!(s.place(&pl.id).await.unwrap(), Some(pl));
}

#[tokio::test]
async fn name_and_cell_ranges_page_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    for (id, name) in [
        ("p3", "Paul"),
        ("p2", "Papa Paul"),
        ("p1", "Pa"),
        ("p4", "Pub"),
    ] {
        s.put_place(&place(id, name, SEOUL)).await.unwrap();
    }
    let keys = |rows: Vec<(String, Place)>| {
        rows.into_iter()
            .map(|(t, p)| format!("{t}/{}", p.id.0))
            .collect::<Vec<_>>()
    };
    let all = keys(s.places_by_token("pa", None, 10).await.unwrap());
    assert_eq!(all, ["pa/p1", "papa paul/p2", "paul/p2", "paul/p3"]);
    let after = NameCursor {
        token: "paul".into(),
        id: PlaceId("p2".into()),
    };
    assert_eq!(
        keys(s.places_by_token("pa", Some(&after), 10).await.unwrap()),
        ["paul/p3"]
    );
    assert_eq!(
        keys(s.places_by_token("pa", None, 2).await.unwrap()),
        ["pa/p1", "papa paul/p2"]
    );
    // A cursor from another query's range starts this one over or ends it.
    let early = NameCursor {
        token: "a".into(),
        id: PlaceId("p9".into()),
    };
    assert_eq!(
        s.places_by_token("pa", Some(&early), 10)
            .await
            .unwrap()
            .len(),
        4
    );
    let late = NameCursor {
        token: "zz".into(),
        id: PlaceId("p9".into()),
    };
    assert!(
        s.places_by_token("pa", Some(&late), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let cell = geo::encode(SEOUL, 6);
    let in_cell = |v: Vec<Place>| v.into_iter().map(|p| p.id.0).collect::<Vec<_>>();
    assert_eq!(
        in_cell(s.places_in_cell(&cell, None, 10).await.unwrap()),
        ["p1", "p2", "p3", "p4"]
    );
    assert_eq!(
        in_cell(
            s.places_in_cell(&cell, Some(&PlaceId("p2".into())), 10)
                .await
                .unwrap()
        ),
        ["p3", "p4"]
    );
    // Coarser cells are prefixes of the 6-character one, and different keys.
    assert_eq!(
        s.places_in_cell(&cell[..4], None, 10).await.unwrap().len(),
        4
    );
    assert!(
        s.places_in_cell(&cell[..3], None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn idempotent_creates_replay_or_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let key = |fp: &str| Idempotency {
        key: "k1".into(),
        fingerprint: fp.into(),
    };
    let first = post("p1", "u", "pl", 1, SEOUL);
    assert_eq!(
        s.create_post(&first, Some(&key("f"))).await.unwrap(),
        Created::Created(first.clone())
    );
    // The retry carries a new server-chosen id: the first post comes back, nothing new.
    let retry = post("p2", "u", "pl", 2, SEOUL);
    assert_eq!(
        s.create_post(&retry, Some(&key("f"))).await.unwrap(),
        Created::Replayed(first.clone())
    );
    let e = s
        .create_post(&retry, Some(&key("other")))
        .await
        .unwrap_err();
    assert!(matches!(e, RecordError::IdempotencyMismatch), "{e}");
    assert_eq!(s.post(&retry.id).await.unwrap(), None);
    let author = Scope::Author(AccountId("u".into()));
    assert_eq!(
        ids(&s.posts_in_scope(&author, None, 10).await.unwrap()),
        ["p1"]
    );

    // Keys are per author.
    let other = post("p3", "v", "pl", 3, SEOUL);
    assert_eq!(
        s.create_post(&other, Some(&key("f"))).await.unwrap(),
        Created::Created(other)
    );

    // An expired key counts as absent (and the next write prunes it).
    {
        let w = s.db.begin_write().unwrap();
        let old = to_json(&StoredIdempotency {
            post_id: PostId("p1".into()),
            fingerprint: "f".into(),
            expires_at: 10,
            created_at: Some(1),
            updated_at: Some(1),
        })
        .unwrap();
        let mut keys = w.open_table(IDEMPOTENCY).unwrap();
        let mut by_expiry = w.open_table(IDEMPOTENCY_BY_EXPIRY).unwrap();
        let now = keys.get(("u", "k1")).unwrap().unwrap();
        let at = from_json::<StoredIdempotency>(now.value())
            .unwrap()
            .expires_at;
        drop(now);
        by_expiry.remove((at, "u", "k1")).unwrap();
        by_expiry.insert((10, "u", "k1"), ()).unwrap();
        keys.insert(("u", "k1"), old.as_slice()).unwrap();
        drop((keys, by_expiry));
        w.commit().unwrap();
    }
    let fresh = post("p4", "u", "pl", 4, SEOUL);
    assert_eq!(
        s.create_post(&fresh, Some(&key("other"))).await.unwrap(),
        Created::Created(fresh.clone())
    );
    assert_eq!(table_len(&s, IDEMPOTENCY), 2);
    assert_eq!(table_len(&s, IDEMPOTENCY_BY_EXPIRY), 2);
    // A deleted post has nothing to replay: a retry writes it again under the key's id
    // and timestamps, so retries still converge on one post with one `created_at`.
    s.delete_post(&fresh).await.unwrap();
    let retry = post("p5", "u", "pl", 5, SEOUL);
    let mut expected = retry.clone();
    expected.id = fresh.id.clone();
    expected.created_at = fresh.created_at;
    expected.updated_at = fresh.updated_at;
    assert_eq!(
        s.create_post(&retry, Some(&key("other"))).await.unwrap(),
        Created::Created(expected.clone())
    );
    assert_eq!(s.post(&retry.id).await.unwrap(), None);
    assert_eq!(
        s.create_post(&retry, Some(&key("other"))).await.unwrap(),
        Created::Replayed(expected)
    );
}

#[tokio::test]
async fn replace_and_delete_keep_every_table_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let old = post("p1", "u", "pl1", 1, SEOUL);
    s.create_post(&old, None).await.unwrap();
    let mut new = old.clone();
    new.draft.place_id = PlaceId("pl2".into());
    new.location = BUSAN;
    new.draft.text = "다시 가고 싶어요".into();
    new.updated_at = 2;
    s.replace_post(&old, &new).await.unwrap();
    assert_eq!(s.post(&old.id).await.unwrap(), Some(new.clone()));
    let one = |scope: Scope| {
        let s = s.clone();
        async move { ids(&s.posts_in_scope(&scope, None, 10).await.unwrap()).len() }
    };
    assert_eq!(one(Scope::Place(PlaceId("pl1".into()))).await, 0);
    assert_eq!(one(Scope::Place(PlaceId("pl2".into()))).await, 1);
    assert_eq!(
        one(Scope::Cell(geo::encode(SEOUL, geo::POST_PRECISION))).await,
        0
    );
    assert_eq!(
        one(Scope::Cell(geo::encode(BUSAN, geo::POST_PRECISION))).await,
        1
    );
    assert_eq!(one(Scope::Author(AccountId("u".into()))).await, 1);

    // An edit from a stale copy (the first version) is refused, and writes nothing.
    let mut late = old.clone();
    late.draft.text = "늦은 수정".into();
    late.updated_at = 3;
    let e = s.replace_post(&old, &late).await.unwrap_err();
    assert!(matches!(e, RecordError::Conflict("post")), "{e}");
    assert_eq!(s.post(&old.id).await.unwrap(), Some(new.clone()));
    assert_eq!(one(Scope::Place(PlaceId("pl1".into()))).await, 0);
    assert_eq!(one(Scope::Place(PlaceId("pl2".into()))).await, 1);

    s.delete_post(&new).await.unwrap();
    assert_eq!(s.post(&old.id).await.unwrap(), None);
    for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
        assert_eq!(table_len(&s, t), 0);
    }
    assert_eq!(table_len(&s, POSTS), 0);
    // An edit racing the delete is a conflict and does not bring the post back.
    let e = s.replace_post(&new, &new).await.unwrap_err();
    assert!(matches!(e, RecordError::Conflict("post")), "{e}");
    assert_eq!(s.post(&old.id).await.unwrap(), None);
    for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
        assert_eq!(table_len(&s, t), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_from_one_version_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedRecords::open(dir.path()).await.unwrap();
    let old = post("p1", "u", "pl1", 1, SEOUL);
    s.create_post(&old, None).await.unwrap();
    let edits: Vec<Post> = (0..8u64)
        .map(|i| {
            let mut e = old.clone();
            e.draft.text = format!("edit {i}");
            e.draft.place_id = PlaceId(format!("pl{}", i + 2));
            e.updated_at = 2 + i;
            e
        })
        .collect();
    let tasks: Vec<_> = edits
        .iter()
        .map(|e| {
            let (s, old, e) = (s.clone(), old.clone(), e.clone());
            tokio::spawn(async move { s.replace_post(&old, &e).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(()) => won.push(i),
            Err(RecordError::Conflict("post")) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let winner = &edits[won[0]];
    assert_eq!(s.post(&old.id).await.unwrap().as_ref(), Some(winner));
    // Only the winner's feed rows.
    for t in [POSTS_BY_AUTHOR, POSTS_BY_PLACE, POSTS_BY_CELL] {
        assert_eq!(table_len(&s, t), 1);
    }
    let at = Scope::Place(winner.draft.place_id.clone());
    assert_eq!(ids(&s.posts_in_scope(&at, None, 10).await.unwrap()), ["p1"]);
}
