//! The [`PlaceStore`] part of the contract: name search, places that move, viewports.

use unicode_normalization::UnicodeNormalization;
use wagu_proto::PlaceId;
use wagu_proto::model::{Bounds, LatLng};
use wagu_proto::records::Place;
use wagu_storage::records::{PlaceStore, encode_cursor, geo};

use crate::support::*;

pub(crate) fn place(id: &str, name: &str, lat: f64, lng: f64) -> Place {
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

pub(crate) async fn put_all<S: PlaceStore>(s: &S, places: &[&Place]) {
    for p in places {
        s.put_place(p)
            .await
            .unwrap_or_else(|e| panic!("put_place {}: {e}", p.id.0));
    }
}

/// One page of a name search, asserting it is the whole answer.
pub(crate) async fn search_all<S: PlaceStore>(s: &S, q: &str) -> Vec<Place> {
    let page = s
        .search_places(q, None, 100)
        .await
        .unwrap_or_else(|e| panic!("search_places({q:?}): {e}"));
    assert_eq!(page.next, None, "search {q:?} fits one page of 100");
    page.items
}

pub(crate) async fn places_by_name<S: PlaceStore>(s: &S, tag: &str) {
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
pub(crate) async fn place_moves<S: PlaceStore>(s: &S, tag: &str) {
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

pub(crate) async fn cell_ids<S: PlaceStore>(s: &S, cell: &str) -> Vec<String> {
    let rows = s
        .places_in_cell(cell, None, 100)
        .await
        .unwrap_or_else(|e| panic!("places_in_cell({cell}): {e}"));
    pids(&rows)
}

/// One page of a viewport listing, asserting it is the whole answer.
pub(crate) async fn in_box<S: PlaceStore>(s: &S, b: &Bounds) -> Vec<Place> {
    let page = s
        .places_in_bounds(b, None, 100)
        .await
        .unwrap_or_else(|e| panic!("places_in_bounds({b:?}): {e}"));
    assert_eq!(page.next, None, "viewport fits one page of 100");
    page.items
}

pub(crate) fn box_around(c: LatLng, half: f64) -> Bounds {
    Bounds {
        sw: ll(c.lat - half, c.lng - half),
        ne: ll(c.lat + half, c.lng + half),
    }
}

/// What a viewport listing must return: cell by cell in cover order, each by id, only the
/// places inside the box.
pub(crate) fn expected_in_bounds(b: &Bounds, fixture: &[Place]) -> Vec<Place> {
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

pub(crate) async fn places_in_bounds<S: PlaceStore>(s: &S, tag: &str) {
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
