// Posts (docs/RECORDS.md): the near-me feed, a place's page (its posts and past live streams),
// log-in / sign-up, writing and editing a post.
import { api, ApiError, type Page, type Place } from "./api";
import { accessToken, current, logout, save, type SessionBody } from "./auth";
import { h, replace, toast } from "./dom";
import { t, lang } from "./i18n";
import { SEOUL } from "./map";
import { composer, photoRow } from "./compose";
import { onLanguageChange, topbar } from "./shell";
import { errorCode, finishSocial, finishingText, socialButtons, socialErrorText, takeSocialFragment } from "./social";

interface Post {
  id: string;
  author: string;
  author_name: string;
  place_name: string;
  place_id: string;
  location: { lat: number; lng: number };
  created_at: number;
  updated_at: number;
  visit_date: string;
  rating: number;
  text: string;
  menu: { name: string; price?: number }[];
  photos: string[];
}
interface EndedStream {
  stream_id: string;
  title: string;
  streamer_name: string | null;
  started_at: number;
  ended_at: number;
  peak_viewers: number;
}

const L = {
  en: { posts: "Posts", nearMe: "Recent posts near you", write: "Write a post", login: "Log in", signup: "Sign up", logout: "Log out", email: "Email", password: "Password", displayName: "Name", visit: "Visit date", rating: "Rating", text: "How was it?", publish: "Publish", save: "Save", edit: "Edit", noPosts: "No posts yet.", pastStreams: "Streamed here", noStreams: "No past live streams.", needLogin: "Log in to write a post.", here: "Write about this place", by: "by" },
  ko: { posts: "기록", nearMe: "내 주변의 최근 기록", write: "기록 쓰기", login: "로그인", signup: "가입하기", logout: "로그아웃", email: "이메일", password: "비밀번호", displayName: "이름", visit: "방문한 날", rating: "별점", text: "어땠나요?", publish: "올리기", save: "저장", edit: "고치기", noPosts: "아직 기록이 없어요.", pastStreams: "여기서 했던 방송", noStreams: "지난 방송이 없어요.", needLogin: "기록을 쓰려면 로그인하세요.", here: "이 식당 기록 쓰기", by: "" },
};
const p = () => L[lang];

function stars(n: number): string {
  return "★".repeat(n) + "☆".repeat(5 - n);
}

function postCard(post: Post, onChange: () => void): HTMLLIElement {
  const mine = current()?.account.id === post.author;
  const li = h(
    "li",
    { class: "post", "data-post": post.id },
    h("div", { class: "grow" }, h("a", { class: "cand-name", href: `/places/${encodeURIComponent(post.place_id)}` }, post.place_name), h("div", { class: "stars", "aria-label": `${post.rating}/5` }, stars(post.rating)), h("p", { class: "post-text" }, post.text), photoRow(post.photos ?? []), h("div", { class: "muted small" }, post.author_name, " · ", post.visit_date)),
    mine ? h("button", { type: "button", class: "ghost small", onclick: () => replace(li, editForm(post, onChange)) }, p().edit) : null,
  );
  return li;
}

function editForm(post: Post, done: () => void): HTMLElement {
  const text = h("textarea", { class: "input", rows: 4, maxlength: 5000 }, post.text);
  const rating = ratingInput(post.rating);
  return h(
    "form",
    {
      class: "grow",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const token = await accessToken();
        try {
          await api("PATCH", `/api/posts/${encodeURIComponent(post.id)}`, { text: text.value, rating: rating.value() }, token ?? undefined);
          done();
        } catch (err) {
          toast(`${t.error}: ${String(err)}`, "error");
        }
      },
    },
    rating.el,
    text,
    h("button", { type: "submit", class: "primary" }, p().save),
  );
}

function ratingInput(initial: number) {
  let v = initial;
  const el = h("div", { class: "rating", role: "radiogroup", "aria-label": p().rating });
  const draw = () =>
    replace(
      el,
      [1, 2, 3, 4, 5].map((n) => h("button", { type: "button", role: "radio", "aria-checked": String(n === v), class: n <= v ? "star on" : "star", "aria-label": `${n}`, onclick: () => { v = n; draw(); } }, "★")),
    );
  draw();
  return { el, value: () => v };
}

