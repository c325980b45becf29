// Voice and video in a real browser through the real SFU: two Chromium contexts talk in a map
// room (one hears the other's fake microphone through WebAudio, then not once it mutes), and a
// viewer decodes the streamer's fake camera. Chromium's fake devices stand in for a microphone
// and a camera; headless Chromium has no playout device, so what a peer hears is measured with
// an AnalyserNode on the remote track.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ARTIFACTS, DESKTOP, PHONE, findChromium, guard, startTiles, startWagu } from "./harness.mjs";

// Screenshots of pages playing live media are for people to look at, not assertions: on a
// loaded machine Chromium may not settle a frame within the timeout, which says nothing about
// the media. Such a timeout is logged, never a failure.
async function artifact(page, name) {
  try {
    await page.screenshot({ path: join(ARTIFACTS, name), timeout: 30_000 });
  } catch (e) {
    console.log(`screenshot ${name} not taken: ${e.message.split("\n")[0]}`);
  }
}

let tiles, wagu, browser;
const problems = [];

before(async () => {
  tiles = await startTiles();
  wagu = await startWagu(tiles.url);
  browser = await chromium.launch({
    executablePath: findChromium(),
    headless: true,
    args: ["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"],
  });
});

after(async () => {
  await browser?.close();
  await wagu?.stop();
  await tiles?.close();
  assert.deepEqual(problems, [], "no dialog or page error on any page");
});

async function newPage(opts) {
  const ctx = await browser.newContext({ ...opts, baseURL: wagu.base, locale: "en-US" });
  await ctx.grantPermissions(["microphone", "camera"], { origin: wagu.base });
  const page = await ctx.newPage();
  guard(page, problems);
  return { ctx, page };
}

/** The loudest RMS, over `ms`, of everything the page's remote audio elements play. */
function loudness(page, ms) {
  return page.evaluate(async (ms) => {
    const els = [...document.querySelectorAll("#voice-audio audio")];
    const ctx = new AudioContext();
    await ctx.resume();
    const analysers = els.filter((e) => e.srcObject).map((e) => {
      const a = ctx.createAnalyser();
      a.fftSize = 2048;
      ctx.createMediaStreamSource(e.srcObject).connect(a);
      return a;
    });
    const buf = new Float32Array(2048);
    let max = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      for (const a of analysers) {
        a.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        max = Math.max(max, Math.sqrt(sum / buf.length));
      }
      await new Promise((r) => setTimeout(r, 40));
    }
    await ctx.close();
    return { max, tracks: analysers.length };
  }, ms);
}

async function joinRoom(page, share, name) {
  await page.goto(`/join/${share}`);
  await page.fill("#name", name);
  await page.click("button[type=submit]");
  await page.waitForSelector('#status[data-status="online"]');
}

test("two browsers talk in a map room through the SFU, and a muted one goes silent", async () => {
  const room = await (await fetch(`${wagu.base}/api/rooms`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title: "Voice test" }) })).json();
  const A = await newPage(DESKTOP);
  const B = await newPage(PHONE);
  await joinRoom(A.page, room.share_token, "Mina");
  await joinRoom(B.page, room.share_token, "Jun");
  for (const p of [A.page, B.page]) {
    await p.click("#voice-join");
    await p.waitForSelector('#voice-mute[data-state="on"]', { timeout: 15_000 });
  }
  // Both see two people in voice (media_state), in the people list.
  await A.page.click("#tab-people");
  await A.page.waitForFunction(() => document.querySelectorAll("#people .pill.voice").length === 2, null, { timeout: 10_000 });
  // Jun hears Mina's (fake) microphone: a beep at least once a second.
  const heard = await loudness(B.page, 2500);
  assert.ok(heard.tracks >= 1, `Jun has a remote audio track (${heard.tracks})`);
  assert.ok(heard.max > 0.01, `Jun hears Mina: max RMS ${heard.max}`);
  await artifact(A.page, "room-voice-desktop.png");
  await artifact(B.page, "room-voice-phone.png");

  // Mina mutes: the server stops forwarding her, so Jun hears nothing.
  await A.page.click("#voice-mute");
  await A.page.waitForSelector('#voice-mute[aria-pressed="true"]');
  await B.page.click("#tab-people");
  await B.page.waitForSelector('#people .pill.voice[data-voice="muted"]', { timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 800));
  const silent = await loudness(B.page, 2500);
  assert.ok(silent.max < 0.005, `Jun still hears muted Mina: max RMS ${silent.max}`);

  // Leaving voice takes Jun out of everyone's list.
  await B.page.click("#voice-leave");
  await A.page.waitForFunction(() => document.querySelectorAll("#people .pill.voice").length === 1, null, { timeout: 10_000 });
  await A.ctx.close();
  await B.ctx.close();
});

test("a browser watches a live stream and decodes the streamer's camera", async () => {
  const r = await fetch(`${wagu.base}/api/streams`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title: "Camera test", place_id: "sample:0001", location: { lat: 37.5728, lng: 126.9948 } }) });
  const s = await r.json();
  const S = await newPage(DESKTOP);
  await S.page.goto("/live");
  await S.page.evaluate(([id, key]) => { localStorage.setItem(`wagu.streamer.${id}`, key); localStorage.setItem("wagu.name", "Chef Kim"); }, [s.stream_id, s.streamer_key]);
  await S.page.goto(`/studio/${s.stream_id}`);
  await S.page.waitForSelector('#status[data-status="online"]');
  await S.page.click("#camera-start");
  await S.page.waitForSelector("#camera-stop", { timeout: 15_000 });

  const V = await newPage(PHONE);
  await V.page.goto(`/live/${s.stream_id}`);
  await V.page.fill("#name", "Jun");
  await V.page.click("button[type=submit]");
  await V.page.waitForSelector('#status[data-status="online"]');
  const started = Date.now();
  await V.page.waitForFunction(() => {
    const v = document.querySelector("#remote-video");
    return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 10;
  }, null, { timeout: 15_000 });
  const firstPictureMs = Date.now() - started;
  const frames = await V.page.evaluate(() => {
    const v = document.querySelector("#remote-video");
    return { w: v.videoWidth, h: v.videoHeight, frames: v.getVideoPlaybackQuality().totalVideoFrames };
  });
  assert.ok(frames.w > 0 && frames.h > 0, `decoded a picture: ${JSON.stringify(frames)}`);
  console.log(`viewer decoded ${frames.frames} frames of ${frames.w}x${frames.h}; 11 frames within ${firstPictureMs} ms of joining`);
  await artifact(S.page, "studio-camera-desktop.png");
  await artifact(V.page, "stream-video-phone.png");
  await S.ctx.close();
  await V.ctx.close();
});
