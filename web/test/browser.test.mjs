// The web client in a real browser against a real wagu: two friends in one map room (each
// sees the other's viewport move, both vote, the host closes the vote, both see the decision),
// chat markup shown as text, a network drop resumed with nothing missed, a live stream viewer
// seeing chat and the count; screenshots of each page at phone and desktop sizes.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { ARTIFACTS, DESKTOP, PHONE, checkPublishedWithPhotos, composeFromPhonePhotos, guard, launchBrowser, startTiles, startWagu } from "./harness.mjs";

let tiles, wagu, browser;
const problems = [];

before(async () => {
  tiles = await startTiles();
  wagu = await startWagu(tiles.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await wagu?.stop();
  await tiles?.close();
});

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

async function newPage(opts) {
  const ctx = await browser.newContext({ ...opts, baseURL: wagu.base, locale: "en-US" });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: wagu.base });
  const page = await ctx.newPage();
  guard(page, problems);
  return { ctx, page };
}

test("the server serves the client with its security headers, compression and caching", async () => {
  const r = await fetch(`${wagu.base}/join/sometoken`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /text\/html/);
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.ok(csp.includes(new URL(tiles.url.replace(/\{.\}/g, "0")).origin), `tile origin in img-src: ${csp}`);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  assert.equal(r.headers.get("referrer-policy"), "no-referrer");
  assert.equal(r.headers.get("x-frame-options"), "DENY");
  assert.equal(r.headers.get("cache-control"), "no-cache");
  const html = await r.text();
  const js = html.match(/src="(\/assets\/app-[^"]+\.js)"/)?.[1];
  assert.ok(js, `index.html names its bundle: ${html}`);
  const a = await fetch(`${wagu.base}${js}`, { headers: { "accept-encoding": "br" } });
  assert.equal(a.status, 200);
  assert.equal(a.headers.get("content-encoding"), "br");
  assert.match(a.headers.get("cache-control"), /immutable/);
  const etag = r.headers.get("etag");
  const again = await fetch(`${wagu.base}/`, { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${wagu.base}/assets/nope.js`)).status, 404);
  const cfg = await (await fetch(`${wagu.base}/config.json`)).json();
  assert.equal(cfg.tile_url, tiles.url);
});

test("two friends decide together in one map room, live, through a network drop", async () => {
  const A = await newPage(DESKTOP);
  const B = await newPage(PHONE);

  // Mina opens a room from the home page.
  await A.page.goto("/");
  await shot(A.page, "home-desktop");
  await A.page.fill("#room-title-input", "Friday dinner");
  await A.page.click("#create-room");
  await A.page.waitForURL(/\/join\//);
  await A.page.fill("#name", "Mina");
  await A.page.click("button[type=submit]");
  await A.page.waitForSelector('#status[data-status="online"]');
  const link = A.page.url();

  // Jun opens the share link on his phone.
  await B.page.goto(link);
  await B.page.waitForSelector("#name");
  await shot(B.page, "join-phone");
  await B.page.fill("#name", "Jun");
  await B.page.click("button[type=submit]");
  await B.page.waitForSelector('#status[data-status="online"]');

  // The tile path ran against the local tile server.
  await A.page.waitForSelector("img.leaflet-tile-loaded");
  assert.ok(tiles.stats.served > 0, "tiles were requested from the configured tile server");

  // Each sees the other's viewport, exactly, and sees it move.
  const boundsOf = (p) => p.locator("#map").getAttribute("data-bounds");
  const labelBounds = (p, id) => p.locator(`.friend-label[data-participant="${id}"]`).getAttribute("data-bounds");
  const sees = async (viewer, id, owner) => {
    const want = await boundsOf(owner);
    await viewer.waitForFunction(([id, want]) => document.querySelector(`.friend-label[data-participant="${id}"]`)?.getAttribute("data-bounds") === want, [id, want], { timeout: 10_000 });
    return want;
  };
  const before1 = await sees(B.page, 1, A.page);
  await sees(A.page, 2, B.page);
  await A.page.focus("#map");
  for (let i = 0; i < 3; i++) await A.page.keyboard.press("ArrowRight");
  await A.page.waitForFunction((b) => document.querySelector("#map")?.dataset.bounds !== b, before1);
  await A.page.waitForTimeout(400);
  const moved = await sees(B.page, 1, A.page);
  assert.notEqual(moved, before1, "Mina's rectangle moved on Jun's map");
  const beforeB = await boundsOf(B.page);
  await B.page.focus("#map");
  await B.page.keyboard.press("ArrowDown");
  await B.page.keyboard.press("ArrowDown");
  await B.page.waitForFunction((b) => document.querySelector("#map")?.dataset.bounds !== b, beforeB);
  await B.page.waitForTimeout(400);
  assert.notEqual(await sees(A.page, 2, B.page), beforeB, "Jun's rectangle moved on Mina's map");
  assert.ok(await labelBounds(A.page, 2));

  // Places in view come from /api/places?bbox=; Mina adds two as candidates.
  await A.page.click("#tab-places");
  await A.page.waitForSelector("#places li.place .add-candidate");
  const names = await A.page.locator("#places li.place .cand-name").allTextContents();
  assert.ok(names.length >= 2, `places in view: ${names.length}`);
  await A.page.locator("#places .add-candidate").first().click();
  await A.page.click("#tab-places");
  await A.page.locator("#places .add-candidate").first().click();
  for (const p of [A.page, B.page]) await p.waitForFunction(() => document.querySelectorAll("#candidates li.candidate").length === 2);
  const first = (await A.page.locator("#candidates li.candidate .cand-name").first().textContent()).trim();

  // Both vote for the first; the tally is live on both screens.
  await A.page.locator("#candidates li.candidate").first().locator("button.vote").click();
  await B.page.locator("#candidates li.candidate").first().locator("button.vote").click();
  for (const p of [A.page, B.page]) await p.waitForSelector('#candidates li.candidate:first-child .tally[data-votes="2"]');
  await B.page.locator("#candidates li.candidate").first().locator('button.vote[aria-pressed="true"]').waitFor();

  // Only the host has the close button; Mina closes the vote and both see the decision.
  assert.equal(await B.page.locator("#close-vote").count(), 0);
  await A.page.click("#close-vote");
  for (const p of [A.page, B.page]) {
    await p.waitForSelector("#decision-banner #winner");
    assert.equal((await p.locator("#winner").textContent()).trim(), first);
  }
  await shot(A.page, "room-decision-desktop");
  await shot(B.page, "room-decision-phone");

  // Markup in chat is shown as text.
  const evil = "<img src=x onerror=alert(1)>";
  await B.page.click("#tab-chat");
  await B.page.fill("#chat-input", evil);
  await B.page.click("#chat-form button[type=submit]");
  await A.page.click("#tab-chat");
  for (const p of [A.page, B.page]) {
    await p.waitForFunction((t) => [...document.querySelectorAll("#chat .msg .text")].some((e) => e.textContent === t), evil);
    assert.equal(await p.locator("#chat img").count(), 0, "no <img> element was created from chat");
  }
  await A.page.fill("#chat-input", "국밥 어때요? 🍲");
  await A.page.click("#chat-form button[type=submit]");
  await B.page.waitForFunction(() => document.querySelectorAll("#chat .msg").length === 2);
  await shot(B.page, "room-chat-phone");

  // Jun's network drops; meanwhile Mina writes twice and reopens the vote.
  await B.ctx.setOffline(true);
  await B.page.waitForSelector('#status:not([data-status="online"])');
  await shot(B.page, "room-offline-phone");
  for (const text of ["while you were away 1", "while you were away 2"]) {
    await A.page.fill("#chat-input", text);
    await A.page.click("#chat-form button[type=submit]");
    await A.page.waitForFunction((t) => [...document.querySelectorAll("#chat .msg .text")].some((e) => e.textContent === t), text);
  }
  await A.page.click("#reopen-vote");
  await A.page.waitForSelector("#close-vote", { state: "attached" });
  // Back online: the client resumes by itself and shows it, with nothing missed, in order.
  await B.ctx.setOffline(false);
  await B.page.waitForSelector('#status[data-status="online"]', { timeout: 20_000 });
  await B.page.waitForSelector("#toast.show");
  const caughtUp = (await B.page.locator("#toast").textContent()).match(/Reconnected — caught up on (\d+) updates/);
  assert.ok(caughtUp && Number(caughtUp[1]) >= 3, `the resume replayed the missed events: ${caughtUp}`);
  const chatA = await A.page.locator("#chat .msg .text").allTextContents();
  await B.page.waitForFunction((n) => document.querySelectorAll("#chat .msg").length === n, chatA.length);
  assert.deepEqual(await B.page.locator("#chat .msg .text").allTextContents(), chatA);
  assert.equal(await B.page.locator("#decision-banner").count(), 0, "the reopened vote reached Jun");
  await B.page.click("#tab-candidates");
  await B.page.waitForSelector("#candidates li.candidate:first-child button.vote:not([disabled])");
  await shot(B.page, "room-resumed-phone");
  await A.page.click("#tab-people");
  await shot(A.page, "room-people-desktop");

  // "Copy link" puts the share link on the clipboard.
  await A.page.click("#copy-link");
  await A.page.waitForSelector("#toast.show");
  assert.equal(await A.page.evaluate(() => navigator.clipboard.readText()), link);

  // Host controls: rename, then end the room; Jun sees both and stops reconnecting.
  await A.page.fill("#rename-input", "Saturday lunch");
  await A.page.click("#host-tools button[type=submit]");
  await B.page.waitForFunction(() => document.querySelector("#room-title")?.textContent === "Saturday lunch");
  // A third friend joins; the host removes them (4001: no reconnect), then ends the room.
  const C = await newPage(PHONE);
  await C.page.goto(link);
  await C.page.fill("#name", "Troll");
  await C.page.click("button[type=submit]");
  await C.page.waitForSelector('#status[data-status="online"]');
  await A.page.waitForSelector('#people li.person[data-participant="3"]');
  await A.page.locator('#people li.person[data-participant="3"] button').click();
  await C.page.waitForSelector('#status[data-status="ended"]');
  assert.match(await C.page.locator("#ended").textContent(), /removed you/);
  await B.page.waitForFunction(() => !document.querySelector('#people li.person[data-participant="3"]'));
  await C.ctx.close();
  await A.page.click("#close-room");
  for (const p of [A.page, B.page]) await p.waitForSelector('#status[data-status="ended"]');
  assert.match(await B.page.locator("#ended").textContent(), /host ended this room/);
  await shot(B.page, "room-ended-phone");

  assert.deepEqual(problems, []);
  await A.ctx.close();
  await B.ctx.close();
});

test("a stream viewer sees the chat and the viewer count; the streamer moderates", async () => {
  const r = await fetch(`${wagu.base}/api/streams`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title: "Late-night gukbap", place_id: "sample:0001", location: { lat: 37.5728, lng: 126.9948 }, menu: ["dwaeji gukbap"] }) });
  assert.equal(r.status, 201);
  const s = await r.json();
  const S = await newPage(DESKTOP);
  await S.page.goto("/live");
  await S.page.evaluate(([id, key]) => { localStorage.setItem(`wagu.streamer.${id}`, key); localStorage.setItem("wagu.name", "Chef Kim"); }, [s.stream_id, s.streamer_key]);
  await S.page.goto(`/studio/${s.stream_id}`);
  await S.page.waitForSelector('#status[data-status="online"]');
  await S.page.waitForSelector("#end-stream");

  const V = await newPage(PHONE);
  await V.page.goto("/live");
  await V.page.waitForSelector(`#streams a[href="/live/${s.stream_id}"]`);
  await shot(V.page, "live-list-phone");
  await V.page.click(`#streams a[href="/live/${s.stream_id}"]`);
  await V.page.fill("#name", "Jun");
  await V.page.click("button[type=submit]");
  await V.page.waitForSelector('#status[data-status="online"]');
  for (const p of [S.page, V.page]) await p.waitForSelector('#viewer-count[data-count="1"]');
  await V.page.fill("#chat-input", "what are you eating?");
  await V.page.click("#chat-form button[type=submit]");
  await S.page.waitForFunction(() => [...document.querySelectorAll("#chat .msg .text")].some((e) => e.textContent === "what are you eating?"));
  assert.equal((await S.page.locator("#chat .msg .who").first().textContent()).trim(), "Jun");
  await S.page.locator("#chat .msg").first().getByRole("button", { name: "Pin" }).click();
  await V.page.waitForSelector("#pinned");
  assert.match(await V.page.locator("#pinned").textContent(), /what are you eating\?/);
  await shot(S.page, "studio-desktop");
  await shot(V.page, "stream-viewer-phone");
  // Delete a message, then ban its author: the viewer sees both.
  await V.page.fill("#chat-input", "buy followers at spam.example");
  await V.page.click("#chat-form button[type=submit]");
  await S.page.waitForFunction(() => document.querySelectorAll("#chat .msg").length === 2);
  await S.page.locator("#chat .msg").nth(1).getByRole("button", { name: "Delete" }).click();
  await V.page.waitForFunction(() => document.querySelectorAll("#chat .msg").length === 1);
  await S.page.locator("#chat .msg").first().getByRole("button", { name: "Ban" }).click();
  await V.page.waitForSelector("#ended");
  assert.match(await V.page.locator("#ended").textContent(), /banned/);
  await V.page.waitForSelector('#status[data-status="ended"]');
  for (const p of [S.page]) await p.waitForSelector('#viewer-count[data-count="0"]');
  assert.deepEqual(problems, []);
  await S.ctx.close();
  await V.ctx.close();
});

test("Korean UI", async () => {
  const K = await newPage(PHONE);
  await K.page.goto("/?lang=ko");
  await K.page.waitForSelector("#create-room");
  assert.equal(await K.page.locator("html").getAttribute("lang"), "ko");
  assert.match(await K.page.locator("#create-room").textContent(), /만들고/);
  await shot(K.page, "home-ko-phone");
  const room = await (await fetch(`${wagu.base}/api/rooms`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title: "금요일 저녁", center: { lat: 37.5665, lng: 126.978 } }) })).json();
  await K.page.goto(`/join/${room.share_token}`);
  await K.page.fill("#name", "민지");
  await K.page.click("button[type=submit]");
  await K.page.waitForSelector('#status[data-status="online"]');
  assert.equal((await K.page.locator("#status").textContent()).trim(), "실시간");
  await K.page.click("#tab-places");
  await K.page.waitForSelector("#places li.place .add-candidate");
  await K.page.locator("#places .add-candidate").first().click();
  await K.page.waitForSelector("#candidates li.candidate");
  await shot(K.page, "room-ko-phone");
  assert.deepEqual(problems, []);
  await K.ctx.close();
});

