// Social log-in in a real browser, through the real pages of a real provider: panva's
// oidc-provider (deploy/oidc/provider.mjs --interactive: its own login form and consent page),
// once as an OpenID Connect issuer and once as an OAuth 2.0 server with a Naver-shaped profile
// API. A person clicks "Continue with …" on Wagu's log-in page, signs in and consents at the
// provider, and lands back in the web client signed in; a person who cancels at the provider
// is told so on Wagu's log-in page.
//
// Needs WAGU_TEST_OIDC_NODE_MODULES (deploy/install.sh installs oidc-provider, the test bed's
// env file names it) and WAGU_TEST_BIN: without them the test fails, it does not skip.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ARTIFACTS, DESKTOP, PHONE, checkPublishedWithPhotos, composeFromPhonePhotos, freePort, guard, launchBrowser, startTiles, startWagu } from "./harness.mjs";

const CLIENT_ID = "wagu-web-client";
const CLIENT_SECRET = "wagu-web-client-secret-0123456789";
const n = Math.floor(Math.random() * 1e9);
const OIDC_SUBJECT = `web-oidc-${n}`;
const NAVER_SUBJECT = `web-naver-${n}`;

/**
 * provider.mjs on a free port with its real login and consent pages; stopped by `stop()`.
 * A provider that does not say "ready" in time is killed and started again (up to three
 * times): once in a CI run on this machine Node 20 hung at start-up, between loading
 * oidc-provider and listening, and the orphaned child then kept this test process alive.
 */
async function startProvider(redirectUri, subject, extra) {
  const modules = process.env.WAGU_TEST_OIDC_NODE_MODULES;
  if (!modules || !existsSync(join(modules, "oidc-provider", "package.json"))) {
    throw new Error(`WAGU_TEST_OIDC_NODE_MODULES must name the node_modules holding oidc-provider (got ${modules ?? "nothing"}): run deploy/install.sh and source the test bed's env`);
  }
  let last;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await startProviderOnce(modules, redirectUri, subject, extra);
    } catch (e) {
      last = e;
      console.error(`provider.mjs, attempt ${attempt} of 3: ${e.message}`);
    }
  }
  throw last;
}

async function startProviderOnce(modules, redirectUri, subject, extra) {
  // ESM imports resolve from the script's directory: run a copy next to a link to the modules.
  const dir = mkdtempSync(join(tmpdir(), "wagu-op-"));
  copyFileSync(join(import.meta.dirname, "..", "..", "deploy", "oidc", "provider.mjs"), join(dir, "provider.mjs"));
  symlinkSync(modules, join(dir, "node_modules"));
  const port = await freePort();
  const args = ["provider.mjs", "--port", String(port), "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--redirect-uri", redirectUri, "--subject", subject, "--interactive", ...extra];
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  try {
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`provider.mjs: no ready in 20 s: ${log}`)), 20_000);
      child.stdout.on("data", (d) => {
        if (String(d).includes("ready")) {
          clearTimeout(timer);
          ok();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        fail(new Error(`provider.mjs exited (${code}): ${log}`));
      });
    });
  } catch (e) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    issuer: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => (child.exitCode !== null ? ok() : child.once("exit", ok)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let tiles, wagu, browser, oidc, naver;
const problems = [];

before(async () => {
  tiles = await startTiles();
  const port = await freePort();
  const callback = (name) => `http://127.0.0.1:${port}/api/auth/oidc/${name}/callback`;
  oidc = await startProvider(callback("testop"), OIDC_SUBJECT, ["--name", "Jimin Park"]);
  naver = await startProvider(callback("naver"), NAVER_SUBJECT, ["--nickname", "네이버친구", "--token-auth", "post", "--pkce", "optional"]);
  const configToml = `
[rate]
logins_per_minute = 1000

[[auth.oidc]]
name = "testop"
label = "Test OP"
issuer = "${oidc.issuer}"
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"

[[auth.oidc]]
name = "naver"
preset = "naver"
authorization_endpoint = "${naver.issuer}/auth"
token_endpoint = "${naver.issuer}/token"
profile_endpoint = "${naver.issuer}/v1/nid/me"
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"
`;
  wagu = await startWagu(tiles.url, { port, configToml });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await wagu?.stop();
  await oidc?.stop();
  await naver?.stop();
  await tiles?.close();
});

async function newPage(opts) {
  const ctx = await browser.newContext({ ...opts, baseURL: wagu.base, locale: "en-US" });
  const page = await ctx.newPage();
  // Only Wagu's pages are held to Wagu's rules (the provider's pages are its own business).
  guard(page, problems);
  const urls = [];
  page.on("framenavigated", (f) => {
    if (f === page.mainFrame()) urls.push(f.url());
  });
  return { ctx, page, urls };
}

/** At the provider: its login form (the subject as login, any password), then its consent. */
async function signInAtProvider(page, subject) {
  await page.waitForSelector("input[name=login]");
  await page.fill("input[name=login]", subject);
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");
  // Consent, when the provider asks for it; then back to Wagu.
  for (let i = 0; i < 3 && !page.url().startsWith(wagu.base); i++) {
    await page.waitForLoadState();
    if (page.url().startsWith(wagu.base)) break;
    const cont = page.locator("button[type=submit]", { hasText: "Continue" });
    if (await cont.count()) await cont.click();
    await page.waitForURL((u) => u.href.startsWith(wagu.base) || u.pathname.startsWith("/interaction/"), { timeout: 10_000 });
  }
}

function session(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem("wagu.session") ?? "null"));
}