function writeForm(fixed: Place | null, done: () => void): HTMLElement {
  if (!current()) return h("p", { class: "card" }, p().needLogin, " ", h("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, p().login));
  let place: Place | null = fixed;
  const q = h("input", { id: "post-place", placeholder: t.searchPlace, autocomplete: "off", value: fixed?.name ?? "", disabled: !!fixed });
  const results = h("ol", { class: "list" });
  let timer = 0;
  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const v = q.value.trim();
      if (!v) return replace(results);
      const page = await api<Page<Place>>("GET", `/api/places?q=${encodeURIComponent(v)}&limit=5`).catch(() => ({ items: [] as Place[] }));
      replace(results, page.items.map((pl) => h("li", { class: "place" }, h("button", { type: "button", class: "ghost", onclick: () => { place = pl; q.value = pl.name; replace(results); } }, pl.name))));
    }, 200);
  });
  const date = h("input", { id: "post-date", type: "date", value: new Date().toISOString().slice(0, 10) });
  const rating = ratingInput(5);
  const text = h("textarea", { id: "post-text", class: "input", rows: 4, maxlength: 5000, placeholder: p().text });
  const compose = composer(text, () => ({ place_id: place?.id ?? null, rating: rating.value() }));
  const key = crypto.randomUUID();
  return h(
    "form",
    {
      class: "card",
      id: "write-post",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (!place) return toast(t.searchPlace, "error");
        const token = await accessToken();
        if (!token) return location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
        try {
          const r = await fetch("/api/posts", { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "idempotency-key": key }, body: JSON.stringify({ place_id: place.id, visit_date: date.value, rating: rating.value(), text: text.value.trim(), ...compose.fields() }) });
          if (!r.ok) throw new ApiError(r.status, String(r.status), await r.text());
          done();
        } catch (err) {
          toast(`${t.error}: ${String(err)}`, "error");
        }
      },
    },
    h("h2", null, p().write),
    h("label", { for: "post-place" }, t.place),
    q,
    results,
    h("label", { for: "post-date" }, p().visit),
    date,
    h("label", null, p().rating),
    rating.el,
    compose.el,
    h("label", { for: "post-text" }, p().text),
    text,
    h("button", { type: "submit", class: "primary big", id: "publish" }, p().publish),
  );
}

function account(): HTMLElement {
  const s = current();
  return s ? h("button", { type: "button", class: "ghost small", onclick: async () => { await logout(); location.reload(); } }, s.account.display_name, " · ", p().logout) : h("a", { class: "button small", href: `/login?next=${encodeURIComponent(location.pathname)}` }, p().login);
}

export function feedPage(app: HTMLElement): void {
  const render = () => {
    const list = h("ol", { id: "feed", class: "list" });
    // The feed comes first; writing is one tap away.
    const write = h("details", { class: "write" }, h("summary", { class: "button" }, "✏️ ", p().write), writeForm(null, render));
    replace(app, topbar(account()), h("main", { class: "live-list" }, h("h1", null, p().nearMe), write, list));
    const load = (lat: number, lng: number) =>
      api<Page<Post>>("GET", `/api/posts?near=${lat.toFixed(5)},${lng.toFixed(5)}&radius_km=5&limit=30`)
        .then((page) => replace(list, page.items.length ? page.items.map((x) => postCard(x, render)) : h("li", { class: "empty" }, p().noPosts)))
        .catch((e) => replace(list, h("li", { class: "empty" }, `${t.error}: ${String(e)}`)));
    const near = new URLSearchParams(location.search).get("near")?.split(",").map(Number);
    if (near && near.length === 2 && near.every(Number.isFinite)) void load(near[0]!, near[1]!);
    else if ("geolocation" in navigator)
      navigator.geolocation.getCurrentPosition(
        (pos) => void load(pos.coords.latitude, pos.coords.longitude),
        () => void load(SEOUL[0], SEOUL[1]),
        { timeout: 4000, maximumAge: 600_000 },
      );
    else void load(SEOUL[0], SEOUL[1]);
  };
  onLanguageChange(render);
  render();
}

