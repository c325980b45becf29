// The map room (docs/PROTOCOL.md sections 2-8): join from a share link, then the map with
// places in view, friends' viewports, candidates and votes, chat and host controls.
import L from "leaflet";
import { api, ApiError, type Page, type Place, type RoomSummary } from "./api";
import { $, h, icon, replace, timeOf, toast } from "./dom";
import type { ChatMessage, ParticipantInfo, RoomSnapshot, ServerMessage } from "./gen/protocol";
import { t } from "./i18n";
import { createMap, SEOUL } from "./map";
import { MediaLink } from "./media";
import { CommandError, Session, type Status } from "./session";
import { onLanguageChange, topbar } from "./shell";

type Tab = "candidates" | "chat" | "places" | "people";

export async function roomPage(app: HTMLElement, share: string): Promise<void> {
  const hostKey = localStorage.getItem(`wagu.host.${share}`) ?? undefined;
  let summary: RoomSummary;
  try {
    summary = await api<RoomSummary>("GET", `/api/rooms/${encodeURIComponent(share)}`);
  } catch (e) {
    replace(app, topbar(), h("main", { class: "center-card" }, h("div", { class: "card" }, h("h1", null, "😢"), h("p", { id: "link-dead" }, e instanceof ApiError && e.status === 404 ? t.linkDead : `${t.error}: ${String(e)}`), h("a", { class: "button", href: "/" }, t.createRoom))));
    return;
  }
  const name = await askName(app, summary);
  new Room(app, share, name, hostKey).start();
}

function askName(app: HTMLElement, summary: RoomSummary): Promise<string> {
  return new Promise((resolve) => {
    const render = () => {
      const input = h("input", { id: "name", name: "name", required: true, maxlength: 40, autocomplete: "nickname", placeholder: t.namePlaceholder, value: localStorage.getItem("wagu.name") ?? "" });
      const form = h(
        "form",
        {
          class: "card join-card",
          onsubmit: (e: Event) => {
            e.preventDefault();
            const n = input.value.trim();
            if (!n) return;
            localStorage.setItem("wagu.name", n);
            resolve(n);
          },
        },
        h("p", { class: "eyebrow" }, t.joinTitle),
        h("h1", { class: "room-name" }, summary.title),
        h("p", { class: "muted" }, `${t.peopleN(summary.participants)} · ${summary.online} ${t.online}`),
        h("label", { for: "name" }, t.yourName),
        input,
        h("button", { type: "submit", class: "primary big" }, t.enter),
      );
      replace(app, topbar(), h("main", { class: "center-card" }, form));
      input.focus();
    };
    onLanguageChange(render);
    render();
  });
}

class Room {
  private snap: RoomSnapshot | null = null;
  private you = 0;
  private session: Session;
  private map: L.Map | null = null;
  private friends = new Map<number, { rect: L.Rectangle; label: L.Marker }>();
  private candidateLayer = L.layerGroup();
  private placeLayer = L.layerGroup();
  private places: Place[] = [];
  private tab: Tab = "candidates";
  private status: Status = "connecting";
  private endedWhy = "";
  private unread = 0;
  private lastPresence = 0;
  private presenceTimer = 0;
  private placesTimer = 0;
  private voice: MediaLink;
  /** Holds the voice's audio elements, outside the re-rendered panes. */
  private voiceSink = h("div", { id: "voice-audio", hidden: true });