function noTokenInAnyUrl(urls) {
  for (const u of urls) {
    assert.ok(!/access_token|refresh_token|wr_[A-Za-z0-9_-]{8}/.test(u), `a token in a URL: ${u}`);
  }
}

test("the log-in page offers every configured provider", async () => {
  const r = await (await fetch(`${wagu.base}/api/auth/providers`)).json();
  assert.deepEqual(r.providers.map((p) => [p.name, p.label, p.kind]), [["naver", "Naver", "oauth2"], ["testop", "Test OP", "oidc"]]);
  const { ctx, page } = await newPage(PHONE);
  await page.goto("/login");
  await page.waitForSelector('a[data-provider="testop"]');
  assert.equal(await page.locator('a[data-provider="testop"]').textContent(), "Continue with Test OP");
  assert.equal(await page.locator('a[data-provider="naver"]').textContent(), "Continue with Naver");
  await page.screenshot({ path: join(ARTIFACTS, "login-social-phone.png") });
  // A hand-off code that is not (or no longer) valid: the page says so, nobody is signed in.
  await page.goto("/live"); // (from /login itself, only the fragment would change: no load)
  await page.goto("/login#social_code=not-a-real-code");
  await page.waitForSelector('#social-error[data-code="invalid_code"]');
  assert.match(await page.locator("#social-error").textContent(), /expired or was already used/);
  assert.equal(await session(page), null);
  await ctx.close();
});

test("a person signs in with an OpenID Connect provider through its login and consent pages", async () => {
  const { ctx, page, urls } = await newPage(DESKTOP);
  await page.goto("/login?next=/live");
  await page.click('a[data-provider="testop"]');
  await page.waitForURL((u) => u.href.startsWith(oidc.issuer));
  await signInAtProvider(page, OIDC_SUBJECT);
  await page.waitForURL(`${wagu.base}/live`);
  const s = await session(page);
  assert.equal(s?.account?.display_name, "Jimin Park", JSON.stringify(s));
  assert.ok(s.access_token && s.refresh_token);
  // The session works against the API.
  const me = await fetch(`${wagu.base}/api/me`, { headers: { authorization: `Bearer ${s.access_token}` } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).id, s.account.id);
  assert.ok(urls.some((u) => u.includes("/login#social_code=")), `came back through the hand-off: ${urls.join(" ")}`);
  noTokenInAnyUrl(urls);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("a person who cancels at the provider is told so, and can then sign in with Naver (OAuth 2.0)", async () => {
  const { ctx, page, urls } = await newPage(PHONE);
  await page.goto("/login");
  await page.click('a[data-provider="naver"]');
  await page.waitForURL((u) => u.href.startsWith(naver.issuer));
  await page.waitForSelector("input[name=login]");
  await page.click("text=[ Cancel ]");
  await page.waitForSelector('#social-error[data-code="oidc_denied"]');
  assert.match(await page.locator("#social-error").textContent(), /cancelled at the provider/);
  assert.equal(new URL(page.url()).hash, "", "the fragment is cleared from the address bar");
  assert.equal(await session(page), null, "not signed in");
  await page.screenshot({ path: join(ARTIFACTS, "login-social-cancelled-phone.png") });

  await page.click('a[data-provider="naver"]');
  await page.waitForURL((u) => u.href.startsWith(naver.issuer));
  await signInAtProvider(page, NAVER_SUBJECT);
  await page.waitForURL(`${wagu.base}/posts`);
  const s = await session(page);
  assert.equal(s?.account?.display_name, "네이버친구", JSON.stringify(s));
  noTokenInAnyUrl(urls);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("a person signs in with a provider, drafts a review from two phone photos, edits it and publishes", async () => {
  const { ctx, page, urls } = await newPage(PHONE);
  await page.goto("/login?next=/places/sample:0003");
  await page.click('a[data-provider="testop"]');
  await page.waitForURL((u) => u.href.startsWith(oidc.issuer));
  await signInAtProvider(page, OIDC_SUBJECT);
  await page.waitForURL(`${wagu.base}/places/sample:0003`);
  await page.waitForSelector("#write-post");
  const draft = await composeFromPhonePhotos(page, "냉면, 만두");
  assert.equal(await page.getAttribute("#draft-status", "data-source"), "template");
  // The author makes it their own.
  const text = `${draft}\n육수가 정말 시원했어요.`;
  await page.fill("#post-text", text);
  await page.click("#publish");
  await page.waitForFunction((t) => [...document.querySelectorAll("#place-posts .post")].some((e) => e.querySelector(".post-text")?.textContent === t && e.querySelectorAll(".photo-strip img").length === 2), text);
  const post = await checkPublishedWithPhotos(wagu.base, "sample:0003", text);
  assert.equal(post.text_origin, "author", "an edited template draft is the author's text");
  assert.equal(post.author_name, "Jimin Park");
  noTokenInAnyUrl(urls);
  assert.deepEqual(problems, []);
  await ctx.close();
});
