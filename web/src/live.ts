// Live streams (docs/PROTOCOL.md section 12): discovery, the viewer page (count and chat) and
// the streamer's studio (moderation: pin, delete, mute, ban; end).
import { api, type CreatedStream, type Page, type Place, type StreamSummary } from "./api";
import { $, h, icon, replace, timeOf, toast } from "./dom";
import type { ChatMessage, ServerMessage, StreamSnapshot } from "./gen/protocol";
import { t } from "./i18n";
import { MediaLink } from "./media";
import { CommandError, Session, type Status } from "./session";
import { onLanguageChange, topbar } from "./shell";

function clientKey(): string {
  let k = localStorage.getItem("wagu.client_key");
  if (!k) {
    const a = new Uint8Array(12);
    crypto.getRandomValues(a);
    k = "web-" + Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("wagu.client_key", k);
  }
  return k;
}

export function liveListPage(app: HTMLElement): void {
  let sort: "newest" | "viewers" | "near" = "newest";
  let near: GeolocationCoordinates | null = null;
  const render = () => {
    const list = h("ol", { id: "streams", class: "list cards" });
    const tabs = h(
      "div",
      { class: "tabs", role: "tablist" },
      (["newest", "viewers", "near"] as const).map((k) =>
        h("button", { type: "button", role: "tab", class: sort === k ? "tab on" : "tab", "aria-selected": String(sort === k), onclick: () => choose(k) }, { newest: t.newest, viewers: t.mostWatched, near: t.nearMe }[k]),
      ),
    );
    replace(app, topbar(), h("main", { class: "live-list" }, h("h1", null, h("span", { class: "live-dot", "aria-hidden": "true" }), t.live), h("p", { class: "muted" }, t.liveLead), tabs, list, goLiveForm()));
    void load(list);
  };
  const choose = (k: typeof sort) => {
    sort = k;
    if (k === "near" && !near) {
      navigator.geolocation.getCurrentPosition(
        (p) => {
          near = p.coords;
          render();
        },
        () => toast(t.error, "error"),
      );
      return;
    }
    render();
  };
  const load = async (list: HTMLElement) => {
    const q = sort === "near" && near ? `near=${near.latitude.toFixed(5)},${near.longitude.toFixed(5)}&radius_km=10` : `sort=${sort}`;
    try {
      const items = await api<StreamSummary[]>("GET", `/api/streams?${q}&limit=50`);
      if (!items.length) replace(list, h("li", { class: "empty" }, t.noStreams));
      else
        replace(
          list,
          items.map((s) =>
            h("li", { class: "stream-card" }, h("a", { href: `/live/${encodeURIComponent(s.stream_id)}` }, h("div", { class: "thumb", "aria-hidden": "true" }, "🍲", h("span", { class: "live-badge" }, "LIVE")), h("div", null, h("div", { class: "cand-name" }, s.title), h("div", { class: "muted small" }, s.streamer_name ? `${s.streamer_name} · ` : "", t.watching(s.viewers))))),
          ),
        );
    } catch (e) {
      replace(list, h("li", { class: "empty" }, `${t.error}: ${String(e)}`));
    }
  };
  onLanguageChange(render);
  render();
}

function goLiveForm(): HTMLElement {
  const title = h("input", { id: "stream-title", maxlength: 100, required: true, placeholder: t.streamTitle });
  const q = h("input", { id: "place-q", placeholder: t.searchPlace, autocomplete: "off" });
  const results = h("ol", { class: "list", id: "place-results" });
  let chosen: Place | null = null;
  const submit = h("button", { type: "submit", class: "primary", id: "go-live", disabled: true }, t.goLive);
  let timer = 0;
  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const v = q.value.trim();
      if (!v) return replace(results);
      try {
        const page = await api<Page<Place>>("GET", `/api/places?q=${encodeURIComponent(v)}&limit=5`);
        replace(
          results,
          page.items.map((p) =>
            h("li", { class: "place" }, h("button", { type: "button", class: "ghost", onclick: () => { chosen = p; q.value = p.name; replace(results); submit.disabled = false; } }, p.name, h("span", { class: "muted small" }, " ", p.category))),
          ),
        );
      } catch {
        replace(results);
      }
    }, 200);
  });
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (!chosen) return;
        try {
          const s = await api<CreatedStream>("POST", "/api/streams", { title: title.value.trim(), place_id: chosen.id, location: chosen.location });
          localStorage.setItem(`wagu.streamer.${s.stream_id}`, s.streamer_key);
          location.assign(`/studio/${encodeURIComponent(s.stream_id)}`);
        } catch (err) {
          toast(`${t.error}: ${String(err)}`, "error");
        }
      },
    },
    h("h2", null, t.goLive),
    h("label", { for: "stream-title" }, t.streamTitle),
    title,
    h("label", { for: "place-q" }, t.place),
    q,
    results,
    submit,
  );
}