  constructor(private app: HTMLElement, private share: string, private name: string, private hostKey: string | undefined) {
    this.session = new Session({
      join: (resume) => ({ type: "join", share: this.share, name: this.name, ...(this.hostKey ? { host_key: this.hostKey } : {}), ...(resume ? { resume } : {}) }),
      message: (m) => this.apply(m),
      status: (s, why) => {
        this.status = s;
        if (s === "ended") this.endedWhy = why ?? "";
        // Joined or resumed: tell the others where we look (a fresh participant has no presence).
        if (s === "online") this.sendPresence(true);
        // After a resume the server needs a fresh offer (the ICE restart of section 13).
        if (s === "online" && this.voice.active) void this.voice.start().catch(() => undefined);
        if (s === "ended") void this.voice.leave();
        this.renderStatus();
        if (s === "ended") this.renderEnded();
      },
      resumed: (n) => toast(t.resumedN(n)),
      refused: (code, message) => toast(`${t.error}: ${code} — ${message}`, "error"),
    });
    this.voice = new MediaLink(this.session, "talker");
    this.voice.onchange = () => {
      this.renderVoice();
      if (this.snap) this.renderPeople();
    };
  }

  start(): void {
    this.layout();
    onLanguageChange(() => {
      // Keep the map; rebuild the words around it.
      const mapEl = this.map?.getContainer();
      this.layout(mapEl);
      this.renderAll();
    });
    this.session.start();
  }

  // ---------- layout ----------

  private layout(existingMap?: HTMLElement): void {
    const status = h("span", { id: "status", class: "status", role: "status", "aria-live": "polite" });
    const shareBtn = h("button", { id: "copy-link", class: "primary", type: "button", "aria-label": t.copyLink, onclick: () => this.copyLink() }, icon("link"), h("span", { class: "label" }, t.copyLink));
    const mapEl = existingMap ?? h("div", { id: "map", "aria-label": "map" });
    const tabs = h(
      "div",
      { class: "tabs", role: "tablist" },
      (["candidates", "chat", "places", "people"] as Tab[]).map((k) =>
        h("button", { role: "tab", type: "button", id: `tab-${k}`, "aria-selected": String(this.tab === k), class: this.tab === k ? "tab on" : "tab", onclick: () => this.setTab(k) }, { candidates: t.candidates, chat: t.chat, places: t.places, people: t.peopleTab }[k], k === "chat" ? h("span", { id: "unread", class: "badge" }) : null),
      ),
    );
    const chatInput = h("input", { id: "chat-input", name: "chat", maxlength: 1000, autocomplete: "off", placeholder: t.chatPlaceholder, "aria-label": t.chatPlaceholder });
    const chatForm = h("form", { id: "chat-form", class: "chat-form", onsubmit: (e: Event) => { e.preventDefault(); this.sendChat(chatInput); } }, chatInput, h("button", { type: "submit", class: "primary" }, t.send));
    const panel = h(
      "aside",
      { class: "panel" },
      h("div", { id: "decision" }),
      tabs,
      h("section", { id: "pane-candidates", class: "pane", role: "tabpanel" }, h("div", { id: "vote-bar" }), h("ol", { id: "candidates", class: "list" })),
      h("section", { id: "pane-chat", class: "pane", role: "tabpanel" }, h("ol", { id: "chat", class: "chat" }), chatForm),
      h("section", { id: "pane-places", class: "pane", role: "tabpanel" }, h("ol", { id: "places", class: "list" })),
      h("section", { id: "pane-people", class: "pane", role: "tabpanel" }, h("ol", { id: "people", class: "list" }), h("div", { id: "host-tools" })),
    );
    const media = h("div", { id: "media-controls", class: "media-controls", "aria-label": t.voice });
    replace(
      this.app,
      topbar(status, media, shareBtn),
      h("main", { class: "room" }, h("div", { class: "room-head" }, h("h1", { id: "room-title" }, this.snap?.title ?? ""), h("span", { id: "vote-state", class: "pill" })), h("div", { class: "room-body" }, h("div", { class: "map-wrap" }, mapEl, h("div", { id: "friends", class: "friends" })), panel)),
    );
    this.setTab(this.tab);
    this.renderStatus();
    document.body.appendChild(this.voiceSink);
    this.renderVoice();
  }

  // ---------- voice ----------

