"""Calls a running Wagu server only through the Python client openapi-python-client generated
from the server's own /api/openapi.json (package `wagu_client`, see deploy/openapi/check.sh).

What it proves: a client written from the OpenAPI document alone can list with query
parameters, read typed error bodies, page through feeds by following `next`, sign up and write
with a bearer token. What it does not cover: the WebSocket protocol (docs/PROTOCOL.md).

Usage: PYTHONPATH=<dir holding wagu_client> python client_check.py http://127.0.0.1:PORT
"""

import sys
import time
import uuid
from http import HTTPStatus

from wagu_client import AuthenticatedClient, Client
from wagu_client.api.accounts import get_me, signup
from wagu_client.api.drafts import create_draft
from wagu_client.api.places import get_place, list_places
from wagu_client.api.posts import create_post, get_post, list_account_posts
from wagu_client.api.rooms import create_room, get_room_preview
from wagu_client.api.streams import list_streams
from wagu_client.models import (
    CreateRoomBody,
    Draft,
    DraftRequest,
    DraftSource,
    ErrorBody,
    Language,
    MenuItem,
    TextOrigin,
    PagePlace,
    PagePost,
    Place,
    Post,
    PostDraft,
    SessionBody,
    SignupBody,
)
from wagu_client.types import UNSET

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


def error_code(response):
    check(isinstance(response.parsed, ErrorBody), f"a typed error body, got {response.parsed!r}")
    return response.parsed.error.code