test("a signed-up user writes a post and it appears in the place's feed", async () => {
  const P = await newPage(PHONE);
  await P.page.goto("/login?next=/places/sample:0001");
  await P.page.getByRole("button", { name: "Sign up" }).click();
  await P.page.fill("#email", `minji-${Date.now()}@example.com`);
  await P.page.fill("#password", "correct horse battery");
  await P.page.fill("#display-name", "민지");
  await P.page.click("#auth-submit");
  await P.page.waitForURL(/\/places\/sample:0001$/);
  await P.page.waitForSelector("#write-post");
  const text = "비빔국수 최고 <b>not bold</b>";
  await P.page.fill("#post-text", text);
  await P.page.click("#publish");
  await P.page.waitForFunction((t) => [...document.querySelectorAll("#place-posts .post-text")].some((e) => e.textContent === t), text);
  assert.equal(await P.page.locator("#place-posts b").count(), 0);
  await shot(P.page, "place-phone");
  await P.page.goto("/posts?near=37.5728,126.9948");
  await P.page.waitForFunction((t) => [...document.querySelectorAll("#feed .post-text")].some((e) => e.textContent === t), text);
  await shot(P.page, "posts-phone");
  assert.deepEqual(problems, []);
  await P.ctx.close();
});

test("a new user posts two phone photos with a drafted review: upright, without location, in the place's feed", async () => {
  const P = await newPage(PHONE);
  await P.page.goto("/login?next=/places/sample:0002");
  await P.page.getByRole("button", { name: "Sign up" }).click();
  await P.page.fill("#email", `jun-${Date.now()}@example.com`);
  await P.page.fill("#password", "correct horse battery");
  await P.page.fill("#display-name", "Jun");
  await P.page.click("#auth-submit");
  await P.page.waitForURL(/\/places\/sample:0002$/);
  await P.page.waitForSelector("#write-post");
  const draft = await composeFromPhonePhotos(P.page, "Bibim-guksu, dumplings");
  // No model is configured here: the built-in template drafted it, and says so.
  assert.equal(await P.page.getAttribute("#draft-status", "data-source"), "template");
  assert.match(draft, /Bibim-guksu/);
  await shot(P.page, "compose-phone");
  await P.page.click("#publish");
  await P.page.waitForFunction((t) => [...document.querySelectorAll("#place-posts .post")].some((e) => e.querySelector(".post-text")?.textContent === t && e.querySelectorAll(".photo-strip img").length === 2), draft);
  await shot(P.page, "place-with-photos-phone");
  // What was stored, read back over the API: upright, without EXIF; the draft kept as is.
  const post = await checkPublishedWithPhotos(wagu.base, "sample:0002", draft);
  assert.equal(post.text_origin, "template_draft", "a kept template draft is never recorded as ai_draft");
  assert.deepEqual(problems, []);
  await P.ctx.close();
});