  private renderVoice(): void {
    const box = document.getElementById("media-controls");
    if (!box) return;
    const v = this.voice;
    for (const a of v.audio) if (a.parentElement !== this.voiceSink) this.voiceSink.appendChild(a);
    v.replay();
    const fail = (e: unknown) => toast(`${t.error}: ${e instanceof CommandError ? e.code : e instanceof Error ? e.message : String(e)}`, "error");
    if (!v.active) {
      replace(box, h("button", { id: "voice-join", type: "button", class: "ghost", "aria-label": t.joinVoice, onclick: () => void v.start().catch(fail) }, icon("mic"), h("span", { class: "label" }, t.joinVoice)));
      return;
    }
    replace(
      box,
      h("button", { id: "voice-mute", type: "button", class: v.muted ? "danger" : "ghost", "aria-pressed": String(v.muted), "aria-label": v.muted ? t.unmute : t.muteMic, "data-state": v.state, onclick: () => void v.setMuted(!v.muted).catch(fail) }, icon("mic"), h("span", { class: "label" }, v.state === "connecting" ? t.connecting : v.muted ? t.unmute : t.muteMic)),
      h("button", { id: "voice-leave", type: "button", class: "ghost", "aria-label": t.leaveVoice, onclick: () => void v.leave() }, h("span", { class: "label" }, t.leaveVoice)),
    );
  }

  private setTab(k: Tab): void {
    this.tab = k;
    for (const name of ["candidates", "chat", "places", "people"]) {
      const tab = document.getElementById(`tab-${name}`);
      const pane = document.getElementById(`pane-${name}`);
      tab?.setAttribute("aria-selected", String(name === k));
      tab?.classList.toggle("on", name === k);
      pane?.classList.toggle("on", name === k);
    }
    if (k === "chat") {
      this.unread = 0;
      this.renderUnread();
      const list = document.getElementById("chat");
      if (list) list.scrollTop = list.scrollHeight;
    }
  }

  private renderStatus(): void {
    const el = document.getElementById("status");
    if (!el) return;
    el.dataset.status = this.status;
    el.className = `status ${this.status}`;
    el.textContent = { connecting: t.connecting, online: t.connected, reconnecting: t.reconnecting, offline: t.offline, ended: t.ended }[this.status];
  }

  private renderEnded(): void {
    const why = this.endedWhy === "kicked" ? t.kicked : this.endedWhy === "closed" ? t.roomClosed : this.endedWhy === "unknown_room" ? t.linkDead : t.ended;
    const box = document.getElementById("decision");
    if (box) replace(box, h("div", { class: "banner ended", id: "ended" }, why, " ", h("a", { href: "/" }, t.createRoom)));
    const vs = document.getElementById("vote-state");
    if (vs) {
      vs.textContent = t.ended;
      vs.className = "pill";
    }
    for (const f of this.friends.values()) {
      f.rect.remove();
      f.label.remove();
    }
    this.friends.clear();
    document.getElementById("friends")?.replaceChildren();
    for (const b of this.app.querySelectorAll<HTMLButtonElement | HTMLInputElement>(".panel button, .panel input, #copy-link")) {
      if (!b.classList.contains("tab")) b.disabled = true;
    }
  }

  // ---------- events ----------

