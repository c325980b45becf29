// Test harness for the browser tests: a real `wagu` (WAGU_TEST_BIN), a local tile server with a
// generated PNG (so the map's tile path runs offline), and Debian's Chromium driven by
// playwright-core through executablePath. Nothing here skips: a missing binary or browser
// throws, and the test fails.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { chromium } from "playwright-core";

export const ARTIFACTS = process.env.WAGU_TEST_WEB_ARTIFACTS ?? join(import.meta.dirname, "..", "test-artifacts");

export function findChromium() {
  const candidates = [process.env.WAGU_TEST_CHROMIUM, "/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium"].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(", ")}): run deploy/install.sh (Debian package chromium-headless-shell)`);
  return found;
}

export function findWagu() {
  const bin = process.env.WAGU_TEST_BIN;
  if (!bin || !existsSync(bin)) throw new Error(`WAGU_TEST_BIN must name the wagu binary (got ${bin ?? "nothing"}): deploy/test.sh sets it`);
  return bin;
}

/** A 256×256 PNG: a light street-map-like grid, tinted by the tile's coordinates. */
export function tilePng(z, x, y) {
  const w = 256;
  const raw = Buffer.alloc((w * 3 + 1) * w);
  for (let r = 0; r < w; r++) {
    raw[r * (w * 3 + 1)] = 0;
    for (let c = 0; c < w; c++) {
      const o = r * (w * 3 + 1) + 1 + c * 3;
      const road = r % 64 < 3 || c % 64 < 3;
      const block = ((Math.floor(r / 64) + Math.floor(c / 64) + x + y) % 3) * 4;
      const [R, G, B] = road ? [255, 255, 255] : [236 - block, 232 - block, 223 - block];
      raw[o] = R; raw[o + 1] = G; raw[o + 2] = B;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(w, 4); ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  void z;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

export async function startTiles() {
  const stats = { served: 0 };
  const server = createServer((req, res) => {
    const m = req.url?.match(/^\/(\d+)\/(\d+)\/(\d+)\.png$/);
    if (!m) { res.writeHead(404).end(); return; }
    stats.served++;
    res.writeHead(200, { "content-type": "image/png", "cache-control": "no-store" }).end(tilePng(+m[1], +m[2], +m[3]));
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const port = server.address().port;
  return { url: `http://127.0.0.1:${port}/{z}/{x}/{y}.png`, stats, close: () => new Promise((ok) => server.close(ok)) };
}

export async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
  const port = s.address().port;
  await new Promise((ok) => s.close(ok));
  return port;
}

/** A real wagu on `opts.port` (default: a free one), with `opts.configToml` as its --config. */
export async function startWagu(tileUrl, opts = {}) {
  const bin = findWagu();
  const port = opts.port ?? (await freePort());
  const dataDir = mkdtempSync(join(tmpdir(), "wagu-web-"));
  const env = { ...process.env, WAGU_WEB__TILE_URL: tileUrl, WAGU_LOG: "warn" };
  const args = ["--listen", `127.0.0.1:${port}`, "--data-dir", dataDir];
  if (opts.configToml !== undefined) {
    const file = join(dataDir, "wagu.toml");
    writeFileSync(file, opts.configToml);
    args.push("--config", file);
  }
  const child = spawn(bin, args, { env, stdio: ["ignore", "inherit", "inherit"] });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wagu exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error("wagu did not come up in 30 s");
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return {
    base,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => (child.exitCode !== null ? ok() : child.once("exit", ok)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: findChromium(), headless: true, args: ["--no-sandbox"] });
}

export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 800 } };

