//! The [`PostStore`] part of the contract: posts, edits and their conflicts, idempotency
//! keys, feeds and "near me".

use wagu_proto::PlaceId;
use wagu_proto::model::{LatLng, UnixMillis};
use wagu_proto::records::{
    AccountId, MAX_MENU_ITEMS, MAX_MENU_NAME_CHARS, MAX_PHOTO_ID_BYTES, MAX_PHOTOS,
    MAX_POST_TEXT_CHARS, MAX_PRICE, MenuItem, PhotoId, Place, Post, PostDraft, PostId, TextOrigin,
};
use wagu_storage::records::{
    self, BUCKET_MILLIS, Created, Idempotency, PlaceStore, PostCursor, PostStore, RecordError,
    Scope, bucket_of, encode_cursor, geo,
};

use crate::places::{place, put_all};
use crate::support::*;

pub(crate) fn post(
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
pub(crate) fn newest_first(mut v: Vec<Post>) -> Vec<Post> {
    v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    v
}

/// One page of a feed, asserting it is the whole answer.
pub(crate) async fn feed_all<S: PostStore>(s: &S, scope: &Scope) -> Vec<Post> {
    let page = s
        .feed(scope, None, 100)
        .await
        .unwrap_or_else(|e| panic!("feed({scope:?}): {e}"));
    assert_eq!(page.next, None, "feed {scope:?} fits one page of 100");
    page.items
}

pub(crate) async fn near_all<S: PostStore>(s: &S, c: LatLng, radius_km: f64) -> Vec<Post> {
    let page = s
        .posts_near(c, radius_km, None, 100)
        .await
        .unwrap_or_else(|e| panic!("posts_near({c:?}, {radius_km}): {e}"));
    assert_eq!(page.next, None, "near feed fits one page of 100");
    page.items
}

pub(crate) async fn create<S: PostStore>(s: &S, p: &Post) {
    assert_eq!(
        s.create_post(p, None).await.expect("create_post"),
        Created::Created(p.clone()),
        "create_post {}",
        p.id
    );
}

pub(crate) async fn posts_crud<S: PlaceStore + PostStore>(s: &S, tag: &str) {
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
pub(crate) fn same_posts(got: &[Post], expected: &[&Post], what: &str) {
    let want: Vec<String> = expected.iter().map(|p| p.id.0.clone()).collect();
    assert_eq!(pids_of(got), want, "{what}: post ids");
    for (g, w) in got.iter().zip(expected) {
        assert_eq!(g, *w, "{what}: post {}", w.id.0);
    }
}

#[track_caller]
pub(crate) fn expect_conflict<T: std::fmt::Debug>(r: records::Result<T>, what: &str) {
    match r {
        Err(RecordError::Conflict(_)) => {}
        other => panic!("{what}: expected RecordError::Conflict, got {other:?}"),
    }
}

/// `replace_post` is a compare-and-set on `updated_at`: an edit from a version that is no
/// longer stored (edited or deleted since) is a conflict and writes nothing.
pub(crate) async fn edit_conflicts<S: PlaceStore + PostStore>(s: &S, tag: &str) {
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

pub(crate) async fn idempotency<S: PlaceStore + PostStore>(s: &S, tag: &str) {
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
pub(crate) async fn check_feed<S: PostStore>(s: &S, scope: &Scope, expected: &[Post]) {
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

pub(crate) async fn feeds<S: PlaceStore + PostStore>(s: &S, tag: &str) {
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

pub(crate) async fn near_feed<S: PlaceStore + PostStore>(s: &S, tag: &str) {
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