  private apply(m: ServerMessage): void {
    if (m.type === "welcome") {
      this.snap = m.room;
      this.you = m.you;
      void this.ensureMap().then(() => this.renderAll());
      return;
    }
    const s = this.snap;
    if (!s) return;
    switch (m.type) {
      case "media_state":
      case "speaking":
      case "media_ended":
        this.voice.handle(m);
        return;
      case "resumed":
        return;
      case "participant_joined":
        s.participants = s.participants.filter((p) => p.id !== m.participant.id).concat(m.participant);
        break;
      case "participant_left":
        s.participants = s.participants.filter((p) => p.id !== m.participant);
        s.presence = s.presence.filter((p) => p.participant !== m.participant);
        break;
      case "participant_away":
      case "participant_back":
        for (const p of s.participants) if (p.id === m.participant) p.status = m.type === "participant_away" ? "away" : "online";
        break;
      case "host_changed":
        for (const p of s.participants) p.host = p.id === m.participant;
        break;
      case "presence":
        for (const u of m.updates) {
          const cur = s.presence.find((p) => p.participant === u.participant);
          if (!cur) s.presence.push({ ...u });
          else {
            if (u.viewport) cur.viewport = u.viewport;
            if (u.pointer) cur.pointer = u.pointer;
          }
        }
        this.renderFriends();
        return;
      case "candidate_added":
        s.candidates.push(m.candidate);
        s.tally.push({ place_id: m.candidate.place_id, votes: 0 });
        break;
      case "candidate_removed":
        s.candidates = s.candidates.filter((c) => c.place_id !== m.place_id);
        s.tally = m.tally;
        for (const b of s.ballots) b.choices = b.choices.filter((c) => c !== m.place_id);
        break;
      case "ballot_changed":
        s.ballots = s.ballots.filter((b) => b.participant !== m.participant);
        if (m.choices.length) s.ballots.push({ participant: m.participant, choices: m.choices });
        s.tally = m.tally;
        break;
      case "vote_closed":
        s.vote = { state: "closed", decision: m.decision };
        break;
      case "vote_reopened":
        s.vote = { state: "open" };
        break;
      case "chat":
        s.chat.push(m.message);
        if (s.chat.length > 200) s.chat.shift();
        this.addChat(m.message);
        if (this.tab !== "chat" && m.message.from !== this.you) {
          this.unread++;
          this.renderUnread();
        }
        return;
      case "room_renamed":
        s.title = m.title;
        break;
      case "room_closed":
        break;
      default:
        return;
    }
    this.renderAll();
  }

  private person(id: number): ParticipantInfo | undefined {
    return this.snap?.participants.find((p) => p.id === id);
  }

  private get amHost(): boolean {
    return this.person(this.you)?.host ?? false;
  }

  // ---------- map ----------

  private async ensureMap(): Promise<void> {
    if (this.map) return;
    const s = this.snap;
    const c = s?.center;
    const center: L.LatLngExpression = c ? [c.lat, c.lng] : s?.candidates[0] ? [s.candidates[0].location.lat, s.candidates[0].location.lng] : SEOUL;
    const map = await createMap($("#map"), center, 15);
    this.map = map;
    this.placeLayer.addTo(map);
    this.candidateLayer.addTo(map);
    map.on("move", () => this.sendPresence(false));
    map.on("moveend", () => {
      this.sendPresence(true);
      clearTimeout(this.placesTimer);
      this.placesTimer = window.setTimeout(() => void this.loadPlaces(), 250);
    });
    this.sendPresence(true);
    void this.loadPlaces();
  }

  private viewport() {
    const map = this.map!;
    const b = map.getBounds();
    const c = map.getCenter();
    const r = (x: number) => Math.round(x * 1e6) / 1e6;
    return {
      center: { lat: r(c.lat), lng: r(c.lng) },
      zoom: map.getZoom(),
      bounds: { sw: { lat: r(Math.max(-90, b.getSouth())), lng: r(Math.max(-180, b.getWest())) }, ne: { lat: r(Math.min(90, b.getNorth())), lng: r(Math.min(180, b.getEast())) } },
    };
  }

  /** Live while dragging (at most 10/s, under the 30/s limit), and always at the end. */
  private sendPresence(final: boolean): void {
    if (!this.map) return;
    const now = performance.now();
    clearTimeout(this.presenceTimer);
    const vp = this.viewport();
    $("#map").dataset.bounds = boundsKey(vp.bounds);
    if (!final && now - this.lastPresence < 100) {
      this.presenceTimer = window.setTimeout(() => this.sendPresence(true), 120);
      return;
    }
    this.lastPresence = now;
    this.session.presence({ viewport: vp });
  }