/** Every page fails the test on a dialog (alert from injected markup) or an uncaught error. */
export function guard(page, problems) {
  page.on("dialog", (d) => {
    // The one dialog the client shows: the host's "end this room?" confirmation.
    if (d.type() === "confirm" && /End this room|방을 끝낼까요/.test(d.message())) return void d.accept();
    problems.push(`${d.type()} dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error" && /Content Security Policy|Refused/.test(m.text())) problems.push(`console: ${m.text()}`); });
}

/**
 * `jpeg` with an EXIF APP1 segment inserted after SOI: an IFD0 with `orientation` (1–8) and,
 * when `gps` is given, a GPS IFD with the latitude (what a phone camera writes). Big-endian TIFF.
 */
export function withExif(jpeg, { orientation = 1, gps = null } = {}) {
  const u16 = (v) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
  const entry = (tag, type, count, value) => Buffer.concat([u16(tag), u16(type), u32(count), value]);
  const ifd0Count = gps ? 2 : 1;
  const ifd0Len = 2 + ifd0Count * 12 + 4;
  const gpsOffset = 8 + ifd0Len;
  const ifd0 = Buffer.concat([
    u16(ifd0Count),
    entry(0x0112, 3, 1, Buffer.concat([u16(orientation), u16(0)])),
    ...(gps ? [entry(0x8825, 4, 1, u32(gpsOffset))] : []),
    u32(0),
  ]);
  let gpsIfd = Buffer.alloc(0);
  if (gps) {
    const gpsLen = 2 + 2 * 12 + 4;
    const ratOffset = gpsOffset + gpsLen;
    const deg = Math.floor(gps.lat);
    const min = Math.floor((gps.lat - deg) * 60);
    const sec = Math.round(((gps.lat - deg) * 60 - min) * 60 * 100);
    gpsIfd = Buffer.concat([
      u16(2),
      entry(0x0001, 2, 2, Buffer.from([78, 0, 0, 0])), // "N"
      entry(0x0002, 5, 3, u32(ratOffset)),
      u32(0),
      u32(deg), u32(1), u32(min), u32(1), u32(sec), u32(100),
    ]);
  }
  const tiff = Buffer.concat([Buffer.from("MM\0*"), u32(8), ifd0, gpsIfd]);
  const body = Buffer.concat([Buffer.from("Exif\0\0"), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1]), u16(body.length + 2), body]);
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new Error("not a JPEG");
  return Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
}

/** The segments of a JPEG up to its first scan: [{ marker, data }]. */
export function jpegSegments(jpeg) {
  const out = [];
  let i = 2;
  while (i + 4 <= jpeg.length && jpeg[i] === 0xff) {
    const marker = jpeg[i + 1];
    const len = jpeg.readUInt16BE(i + 2);
    out.push({ marker, data: jpeg.subarray(i + 4, i + 2 + len) });
    if (marker === 0xda) break;
    i += 2 + len;
  }
  return out;
}

/** A JPEG's width and height from its start-of-frame segment. */
export function jpegSize(jpeg) {
  const sof = jpegSegments(jpeg).find((s) => s.marker >= 0xc0 && s.marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(s.marker));
  if (!sof) throw new Error("no SOF segment");
  return { height: sof.data.readUInt16BE(1), width: sof.data.readUInt16BE(3) };
}

/** A JPEG made by the page's own encoder (a canvas): `color` with a white block top-left. */
export async function canvasJpeg(page, w, h, color) {
  return Buffer.from(
    await page.evaluate(async ([w, h, color]) => {
      const c = document.createElement("canvas");
      c.width = w;
      c.height = h;
      const g = c.getContext("2d");
      g.fillStyle = color;
      g.fillRect(0, 0, w, h);
      g.fillStyle = "#fff";
      g.fillRect(0, 0, w / 4, h / 8);
      const b = await new Promise((r) => c.toBlob(r, "image/jpeg", 0.9));
      return [...new Uint8Array(await b.arrayBuffer())];
    }, [w, h, color]),
  );
}

/**
 * Two phone photos into the post form on `page` (one taken sideways, EXIF orientation 6: the
 * pixels are landscape, the photo is portrait; one with GPS), a menu, and a draft asked for.
 * Returns the draft text once it is in the text area.
 */
export async function composeFromPhonePhotos(page, menu) {
  const sideways = withExif(await canvasJpeg(page, 800, 600, "#c0392b"), { orientation: 6 });
  const located = withExif(await canvasJpeg(page, 640, 480, "#27ae60"), { gps: { lat: 37.5728 } });
  if (!located.includes(Buffer.from("MM\0*"))) throw new Error("the fixture lacks EXIF");
  await page.setInputFiles("#post-photo-input", [
    { name: "sideways.jpg", mimeType: "image/jpeg", buffer: sideways },
    { name: "located.jpg", mimeType: "image/jpeg", buffer: located },
  ]);
  await page.waitForFunction(() => document.querySelectorAll("#post-photos li img").length === 2);
  await page.fill("#post-menu", menu);
  await page.click("#draft-button");
  await page.waitForFunction(() => document.querySelector("#post-text").value.length > 0);
  return page.inputValue("#post-text");
}

/**
 * The post with text `text` in `placeId`'s feed, read over the API, and its stored display
 * photos checked: the sideways one upright (600×800), both without any EXIF.
 */
export async function checkPublishedWithPhotos(base, placeId, text) {
  const feed = await (await fetch(`${base}/api/places/${placeId}/posts?limit=30`)).json();
  const post = feed.items.find((x) => x.text === text);
  if (!post) throw new Error(`no post with that text in ${placeId}'s feed`);
  if (post.photos.length !== 2) throw new Error(`expected 2 photos, got ${post.photos.length}`);
  const stored = await Promise.all(
    post.photos.map(async (id) => {
      const r = await fetch(`${base}/api/photos/${encodeURIComponent(id)}/display`);
      if (r.status !== 200 || !/^image\/jpeg/.test(r.headers.get("content-type"))) throw new Error(`photo ${id}: ${r.status}`);
      return Buffer.from(await r.arrayBuffer());
    }),
  );
  const sizes = stored.map(jpegSize);
  if (sizes[0].width !== 600 || sizes[0].height !== 800) throw new Error(`the sideways photo is not upright: ${JSON.stringify(sizes[0])}`);
  if (sizes[1].width !== 640 || sizes[1].height !== 480) throw new Error(`photo 2: ${JSON.stringify(sizes[1])}`);
  for (const img of stored) {
    if (jpegSegments(img).some((s) => s.marker === 0xe1)) throw new Error("an EXIF (APP1) segment in a stored photo");
    if (img.includes(Buffer.from("Exif\0\0")) || img.includes(Buffer.from("MM\0*"))) throw new Error("EXIF/TIFF bytes in a stored photo");
  }
  return post;
}