def main(base):
    anon = Client(base_url=base, raise_on_unexpected_status=True)

    # A listing with query parameters: places in a map viewport (the sample data set).
    bbox = "37.55,126.97,37.58,127.00"
    r = list_places.sync_detailed(client=anon, bbox=bbox, limit=100)
    check(r.status_code == HTTPStatus.OK, f"list_places bbox: {r.status_code} {r.content!r}")
    check(isinstance(r.parsed, PagePlace), "a typed page of places")
    check(all(isinstance(p, Place) for p in r.parsed.items), "a page's items are `Place`s")
    everything = [p.id for p in r.parsed.items]
    some_name = r.parsed.items[0].name
    check(len(everything) > 5, f"sample places in the viewport: {len(everything)}")

    # The same listing paged by 5: follow `next` (passed back as `cursor`) until it is absent.
    paged, cursor, pages = [], UNSET, 0
    while True:
        r = list_places.sync_detailed(client=anon, bbox=bbox, limit=5, cursor=cursor)
        check(r.status_code == HTTPStatus.OK, f"page {pages}: {r.status_code} {r.content!r}")
        check(len(r.parsed.items) <= 5, "a page holds at most `limit` items")
        paged += [p.id for p in r.parsed.items]
        pages += 1
        if not isinstance(r.parsed.next_, str):
            break
        cursor = r.parsed.next_
        check(pages < 100, "paging ends")
    check(paged == everything, "pages of 5 list the same places in the same order as one page")
    check(pages >= 2, f"more than one page: {pages}")

    # Name search (a query parameter with non-ASCII text), then one place by id in the path.
    first_word = some_name.split()[0]
    r = list_places.sync_detailed(client=anon, q=first_word, limit=20)
    check(r.status_code == HTTPStatus.OK, f"list_places q: {r.status_code} {r.content!r}")
    check(len(r.parsed.items) >= 1, f"name search finds {first_word!r}")
    place_id = r.parsed.items[0].id
    r = get_place.sync_detailed(place_id, client=anon)
    check(r.status_code == HTTPStatus.OK and r.parsed.id == place_id, f"get_place {place_id}")

    # Error responses, typed: a refused query parameter, an unknown post, a missing token.
    r = list_places.sync_detailed(client=anon, bbox=bbox, limit=0)
    check(r.status_code == HTTPStatus.BAD_REQUEST, f"limit=0: {r.status_code}")
    check(error_code(r) == "invalid", "limit=0 is `invalid`")
    check("limit" in r.parsed.error.message, "the message names the parameter")
    r = get_post.sync_detailed("no-such-post", client=anon)
    check(r.status_code == HTTPStatus.NOT_FOUND, f"unknown post: {r.status_code}")
    check(error_code(r) == "unknown_post", "unknown post is `unknown_post`")
    r = get_room_preview.sync_detailed("no-such-share-token", client=anon)
    check(r.status_code == HTTPStatus.NOT_FOUND, f"unknown room: {r.status_code}")
    check(error_code(r) == "unknown_room", "unknown room is `unknown_room`")

    # Discovery with every query parameter of GET /api/streams.
    r = list_streams.sync_detailed(
        client=anon, sort="viewers", near="37.5665,126.978", radius_km=10.0,
        place_id="sample:0001", limit=20,
    )
    check(r.status_code == HTTPStatus.OK and isinstance(r.parsed, list), f"list_streams: {r.content!r}")
    r = list_streams.sync_detailed(client=anon, sort="loudest")
    check(r.status_code == HTTPStatus.BAD_REQUEST and error_code(r) == "invalid", "sort=loudest")

    # A room from a typed body, then its preview.
    r = create_room.sync_detailed(client=anon, body=CreateRoomBody(title="Friday dinner"))
    check(r.status_code == HTTPStatus.CREATED, f"create_room: {r.status_code} {r.content!r}")
    preview = get_room_preview.sync_detailed(r.parsed.share_token, client=anon)
    check(preview.status_code == HTTPStatus.OK and preview.parsed.title == "Friday dinner", "room preview")

    # Sign up, then write three posts with the bearer token and page the author's feed by 2.
    email = f"openapi-{uuid.uuid4().hex[:12]}@example.com"
    r = signup.sync_detailed(
        client=anon,
        body=SignupBody(email=email, password="correct horse battery", display_name="Client"),
    )
    check(r.status_code == HTTPStatus.CREATED, f"signup: {r.status_code} {r.content!r}")
    check(isinstance(r.parsed, SessionBody), "a typed session")
    session = r.parsed
    now_ms = time.time() * 1000
    check(
        now_ms < session.access_expires_at < now_ms + 86_400_000 + 60_000,
        f"access_expires_at is Unix milliseconds: {session.access_expires_at}",
    )
    check(session.token_type == "Bearer", "token_type")
    me_client = AuthenticatedClient(base_url=base, token=session.access_token)
    r = get_me.sync_detailed(client=me_client)
    check(r.status_code == HTTPStatus.OK and r.parsed.email == email, f"get_me: {r.content!r}")
    account = session.account.id
    written = []
    for i in range(3):
        draft = PostDraft(place_id=place_id, rating=4 + i % 2, visit_date="2026-11-20", text=f"visit {i}")
        r = create_post.sync_detailed(client=me_client, body=draft, idempotency_key=f"k{i}")
        check(r.status_code == HTTPStatus.CREATED and isinstance(r.parsed, Post), f"create_post: {r.content!r}")
        written.append(r.parsed.id)
    r = create_post.sync_detailed(client=anon_as_authenticated(base), body=draft)
    check(r.status_code == HTTPStatus.UNAUTHORIZED, f"a post without a token: {r.status_code}")
    check(error_code(r) in ("unauthenticated", "invalid_token"), "refused as not signed in")
    feed, cursor = [], UNSET
    sizes = []
    while True:
        r = list_account_posts.sync_detailed(account, client=anon, limit=2, cursor=cursor)
        check(r.status_code == HTTPStatus.OK and isinstance(r.parsed, PagePost), f"feed: {r.content!r}")
        sizes.append(len(r.parsed.items))
        check(all(isinstance(p, Post) for p in r.parsed.items), "a feed's items are `Post`s")
        feed += [p.id for p in r.parsed.items]
        if not isinstance(r.parsed.next_, str):
            break
        cursor = r.parsed.next_
        check(len(sizes) < 10, "the feed ends")
    check(feed == list(reversed(written)), f"the author's feed, newest first: {feed} vs {written}")
    check(sizes[0] == 2, f"first page holds `limit` posts: {sizes}")
    r = list_account_posts.sync_detailed(account, client=anon, cursor="not a cursor!")
    check(r.status_code == HTTPStatus.BAD_REQUEST and error_code(r) == "invalid", "a bad cursor")

    # A review draft: no model configured here, so the built-in template writes it.
    ask = DraftRequest(
        place_id=place_id, language=Language.EN, rating=5, keywords=["spicy"],
        menu=[MenuItem(name="bibim guksu")],
    )
    r = create_draft.sync_detailed(client=me_client, body=ask)
    check(r.status_code == HTTPStatus.OK and isinstance(r.parsed, Draft), f"create_draft: {r.content!r}")
    check(r.parsed.source == DraftSource.TEMPLATE, f"a template draft: {r.parsed.source}")
    check(r.parsed.text_origin == TextOrigin.TEMPLATE_DRAFT, f"text_origin: {r.parsed.text_origin}")
    check("bibim guksu" in r.parsed.text and "#spicy" in r.parsed.text, f"draft text: {r.parsed.text!r}")
    ask.photos = ["not-mine"]
    r = create_draft.sync_detailed(client=me_client, body=ask)
    check(r.status_code == HTTPStatus.UNPROCESSABLE_ENTITY and error_code(r) == "unknown_photo",
          f"a photo that is not the author's: {r.status_code} {r.content!r}")

    print(f"generated client: {checks} checks passed against {base}")


def anon_as_authenticated(base):
    """An AuthenticatedClient with an empty token, for an operation the generator types as
    signed-in only: the server must refuse it."""
    return AuthenticatedClient(base_url=base, token="", prefix="")


if __name__ == "__main__":
    main(sys.argv[1])