  private renderFriends(): void {
    const s = this.snap;
    const map = this.map;
    if (!s || !map || this.status === "ended") return;
    const seen = new Set<number>();
    for (const p of s.presence) {
      const who = this.person(p.participant);
      const b = p.viewport?.bounds;
      if (!who || p.participant === this.you || !b || who.status !== "online") continue;
      seen.add(who.id);
      const bounds = L.latLngBounds([b.sw.lat, b.sw.lng], [b.ne.lat, b.ne.lng]);
      let f = this.friends.get(who.id);
      const labelEl = h("span", { class: "friend-label", "data-participant": who.id, "data-bounds": boundsKey(b), style: null }, who.name);
      labelEl.style.background = who.color;
      if (!f) {
        const rect = L.rectangle(bounds, { color: who.color, weight: 2, fillOpacity: 0.07, dashArray: "6 4", interactive: false, className: `friend-rect friend-${who.id}` }).addTo(map);
        const label = L.marker([b.ne.lat, b.sw.lng], { icon: L.divIcon({ html: labelEl, className: "friend-label-icon", iconSize: undefined, iconAnchor: [0, 0] }), interactive: false, keyboard: false }).addTo(map);
        f = { rect, label };
        this.friends.set(who.id, f);
      } else {
        f.rect.setBounds(bounds);
        f.rect.setStyle({ color: who.color });
        f.label.setLatLng([b.ne.lat, b.sw.lng]);
        f.label.setIcon(L.divIcon({ html: labelEl, className: "friend-label-icon", iconSize: undefined, iconAnchor: [0, 0] }));
      }
    }
    // Chips over the map: a friend whose view is off screen (or encloses yours) is one tap away.
    const chips = document.getElementById("friends");
    if (chips) {
      const others = s.participants.filter((p) => p.id !== this.you && p.status === "online");
      replace(
        chips,
        others.map((p) => {
          const b = s.presence.find((e) => e.participant === p.id)?.viewport?.bounds;
          const chip = h("button", { type: "button", class: "chip", "data-participant": p.id, disabled: !b, title: p.name, onclick: () => b && map.flyToBounds([[b.sw.lat, b.sw.lng], [b.ne.lat, b.ne.lng]], { duration: 0.6 }) }, dot(p), h("span", null, p.name));
          return chip;
        }),
      );
    }
    for (const [id, f] of this.friends) {
      if (!seen.has(id)) {
        f.rect.remove();
        f.label.remove();
        this.friends.delete(id);
      }
    }
  }

  private async loadPlaces(): Promise<void> {
    const map = this.map;
    if (!map) return;
    const b = map.getBounds();
    const clamp = (x: number, m: number) => Math.max(-m, Math.min(m, x)).toFixed(6);
    const bbox = `${clamp(b.getSouth(), 90)},${clamp(b.getWest(), 180)},${clamp(b.getNorth(), 90)},${clamp(b.getEast(), 180)}`;
    try {
      const page = await api<Page<Place>>("GET", `/api/places?bbox=${bbox}&limit=50`);
      this.places = page.items;
    } catch {
      this.places = [];
    }
    this.renderPlaces();
  }

  // ---------- rendering ----------

  private renderAll(): void {
    const s = this.snap;
    if (!s) return;
    $("#room-title").textContent = s.title;
    document.title = `${s.title} · ${t.appName}`;
    const vs = $("#vote-state");
    vs.textContent = s.vote.state === "open" ? t.voteOpen : t.decision;
    vs.className = `pill ${s.vote.state}`;
    this.renderDecision();
    this.renderCandidates();
    this.renderChat();
    this.renderPeople();
    this.renderPlaces();
    this.renderFriends();
    this.renderMarkers();
    if (this.status === "ended") this.renderEnded();
  }

