//! Tests of what only the CQL backend has: the keyspace name rule, TTLs, and every primitive
//! against the test bed's Cassandra (LWT races, batches too large for one logged batch). The
//! contract every backend keeps is `storage/tests/records/`.

use wagu_proto::PlaceId;
use wagu_proto::model::{Bounds, LatLng};
use wagu_proto::records::{
    AccountId, MenuItem, PhotoId, Place, Post, PostDraft, PostId, TextOrigin,
};

use super::places::cell_keys;
use super::rows::big;
use super::writes::{BATCH_BYTES, MAX_TTL_SECS, post_bytes, ttl_secs};
use super::*;
use crate::records::{
    AccountRecord, AccountStore, BUCKET_MILLIS, Created, Idempotency, NameCursor, PlaceStore,
    PostCursor, PostStore, RefreshRecord, RefreshUse, Scope, geo, now_millis,
};

#[test]
fn keyspace_names_are_checked() {
    for ok in ["wagu", "w", "wagu_test_1", &"a".repeat(48)] {
        assert!(check_keyspace(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Wagu",
        "1wagu",
        "_w",
        "wagu-x",
        "w; DROP",
        "wagu.x",
        &"a".repeat(49),
    ] {
        assert!(
            matches!(check_keyspace(bad), Err(RecordError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn ttls_are_positive_and_capped() {
    assert_eq!(ttl_secs(1_000, 2_000), 1);
    assert_eq!(ttl_secs(2_001, 1_000), 2);
    assert_eq!(ttl_secs(u64::MAX, 0), MAX_TTL_SECS as i32);
}

fn ll(lat: f64, lng: f64) -> LatLng {
    LatLng { lat, lng }
}

fn place(id: &str, name: &str, at: LatLng) -> Place {
    Place {
        id: PlaceId(id.into()),
        name: name.into(),
        category: "korean".into(),
        address: "을지로 1".into(),
        location: at,
        phone: None,
        hours: Some("Mo-Su 10:00-22:00".into()),
    }
}

fn post(id: &str, author: &str, place: &Place, created_at: u64) -> Post {
    Post {
        id: PostId(id.into()),
        author: AccountId(author.into()),
        author_name: "Kim".into(),
        place_name: place.name.clone(),
        location: place.location,
        created_at,
        updated_at: created_at,
        draft: PostDraft {
            place_id: place.id.clone(),
            visit_date: "2026-11-20".into(),
            menu: vec![
                MenuItem {
                    name: "냉면".into(),
                    price: Some(14_000),
                },
                MenuItem {
                    name: "만두".into(),
                    price: None,
                },
            ],
            rating: 4,
            text: "맛있어요".into(),
            photos: vec![PhotoId("ph_1".into())],
            text_origin: TextOrigin::AiEdited,
        },
    }
}

fn idem(key: &str, fp: &str) -> Idempotency {
    Idempotency {
        key: key.into(),
        fingerprint: fp.into(),
    }
}

fn ids(posts: &[Post]) -> Vec<&str> {
    posts.iter().map(|p| p.id.as_str()).collect()
}

/// Every primitive against the test bed's Cassandra, in a keyspace of its own that is
/// dropped afterwards (also when an assertion fails).
#[tokio::test(flavor = "multi_thread")]
async fn cql_records_against_the_test_bed() {
    let test = "cql_records_against_the_test_bed";
    let Some(nodes) = crate::testbed::service(crate::testbed::CQL_NODES, test) else {
        return;
    };
    let session = crate::cql::connect(&crate::cql::parse_nodes(&nodes))
        .await
        .unwrap_or_else(|e| panic!("CQL promised at {nodes} but unreachable: {e}"));
    let session = Arc::new(session);
    let ks = format!("wagu_records_{}", rand::random::<u32>());
    migrate(&session, &ks, 1).await.unwrap();
    // Idempotent.
    migrate(&session, &ks, 1).await.unwrap();
    assert!(matches!(
        migrate(&session, "Bad-Name", 1).await,
        Err(RecordError::Invalid(_))
    ));
    let r = CqlRecords::new(session.clone(), &ks).await.unwrap();
    r.ping().await.unwrap();
    // Spawned: the futures must be `Send` for the HTTP handlers, and a panic inside still
    // lets the keyspace be dropped below.
    let outcome = tokio::spawn(async move {
        accounts(&r).await;
        places(&r).await;
        posts(&r).await;
    })
    .await;
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), ())
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn accounts(r: &CqlRecords) {
    let a = AccountRecord {
        id: AccountId("acc1".into()),
        email: "kim@example.com".into(),
        display_name: "Kim".into(),
        password_hash: "$argon2id$v=19$x".into(),
        created_at: 1_700_000_000_000,
    };
    r.create_account(&a).await.unwrap();
    // A retry of the same creation is fine; another account with the email is not.
    r.create_account(&a).await.unwrap();
    let other = AccountRecord {
        id: AccountId("acc2".into()),
        ..a.clone()
    };
    assert!(matches!(
        r.create_account(&other).await,
        Err(RecordError::Taken("email"))
    ));
    assert_eq!(r.account(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(r.account(&other.id).await.unwrap(), None);
    assert_eq!(
        r.account_by_email("kim@example.com").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(r.account_by_email("lee@example.com").await.unwrap(), None);

    let now = now_millis();
    let tok = |hash: &str, family: &str, expires_at| RefreshRecord {
        hash: hash.into(),
        account: a.id.clone(),
        family: family.into(),
        expires_at,
    };
    let t1 = tok("h1", "f1", now + 3_600_000);
    r.put_refresh(&t1).await.unwrap();
    assert_eq!(
        r.use_refresh("h1", now).await.unwrap(),
        RefreshUse::Fresh(t1.clone())
    );
    // Reused, with the time of the use that spent it (answered from the read).
    assert_eq!(
        r.use_refresh("h1", now + 5).await.unwrap(),
        RefreshUse::Reused(t1.clone(), now)
    );
    assert_eq!(
        r.use_refresh("nope", now).await.unwrap(),
        RefreshUse::Unknown
    );
    // Expired by the caller's clock, though its TTL has not run out.
    r.put_refresh(&tok("h2", "f2", now + 1_000)).await.unwrap();
    assert_eq!(
        r.use_refresh("h2", now + 1_000).await.unwrap(),
        RefreshUse::Unknown
    );
    // A revoked family's tokens are unknown.
    r.put_refresh(&tok("h3", "f3", now + 3_600_000))
        .await
        .unwrap();
    r.revoke_family("f3", now + 3_600_000).await.unwrap();
    assert_eq!(r.use_refresh("h3", now).await.unwrap(), RefreshUse::Unknown);
    // Two concurrent uses: exactly one is fresh, the other reused at the winner's time
    // (usually through the compare-and-set that did not apply and the serial read).
    for i in 0..5 {
        let t = tok(&format!("c{i}"), "f4", now + 3_600_000);
        r.put_refresh(&t).await.unwrap();
        let (x, y) = tokio::join!(r.use_refresh(&t.hash, now), r.use_refresh(&t.hash, now + 1));
        let got = [x.unwrap(), y.unwrap()];
        let want = match &got[0] {
            RefreshUse::Fresh(_) => [RefreshUse::Fresh(t.clone()), RefreshUse::Reused(t, now)],
            _ => [RefreshUse::Reused(t.clone(), now + 1), RefreshUse::Fresh(t)],
        };
        assert_eq!(got, want);
    }
    // The statements of that path: a spend that does not apply returns `used` only, and
    // the serial read finds the winner's `used_at`.
    let t = tok("lwt", "f5", now + 3_600_000);
    r.put_refresh(&t).await.unwrap();
    let spend = |at: u64| {
        r.one(&r.st.spend_refresh, (60, big(at), t.hash.as_str()), |c| {
            Ok((c.get::<bool>("[applied]")?, c.opt::<bool>("used")?))
        })
    };
    assert_eq!(spend(now + 7).await.unwrap(), Some((true, None)));
    assert_eq!(spend(now + 8).await.unwrap(), Some((false, Some(true))));
    let at = r
        .one(&r.st.refresh_used_at, (t.hash.as_str(),), |c| {
            c.opt::<i64>("used_at")
        })
        .await
        .unwrap();
    assert_eq!(at, Some(Some(big(now + 7))));
    assert_eq!(
        r.use_refresh(&t.hash, now + 9).await.unwrap(),
        RefreshUse::Reused(t.clone(), now + 7)
    );

    // External identities. A retry of the same creation (same id) writes the row again.
    let oidc = AccountRecord {
        id: AccountId("oidc1".into()),
        email: "kim@example.com".into(),
        password_hash: String::new(),
        ..a.clone()
    };
    assert_eq!(
        r.create_account_for_identity(&oidc, "kakao", "42")
            .await
            .unwrap(),
        oidc
    );
    assert_eq!(
        r.create_account_for_identity(&oidc, "kakao", "42")
            .await
            .unwrap(),
        oidc
    );
    assert_eq!(
        r.account_by_identity("kakao", "42").await.unwrap(),
        Some(oidc.clone())
    );
    // The email stays with the password account.
    assert_eq!(
        r.account_by_email("kim@example.com").await.unwrap(),
        Some(a.clone())
    );
    // A claim whose account row was never written (the first log-in failed right after
    // its claim): nothing to find, and the next log-in writes its record under the
    // claimed id.
    let claim = r
        .one(&r.st.claim_identity, ("kakao", "43", "stray"), |c| {
            c.get::<bool>("[applied]")
        })
        .await
        .unwrap();
    assert_eq!(claim, Some(true));
    assert_eq!(r.account_by_identity("kakao", "43").await.unwrap(), None);
    let late = AccountRecord {
        id: AccountId("oidc2".into()),
        ..oidc.clone()
    };
    let repaired = AccountRecord {
        id: AccountId("stray".into()),
        ..oidc.clone()
    };
    assert_eq!(
        r.create_account_for_identity(&late, "kakao", "43")
            .await
            .unwrap(),
        repaired
    );
    assert_eq!(r.account(&late.id).await.unwrap(), None);
    assert_eq!(
        r.account_by_identity("kakao", "43").await.unwrap(),
        Some(repaired)
    );
}

async fn places(r: &CqlRecords) {
    assert!(!r.has_places().await.unwrap());
    let seoul = ll(37.5665, 126.978);
    let paul = place("p:bistro", "Bistro Paul", seoul);
    let papa = place("p:papa", "Papa Paul", ll(37.5670, 126.9785));
    let mut golbaengi = place("p:gol", "을지로 골뱅이", ll(37.566, 126.991));
    golbaengi.phone = Some("+82-2-0000-0000".into());
    for p in [&paul, &papa, &golbaengi] {
        r.put_place(p).await.unwrap();
    }
    assert!(r.has_places().await.unwrap());
    assert_eq!(
        r.place(&golbaengi.id).await.unwrap(),
        Some(golbaengi.clone())
    );
    assert_eq!(r.place(&PlaceId("p:none".into())).await.unwrap(), None);

    // "pa" matches "papa paul" and "paul" twice; ordered by (token, id).
    let rows = r.places_by_token("pa", None, 10).await.unwrap();
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|(t, p)| (t.as_str(), p.id.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("papa paul", "p:papa"),
            ("paul", "p:bistro"),
            ("paul", "p:papa")
        ]
    );
    assert_eq!(rows[1].1, paul);
    // Paging with the multi-column cursor, one row at a time.
    let mut after: Option<NameCursor> = None;
    let mut walked = Vec::new();
    loop {
        let page = r.places_by_token("pa", after.as_ref(), 1).await.unwrap();
        let Some((token, p)) = page.into_iter().next() else {
            break;
        };
        walked.push((token.clone(), p.id.0.clone()));
        after = Some(NameCursor { token, id: p.id });
    }
    let walked: Vec<(&str, &str)> = walked
        .iter()
        .map(|(t, i)| (t.as_str(), i.as_str()))
        .collect();
    assert_eq!(walked, keys);
    // A cursor from another query, before the range, starts at the top.
    let early = NameCursor {
        token: "a".into(),
        id: PlaceId("x".into()),
    };
    assert_eq!(
        r.places_by_token("pa", Some(&early), 10)
            .await
            .unwrap()
            .len(),
        3
    );
    let page = r.search_places("PA", None, 1).await.unwrap();
    assert_eq!(ids_of(&page.items), ["p:papa"]);
    let page = r
        .search_places("pa", page.next.as_deref(), 5)
        .await
        .unwrap();
    // Dedup is per page: "paul" of Papa Paul is a new row on this one.
    assert_eq!(ids_of(&page.items), ["p:bistro", "p:papa"]);
    assert_eq!(
        ids_of(&r.search_places("골뱅", None, 5).await.unwrap().items),
        ["p:gol"]
    );

    // Renaming and moving replace the index rows.
    let moved = Place {
        name: "Chez Marie".into(),
        location: ll(35.1796, 129.0756),
        ..paul.clone()
    };
    r.put_place(&moved).await.unwrap();
    let rows = r.places_by_token("pa", None, 10).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|(_, p)| p.id == papa.id));
    assert_eq!(
        r.places_by_token("marie", None, 10).await.unwrap()[0].1,
        moved
    );
    for cell in cell_keys(&paul) {
        let here = r.places_in_cell(&cell, None, 10).await.unwrap();
        assert!(here.iter().all(|p| p.id != paul.id), "{cell}: {here:?}");
    }
    for cell in cell_keys(&moved) {
        assert_eq!(
            r.places_in_cell(&cell, None, 10).await.unwrap(),
            vec![moved.clone()]
        );
    }
    // A change of details only rewrites the copies.
    let renamed = Place {
        category: "bistro".into(),
        ..moved.clone()
    };
    r.put_place(&renamed).await.unwrap();
    assert_eq!(
        r.places_by_token("chez", None, 10).await.unwrap()[0].1,
        renamed
    );
    let cell = geo::encode(seoul, 4);
    let all = r.places_in_cell(&cell, None, 10).await.unwrap();
    assert_eq!(ids_of(&all), ["p:gol", "p:papa"]);
    let rest = r
        .places_in_cell(&cell, Some(&golbaengi.id), 10)
        .await
        .unwrap();
    assert_eq!(ids_of(&rest), ["p:papa"]);
    let b = Bounds {
        sw: ll(37.56, 126.97),
        ne: ll(37.57, 126.995),
    };
    let page = r.places_in_bounds(&b, None, 10).await.unwrap();
    let mut got = ids_of(&page.items);
    got.sort();
    assert_eq!(got, ["p:gol", "p:papa"]);
}

fn ids_of(places: &[Place]) -> Vec<&str> {
    places.iter().map(|p| p.id.as_str()).collect()
}

async fn posts(r: &CqlRecords) {
    let here = place("p:here", "Here", ll(37.5665, 126.978));
    let there = place("p:there", "There", ll(35.1796, 129.0756));
    let t0 = 1_790_000_000_000;
    // Three buckets, two posts in the middle one, same millisecond for two of them.
    let times = [
        t0,
        t0 + BUCKET_MILLIS,
        t0 + BUCKET_MILLIS,
        t0 + BUCKET_MILLIS + 5,
        t0 + 3 * BUCKET_MILLIS,
    ];
    let mut all = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let p = post(&format!("post{i}"), "acc1", &here, *t);
        assert_eq!(
            r.create_post(&p, None).await.unwrap(),
            Created::Created(p.clone())
        );
        all.push(p);
    }
    assert_eq!(r.post(&all[0].id).await.unwrap(), Some(all[0].clone()));
    assert_eq!(r.post(&PostId("none".into())).await.unwrap(), None);
    let mut newest_first = all.clone();
    newest_first.sort_by(|a, b| PostCursor::of(b).cmp(&PostCursor::of(a)));
    let author = Scope::Author(AccountId("acc1".into()));
    let got = r.posts_in_scope(&author, None, 10).await.unwrap();
    assert_eq!(got, newest_first);
    // Paged two at a time through the buckets.
    let mut cursor: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let page = r.feed(&author, cursor.as_deref(), 2).await.unwrap();
        walked.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(ids(&walked), ids(&newest_first));
    let before = PostCursor::of(&newest_first[1]);
    let got = r.posts_in_scope(&author, Some(&before), 2).await.unwrap();
    assert_eq!(ids(&got), ids(&newest_first[2..4]));
    assert_eq!(
        r.posts_in_scope(&Scope::Place(here.id.clone()), None, 10)
            .await
            .unwrap()
            .len(),
        5
    );
    let near = r.posts_near(here.location, 1.0, None, 3).await.unwrap();
    assert_eq!(ids(&near.items), ids(&newest_first[..3]));

    // Editing moves it to another place and cell.
    let old = all[0].clone();
    let mut new = post("post0", "acc1", &there, old.created_at);
    new.updated_at = old.created_at + 1;
    new.draft.menu.clear();
    new.draft.photos.clear();
    new.draft.text_origin = TextOrigin::Author;
    r.replace_post(&old, &new).await.unwrap();
    assert_eq!(r.post(&old.id).await.unwrap(), Some(new.clone()));
    let at_here = r
        .posts_in_scope(&Scope::Place(here.id.clone()), None, 10)
        .await
        .unwrap();
    assert!(at_here.iter().all(|p| p.id != old.id));
    let at_there = r
        .posts_in_scope(&Scope::Place(there.id.clone()), None, 10)
        .await
        .unwrap();
    assert_eq!(at_there, [new.clone()]);
    let cell = geo::encode(there.location, geo::POST_PRECISION);
    assert_eq!(
        r.posts_in_scope(&Scope::Cell(cell), None, 10)
            .await
            .unwrap(),
        [new.clone()]
    );
    let old_cell = geo::encode(here.location, geo::POST_PRECISION);
    assert_eq!(
        r.posts_in_scope(&Scope::Cell(old_cell.clone()), None, 10)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(
        r.posts_in_scope(&author, None, 10)
            .await
            .unwrap()
            .contains(&new)
    );
    // An edit from a stale copy (the version before) is a conflict and writes nothing.
    let mut stale = new.clone();
    stale.draft.text = "stale".into();
    stale.updated_at = new.updated_at + 1;
    assert!(matches!(
        r.replace_post(&old, &stale).await,
        Err(RecordError::Conflict("post"))
    ));
    assert_eq!(r.post(&old.id).await.unwrap(), Some(new.clone()));
    assert_eq!(
        r.posts_in_scope(&Scope::Place(there.id.clone()), None, 10)
            .await
            .unwrap(),
        [new.clone()]
    );
    // Deleting removes it everywhere; editing it afterwards is a conflict and does not
    // bring it back.
    r.delete_post(&new).await.unwrap();
    assert_eq!(r.post(&new.id).await.unwrap(), None);
    assert!(matches!(
        r.replace_post(&new, &new).await,
        Err(RecordError::Conflict("post"))
    ));
    assert_eq!(r.post(&new.id).await.unwrap(), None);
    for s in [
        author.clone(),
        Scope::Place(there.id.clone()),
        Scope::Cell(old_cell),
    ] {
        let left = r.posts_in_scope(&s, None, 10).await.unwrap();
        assert!(left.iter().all(|p| p.id != new.id), "{s:?}");
    }

    // Idempotency keys.
    let first = post("idem1", "acc2", &here, t0 + 10);
    let k = idem("key-1", "fp-1");
    assert_eq!(
        r.create_post(&first, Some(&k)).await.unwrap(),
        Created::Created(first.clone())
    );
    let again = post("idem1-retry", "acc2", &here, t0 + 20);
    assert_eq!(
        r.create_post(&again, Some(&k)).await.unwrap(),
        Created::Replayed(first.clone())
    );
    assert!(matches!(
        r.create_post(&again, Some(&idem("key-1", "fp-2"))).await,
        Err(RecordError::IdempotencyMismatch)
    ));
    // Keys are per author.
    let other_author = post("idem2", "acc3", &here, t0 + 10);
    assert_eq!(
        r.create_post(&other_author, Some(&k)).await.unwrap(),
        Created::Created(other_author.clone())
    );
    // The key's post is gone: the replay writes it again, under the key's id.
    r.delete_post(&first).await.unwrap();
    let replay = post("idem1-late", "acc2", &here, t0 + 10);
    match r.create_post(&replay, Some(&k)).await.unwrap() {
        Created::Created(p) => {
            assert_eq!(p.id, first.id);
            assert_eq!(
                (p.created_at, p.updated_at),
                (first.created_at, first.updated_at)
            );
            assert_eq!(r.post(&first.id).await.unwrap(), Some(p));
        }
        other => panic!("{other:?}"),
    }
    // A first request that claimed its key but is slow to write its post: the retry
    // writes it after polling, under the key's id and timestamps; when the first request
    // finally writes, both wrote the same rows, and the post is listed once.
    let slow = post("slow", "acc5", &here, t0 + 50);
    let k3 = idem("key-3", "fp");
    let claimed = r
        .one(
            &r.st.claim_idem,
            (
                slow.author.as_str(),
                &k3.key,
                slow.id.as_str(),
                &k3.fingerprint,
                big(slow.created_at),
                big(slow.updated_at),
            ),
            |c| c.get::<bool>("[applied]"),
        )
        .await
        .unwrap();
    assert_eq!(claimed, Some(true));
    let retry = post("slow-retry", "acc5", &here, t0 + 60);
    assert_eq!(
        r.create_post(&retry, Some(&k3)).await.unwrap(),
        Created::Created(slow.clone())
    );
    r.write_post(&slow).await.unwrap();
    let theirs = Scope::Author(AccountId("acc5".into()));
    assert_eq!(
        r.posts_in_scope(&theirs, None, 10).await.unwrap(),
        std::slice::from_ref(&slow)
    );
    assert_eq!(r.post(&slow.id).await.unwrap(), Some(slow.clone()));
    r.delete_post(&slow).await.unwrap();
    assert!(
        r.posts_in_scope(&theirs, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Concurrent requests with one key end with one post.
    let k2 = idem("key-2", "fp");
    let (a, b) = (
        post("race-a", "acc2", &here, t0 + 30),
        post("race-b", "acc2", &here, t0 + 30),
    );
    let (x, y) = tokio::join!(r.create_post(&a, Some(&k2)), r.create_post(&b, Some(&k2)));
    let id_of = |c: Created| match c {
        Created::Created(p) | Created::Replayed(p) => p.id,
    };
    let (x, y) = (id_of(x.unwrap()), id_of(y.unwrap()));
    assert_eq!(x, y);

    // A post too large for one batch (Cassandra refuses 50 KiB) is written one by one.
    let mut big_post = post("big", "acc4", &here, t0 + 40);
    big_post.draft.text = "맛".repeat(5_000);
    big_post.draft.menu = (0..30)
        .map(|i| MenuItem {
            name: format!("{i}{}", "국".repeat(98)),
            price: Some(wagu_proto::records::MAX_PRICE),
        })
        .collect();
    assert!(post_bytes(&big_post) * 4 > BATCH_BYTES);
    r.create_post(&big_post, None).await.unwrap();
    assert_eq!(r.post(&big_post.id).await.unwrap(), Some(big_post.clone()));
    let mine = Scope::Author(AccountId("acc4".into()));
    assert_eq!(
        r.posts_in_scope(&mine, None, 5).await.unwrap(),
        [big_post.clone()]
    );
    let mut moved = big_post.clone();
    moved.draft.place_id = there.id.clone();
    moved.location = there.location;
    r.replace_post(&big_post, &moved).await.unwrap();
    assert_eq!(
        r.posts_in_scope(&mine, None, 5).await.unwrap(),
        [moved.clone()]
    );
    r.delete_post(&moved).await.unwrap();
    assert!(r.posts_in_scope(&mine, None, 5).await.unwrap().is_empty());
}