export async function streamPage(app: HTMLElement, id: string, studio: boolean): Promise<void> {
  const key = studio ? localStorage.getItem(`wagu.streamer.${id}`) ?? undefined : undefined;
  const name = localStorage.getItem("wagu.name") || (await askName(app));
  let snap: StreamSnapshot | null = null;
  let you = 0;
  let status: Status = "connecting";
  let ended = "";
  const mutedUntil = new Map<number, number>();

  const session = new Session({
    join: (resume) => ({ type: "join_stream", stream: id, name, client_key: clientKey(), ...(key ? { streamer_key: key } : {}), ...(resume ? { resume } : {}) }),
    message: (m) => apply(m),
    status: (s, why) => {
      status = s;
      if (s === "ended") ended = why ?? "";
      // Viewers watch as soon as they are in; after a resume both sides offer again.
      if (s === "online" && media && (media.active || !isStreamer())) void media.start().catch(() => undefined);
      if (s === "ended") void media?.leave();
      render();
    },
    resumed: (n) => toast(t.resumedN(n)),
    refused: (code) => {
      ended = code;
    },
  });
  const isStreamer = () => !!snap && snap.streamer === you && you !== 0;
  // The camera (streamer) or the picture (viewer): one link, created once we know which.
  let media: MediaLink | null = null;
  let soundOn = false;
  const mediaFor = (): MediaLink | null => {
    if (!snap || you === 0) return null;
    if (!media) {
      media = new MediaLink(session, isStreamer() ? "streamer" : "viewer");
      media.onchange = () => render();
    }
    return media;
  };
  const mediaFail = (e: unknown) => toast(`${t.error}: ${e instanceof CommandError ? e.code : e instanceof Error ? e.message : String(e)}`, "error");

  const cmd = (c: Parameters<Session["send"]>[0]) =>
    session.send(c).catch((e: unknown) => {
      if (e instanceof CommandError) toast(`${t.error}: ${e.code}`, "error");
    });

  function apply(m: ServerMessage): void {
    if (m.type === "stream_welcome") {
      snap = m.stream;
      you = m.you;
      mediaFor();
      return render();
    }
    if (m.type === "media_state" || m.type === "speaking" || m.type === "media_ended") {
      media?.handle(m);
      return;
    }
    const s = snap;
    if (!s) return;
    switch (m.type) {
      case "viewers":
        s.viewers = m.count;
        break;
      case "chat":
        s.chat.push(m.message);
        if (s.chat.length > 200) s.chat.shift();
        break;
      case "pin_changed":
        s.pinned = m.message ?? null;
        break;
      case "message_deleted":
        s.chat = s.chat.filter((c) => c.seq !== m.message);
        break;
      case "muted":
        mutedUntil.set(m.participant, m.until);
        break;
      case "banned":
        break;
      case "streamer_away":
        s.streamer_online = false;
        break;
      case "streamer_back":
        s.streamer_online = true;
        break;
      case "stream_ended":
        ended = "closed";
        break;
      default:
        return;
    }
    render();
  }

  function line(c: ChatMessage): HTMLLIElement {
    const mod = isStreamer() && status === "online";
    return h(
      "li",
      { class: c.from === you ? "msg mine" : "msg", "data-seq": c.seq },
      h("span", { class: "who" }, c.name),
      h("span", { class: "text" }, c.text),
      h("time", null, timeOf(c.at)),
      mod
        ? h(
            "span",
            { class: "mod" },
            h("button", { type: "button", class: "ghost small", onclick: () => cmd({ type: "pin", message: c.seq }) }, t.pin),
            h("button", { type: "button", class: "ghost small", onclick: () => cmd({ type: "delete_message", message: c.seq }) }, t.del),
            c.from !== you ? h("button", { type: "button", class: "ghost small", onclick: () => cmd({ type: "mute", participant: c.from, minutes: 5 }) }, t.mute) : null,
            c.from !== you ? h("button", { type: "button", class: "danger small", onclick: () => cmd({ type: "ban", participant: c.from }) }, t.ban) : null,
          )
        : null,
    );
  }

  let draft = "";
  function mediaControls(): (HTMLElement | null)[] {
    const m = media;
    if (!m || ended) return [];
    if (isStreamer()) {
      if (!m.active) return [h("button", { id: "camera-start", type: "button", class: "ghost", "aria-label": t.startCamera, onclick: () => void m.start().catch(mediaFail) }, icon("video"), h("span", { class: "label" }, t.startCamera))];
      return [
        h("button", { id: "camera-mute", type: "button", class: m.muted ? "danger" : "ghost", "aria-pressed": String(m.muted), "aria-label": m.muted ? t.unmute : t.muteMic, onclick: () => void m.setMuted(!m.muted).catch(mediaFail) }, icon("mic")),
        h("button", { id: "camera-stop", type: "button", class: "ghost", "aria-label": t.stopCamera, onclick: () => void m.leave() }, icon("video"), h("span", { class: "label" }, t.stopCamera)),
      ];
    }
    if (soundOn) return [];
    return [h("button", { id: "sound-on", type: "button", class: "ghost", "aria-label": t.soundOn, onclick: () => { soundOn = true; m.video.muted = false; void m.video.play().catch(() => undefined); render(); } }, icon("mic"), h("span", { class: "label" }, t.soundOn))];
  }

  function render(): void {
    // Moving the media element pauses it: play it again once the page is rebuilt.
    queueMicrotask(() => media?.replay());
    const hadFocus = document.activeElement?.id === "chat-input";
    const s = snap;
    const statusEl = h("span", { id: "status", class: `status ${status}`, "data-status": status }, { connecting: t.connecting, online: t.connected, reconnecting: t.reconnecting, offline: t.offline, ended: t.ended }[status]);
    const input = h("input", { id: "chat-input", maxlength: 1000, autocomplete: "off", placeholder: t.chatPlaceholder, "aria-label": t.chatPlaceholder, value: draft, disabled: status === "ended" });
    input.addEventListener("input", () => (draft = input.value));
    const list = h("ol", { id: "chat", class: "chat" }, (s?.chat ?? []).map(line));
    const endedText = ended === "banned" ? t.banned : ended === "closed" ? t.streamEnded : ended ? `${t.ended} (${ended})` : "";
    replace(
      app,
      topbar(statusEl),
      h(
        "main",
        { class: "stream" },
        h(
          "div",
          { class: "stage" },
          h("div", { id: "video-slot", class: "video-slot" }, media?.video ?? null, h("span", { class: "live-badge" }, "LIVE"), h("span", { id: "viewer-count", class: "viewer-count", "data-count": s?.viewers ?? 0 }, "👀 ", t.watching(s?.viewers ?? 0)), media?.video.srcObject ? null : h("p", { class: "muted" }, isStreamer() ? t.startCamera : t.noVideoYet), h("div", { id: "media-controls", class: "media-controls" }, mediaControls())),
          h("h1", { id: "stream-title" }, s?.title ?? ""),
          h("p", { class: "muted" }, s?.streamer_name ?? "", s && !s.streamer_online ? ` · ${t.streamerAway}` : "", s?.menu.length ? ` · ${s.menu.join(", ")}` : ""),
          endedText ? h("div", { class: "banner ended", id: "ended" }, endedText) : null,
          isStreamer() && !ended ? h("button", { type: "button", class: "danger", id: "end-stream", onclick: () => cmd({ type: "end_stream" }) }, t.endStream) : null,
        ),
        h(
          "aside",
          { class: "panel" },
          s?.pinned ? h("div", { class: "banner pinned", id: "pinned" }, "📌 ", h("strong", null, s.pinned.name), " ", s.pinned.text, isStreamer() ? h("button", { type: "button", class: "ghost small", onclick: () => cmd({ type: "unpin" }) }, t.unpin) : null) : null,
          list,
          h(
            "form",
            {
              id: "chat-form",
              class: "chat-form",
              onsubmit: (e: Event) => {
                e.preventDefault();
                const text = input.value.trim();
                if (!text) return;
                void session.send({ type: "chat", text }).then(
                  () => {
                    draft = "";
                    const el = document.getElementById("chat-input") as HTMLInputElement | null;
                    if (el) el.value = "";
                  },
                  (err: unknown) => toast(`${t.error}: ${err instanceof CommandError ? err.code : String(err)}`, "error"),
                );
              },
            },
            input,
            h("button", { type: "submit", class: "primary" }, t.send),
          ),
        ),
      ),
    );
    list.scrollTop = list.scrollHeight;
    if (hadFocus) $("#chat-input").focus({ preventScroll: true });
  }
  onLanguageChange(render);
  render();
  session.start();
}

/** A viewer without a saved name picks one first (shown next to their chat). */
function askName(app: HTMLElement): Promise<string> {
  return new Promise((resolve) => {
    const render = () => {
      const input = h("input", { id: "name", required: true, maxlength: 40, autocomplete: "nickname", placeholder: t.namePlaceholder });
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
              onsubmit: (e: Event) => {
                e.preventDefault();
                const n = input.value.trim();
                if (!n) return;
                localStorage.setItem("wagu.name", n);
                resolve(n);
              },
            },
            h("p", { class: "eyebrow" }, t.live),
            h("label", { for: "name" }, t.yourName),
            input,
            h("button", { type: "submit", class: "primary big" }, t.enter),
          ),
        ),
      );
      input.focus();
    };
    onLanguageChange(render);
    render();
  });
}