  private candidateName(id: string): string {
    return this.snap?.candidates.find((c) => c.place_id === id)?.name ?? id;
  }

  private renderDecision(): void {
    const s = this.snap!;
    const box = $("#decision");
    if (s.vote.state !== "closed") {
      replace(box);
      return;
    }
    const d = s.vote.decision;
    const winner = d.winner ? this.candidateName(d.winner) : null;
    const votes = d.tally.find((e) => e.place_id === d.winner)?.votes ?? 0;
    replace(
      box,
      h(
        "div",
        { class: "banner decision", id: "decision-banner", role: "status" },
        h("span", { class: "trophy", "aria-hidden": "true" }, "🏆"),
        h("div", null, h("div", { class: "eyebrow" }, t.decision), winner ? h("strong", { id: "winner" }, winner) : h("strong", { id: "winner" }, t.noWinner), winner ? h("span", { class: "muted" }, ` · ${t.votes(votes)} `, d.tie_break === "earliest_added" ? t.tieBreak : "") : null),
        this.amHost ? h("button", { id: "reopen-vote", type: "button", class: "ghost", onclick: () => this.cmd({ type: "reopen_vote" }) }, t.reopenVote) : null,
      ),
    );
  }

  private myChoices(): string[] {
    return this.snap?.ballots.find((b) => b.participant === this.you)?.choices ?? [];
  }