export async function placePage(app: HTMLElement, id: string): Promise<void> {
  const render = async () => {
    let place: Place;
    try {
      place = await api<Place>("GET", `/api/places/${encodeURIComponent(id)}`);
    } catch (e) {
      replace(app, topbar(), h("main", { class: "center-card" }, h("div", { class: "card" }, `${t.error}: ${String(e)}`)));
      return;
    }
    const posts = h("ol", { id: "place-posts", class: "list" });
    const streams = h("ol", { id: "place-streams", class: "list" });
    replace(
      app,
      topbar(account()),
      h(
        "main",
        { class: "live-list" },
        h("div", { class: "card" }, h("h1", { id: "place-name" }, place.name), h("p", { class: "muted" }, [place.category, place.address, place.phone, place.hours].filter(Boolean).join(" · "))),
        h("h2", null, p().posts),
        posts,
        writeForm(place, () => void render()),
        h("h2", null, p().pastStreams),
        streams,
      ),
    );
    api<Page<Post>>("GET", `/api/places/${encodeURIComponent(id)}/posts?limit=30`)
      .then((pg) => replace(posts, pg.items.length ? pg.items.map((x) => postCard(x, () => void render())) : h("li", { class: "empty" }, p().noPosts)))
      .catch(() => replace(posts, h("li", { class: "empty" }, t.error)));
    api<EndedStream[]>("GET", `/api/places/${encodeURIComponent(id)}/streams`)
      .then((l) => replace(streams, l.length ? l.map((s) => h("li", null, h("span", { class: "grow" }, h("span", { class: "cand-name" }, s.title), h("div", { class: "muted small" }, s.streamer_name ?? "", " · ", new Date(s.started_at).toLocaleString(), " · 👀 ", String(s.peak_viewers))))) : h("li", { class: "empty" }, p().noStreams)))
      .catch(() => replace(streams, h("li", { class: "empty" }, t.error)));
  };
  onLanguageChange(() => void render());
  await render();
}

export function loginPage(app: HTMLElement): void {
  let mode: "login" | "signup" = "login";
  const next = new URLSearchParams(location.search).get("next");
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/posts";
  // Back from a social provider: a one-time code to trade, or an error to show.
  const social = takeSocialFragment();
  let socialError = social.error ?? null;
  if (social.code) {
    replace(app, topbar(), h("main", { class: "center-card" }, h("div", { class: "card", id: "social-finishing", role: "status" }, finishingText())));
    finishSocial(social.code).then(
      (to) => location.assign(to),
      (err) => {
        socialError = errorCode(err);
        render();
      },
    );
  }
  const render = () => {
    const email = h("input", { id: "email", type: "email", required: true, autocomplete: "email" });
    const password = h("input", { id: "password", type: "password", required: true, minlength: 8, autocomplete: mode === "login" ? "current-password" : "new-password" });
    const name = h("input", { id: "display-name", required: true, maxlength: 40, autocomplete: "nickname", value: localStorage.getItem("wagu.name") ?? "" });
    replace(
      app,
      topbar(),
      h(
        "main",
        { class: "center-card" },
        h(
          "form",
          {
            class: "card",
            onsubmit: async (e: Event) => {
              e.preventDefault();
              try {
                const body = mode === "login" ? { email: email.value, password: password.value } : { email: email.value, password: password.value, display_name: name.value.trim() };
                save(await api<SessionBody>("POST", `/api/auth/${mode}`, body));
                location.assign(target);
              } catch (err) {
                toast(`${t.error}: ${err instanceof ApiError ? err.code : String(err)}`, "error");
              }
            },
          },
          socialError ? h("p", { class: "social-error", id: "social-error", role: "alert", "data-code": socialError }, socialErrorText(socialError)) : null,
          socialButtons(target),
          h("div", { class: "tabs" }, (["login", "signup"] as const).map((m) => h("button", { type: "button", class: mode === m ? "tab on" : "tab", onclick: () => { mode = m; render(); } }, m === "login" ? p().login : p().signup))),
          h("label", { for: "email" }, p().email),
          email,
          h("label", { for: "password" }, p().password),
          password,
          mode === "signup" ? [h("label", { for: "display-name" }, p().displayName), name] : null,
          h("button", { type: "submit", class: "primary big", id: "auth-submit" }, mode === "login" ? p().login : p().signup),
        ),
      ),
    );
  };
  onLanguageChange(render);
  if (!social.code) render();
}