  private renderCandidates(): void {
    const s = this.snap!;
    const open = s.vote.state === "open";
    const mine = this.myChoices();
    const max = s.vote_mode.kind === "approval" ? s.vote_mode.max : 1;
    const total = Math.max(1, ...s.tally.map((e) => e.votes));
    const winner = s.vote.state === "closed" ? s.vote.decision.winner : null;
    replace(
      $("#vote-bar"),
      h("span", { class: "muted" }, s.vote_mode.kind === "approval" ? t.voteApproval.replace("3", String(max)) : t.voteSingle),
      this.amHost && open ? h("button", { id: "close-vote", type: "button", class: "primary", disabled: s.candidates.length === 0, onclick: () => this.cmd({ type: "close_vote" }) }, t.closeVote) : null,
    );
    const list = $("#candidates");
    if (!s.candidates.length) {
      replace(list, h("li", { class: "empty" }, t.noCandidates));
      return;
    }
    replace(
      list,
      s.candidates.map((c, i) => {
        const votes = s.tally.find((e) => e.place_id === c.place_id)?.votes ?? 0;
        const chosen = mine.includes(c.place_id);
        const adder = this.person(c.added_by)?.name ?? "?";
        const voters = s.ballots.filter((b) => b.choices.includes(c.place_id)).map((b) => this.person(b.participant)).filter((p): p is ParticipantInfo => !!p);
        const toggle = () => {
          let next = chosen ? mine.filter((x) => x !== c.place_id) : max === 1 ? [c.place_id] : [...mine, c.place_id];
          if (next.length > max) next = next.slice(next.length - max);
          this.cmd({ type: "vote", choices: next });
        };
        const bar = h("div", { class: "bar" });
        const fill = h("div", { class: "fill" });
        fill.style.width = `${(votes / total) * 100}%`;
        bar.appendChild(fill);
        return h(
          "li",
          { class: `candidate${chosen ? " chosen" : ""}${winner === c.place_id ? " winner" : ""}`, "data-place": c.place_id },
          h("button", { type: "button", class: "num", "aria-label": c.name, onclick: () => this.map?.flyTo([c.location.lat, c.location.lng], Math.max(this.map.getZoom(), 16)) }, String(i + 1)),
          h(
            "div",
            { class: "grow" },
            h("div", { class: "cand-name" }, c.name),
            c.note ? h("div", { class: "muted small" }, c.note) : null,
            h("div", { class: "muted small" }, t.addedBy(adder)),
            bar,
            h("div", { class: "voters" }, voters.map((p) => dot(p)), h("span", { class: "tally", "data-votes": votes }, t.votes(votes))),
          ),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: chosen ? "vote on" : "vote", "aria-pressed": String(chosen), disabled: !open, onclick: toggle }, chosen ? `✓ ${t.voted}` : t.vote),
            open && (this.amHost || c.added_by === this.you) ? h("button", { type: "button", class: "ghost small", onclick: () => this.cmd({ type: "remove_candidate", place_id: c.place_id }) }, t.remove) : null,
          ),
        );
      }),
    );
  }

  private renderMarkers(): void {
    const s = this.snap!;
    this.candidateLayer.clearLayers();
    const winner = s.vote.state === "closed" ? s.vote.decision.winner : null;
    s.candidates.forEach((c, i) => {
      const votes = s.tally.find((e) => e.place_id === c.place_id)?.votes ?? 0;
      const pin = h("div", { class: `pin${winner === c.place_id ? " win" : ""}` }, h("span", null, String(i + 1)), votes ? h("b", null, String(votes)) : null);
      L.marker([c.location.lat, c.location.lng], { icon: L.divIcon({ html: pin, className: "pin-icon", iconSize: [30, 38], iconAnchor: [15, 38] }), title: c.name, alt: c.name, keyboard: true })
        .on("click", () => this.setTab("candidates"))
        .addTo(this.candidateLayer);
    });
  }

  private renderPlaces(): void {
    const s = this.snap;
    if (!s) return;
    const listed = new Set(s.candidates.map((c) => c.place_id));
    this.placeLayer.clearLayers();
    const open = s.vote.state === "open";
    for (const p of this.places) {
      if (listed.has(p.id)) continue;
      const popup = h("div", { class: "place-pop" }, h("strong", null, p.name), h("div", { class: "muted small" }, p.category), open ? h("button", { type: "button", class: "primary small", onclick: () => this.addCandidate(p) }, "+ ", t.addCandidate) : null);
      L.circleMarker([p.location.lat, p.location.lng], { radius: 6, color: "#fff", weight: 2, fillColor: "#ff6b3d", fillOpacity: 0.9, className: "place-dot" }).bindPopup(popup).addTo(this.placeLayer);
    }
    const list = document.getElementById("places");
    if (!list) return;
    if (!this.places.length) {
      replace(list, h("li", { class: "empty" }, t.noPlaces));
      return;
    }
    replace(
      list,
      this.places.map((p) =>
        h(
          "li",
          { class: "place", "data-place": p.id },
          h("div", { class: "grow" }, h("div", { class: "cand-name" }, p.name), h("div", { class: "muted small" }, [p.category, p.address].filter(Boolean).join(" · "))),
          listed.has(p.id) ? h("span", { class: "pill" }, t.added) : h("button", { type: "button", class: "primary small add-candidate", disabled: !open, onclick: () => this.addCandidate(p) }, "+ ", t.addCandidate),
        ),
      ),
    );
  }

  private renderChat(): void {
    const list = $("#chat");
    replace(list, (this.snap?.chat ?? []).map((m) => this.chatLine(m)));
    list.scrollTop = list.scrollHeight;
  }

  private chatLine(m: ChatMessage): HTMLLIElement {
    const who = this.person(m.from);
    const nameEl = h("span", { class: "who" }, m.name);
    if (who) nameEl.style.color = who.color;
    return h("li", { class: m.from === this.you ? "msg mine" : "msg", "data-seq": m.seq }, nameEl, h("span", { class: "text" }, m.text), h("time", null, timeOf(m.at)));
  }

  private addChat(m: ChatMessage): void {
    const list = document.getElementById("chat");
    if (!list) return;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.appendChild(this.chatLine(m));
    while (list.children.length > 200) list.firstChild?.remove();
    if (atBottom || m.from === this.you) list.scrollTop = list.scrollHeight;
  }

  private renderUnread(): void {
    const b = document.getElementById("unread");
    if (b) b.textContent = this.unread ? String(this.unread) : "";
  }

  /** 🎙 in voice, 🔇 muted, highlighted while speaking. */
  private voiceBadge(id: number): HTMLElement | null {
    const peer = this.voice.peers.find((p) => p.participant === id);
    if (!peer) return null;
    const speaking = this.voice.speaking.includes(id);
    return h("span", { class: `pill voice${speaking ? " speaking" : ""}`, "data-voice": peer.muted ? "muted" : speaking ? "speaking" : "on", title: peer.muted ? t.muted : t.voice }, peer.muted ? "🔇" : "🎙");
  }

  private renderPeople(): void {
    const s = this.snap!;
    const host = this.amHost;
    replace(
      $("#people"),
      s.participants.map((p) =>
        h(
          "li",
          { class: `person ${p.status}`, "data-participant": p.id },
          dot(p),
          h("span", { class: "grow" }, h("span", { class: "cand-name" }, p.name), this.voiceBadge(p.id), p.id === this.you ? h("span", { class: "pill" }, t.you) : null, p.host ? h("span", { class: "pill host" }, "👑 ", t.host) : null, p.status === "away" ? h("span", { class: "pill" }, t.away) : null),
          host && p.id !== this.you ? h("button", { type: "button", class: "ghost small", onclick: () => this.cmd({ type: "kick", participant: p.id }) }, t.kick) : null,
        ),
      ),
    );
    const tools = $("#host-tools");
    if (!host) {
      replace(tools);
      return;
    }
    const title = h("input", { id: "rename-input", maxlength: 100, value: s.title, "aria-label": t.roomTitle });
    replace(
      tools,
      h("form", { class: "row", onsubmit: (e: Event) => { e.preventDefault(); const v = title.value.trim(); if (v) this.cmd({ type: "rename", title: v }); } }, title, h("button", { type: "submit", class: "ghost" }, t.rename)),
      h("button", { type: "button", class: "danger", id: "close-room", onclick: () => { if (confirm(t.confirmClose)) this.cmd({ type: "close_room" }); } }, t.closeRoom),
    );
  }

  // ---------- commands ----------

  private cmd(c: Parameters<Session["send"]>[0]): void {
    this.session.send(c).catch((e: unknown) => {
      if (e instanceof CommandError) toast(`${t.error}: ${e.code}`, "error");
    });
  }

  private addCandidate(p: Place): void {
    this.map?.closePopup();
    this.cmd({ type: "add_candidate", place_id: p.id, name: p.name.slice(0, 200), lat: p.location.lat, lng: p.location.lng, ...(p.category ? { note: p.category.slice(0, 500) } : {}) });
    this.setTab("candidates");
  }

  private sendChat(input: HTMLInputElement): void {
    const text = input.value.trim();
    if (!text) return;
    input.disabled = true;
    this.session
      .send({ type: "chat", text })
      .then(
        () => {
          input.value = "";
        },
        (e: unknown) => toast(`${t.error}: ${e instanceof CommandError ? e.code : String(e)}`, "error"),
      )
      .finally(() => {
        input.disabled = false;
        input.focus();
      });
  }

  private async copyLink(): Promise<void> {
    const link = `${location.origin}/join/${this.share}`;
    try {
      await navigator.clipboard.writeText(link);
      toast(t.copied);
    } catch {
      window.prompt(t.copyFailed, link);
    }
  }
}

function dot(p: ParticipantInfo): HTMLSpanElement {
  const d = h("span", { class: "dot", title: p.name, "aria-hidden": "true" }, p.name.slice(0, 1).toUpperCase());
  d.style.background = p.color;
  return d;
}

function boundsKey(b: { sw: { lat: number; lng: number }; ne: { lat: number; lng: number } }): string {
  return [b.sw.lat, b.sw.lng, b.ne.lat, b.ne.lng].map((x) => x.toFixed(5)).join(",");
}
