// One WebSocket session in a map room or a live stream (docs/PROTOCOL.md sections 2-4, 7, 12):
// hello + join, request ids answered by exactly one ack or error, gap-free reliable events
// tracked by `seq`, and automatic reconnect + resume after any drop that is not a deliberate
// end. The page sees a status (shown to the user) and every server frame in order.

import type { ClientMessage, ResumeRequest, ServerMessage } from "./gen/protocol";

export type Status = "connecting" | "online" | "reconnecting" | "offline" | "ended";

type Ack = Extract<ServerMessage, { type: "ack" }>;
type Join = Extract<ClientMessage, { type: "join" } | { type: "join_stream" }>;
// A client message without its request id (the session numbers them).
type Command = ClientMessage extends infer M ? (M extends { id: unknown } ? Omit<M, "id"> : M) : never;

export class CommandError extends Error {
  constructor(public code: string, message: string) {
    super(message);
  }
}

/** Frames that carry `seq` but do not advance it (section 4). */
const LOSSY = new Set(["presence", "viewers", "media_state", "speaking"]);
/** Close codes after which the client must not reconnect (section 7). */
const FINAL = new Map<number, string>([
  [1000, "left"],
  [4001, "kicked"],
  [4002, "closed"],
  [4004, "unsupported_version"],
  [4005, "banned"],
]);

export interface SessionHooks {
  /** The join frame (without id); `resume` is set when the session resumes. */
  join(resume: ResumeRequest | undefined): Omit<Join, "id">;
  /** Every server frame except acks and errors of commands, in order. */
  message(m: ServerMessage): void;
  status(s: Status, detail?: string): void;
  /** A resume replayed `n` events, or (-1) brought a fresh snapshot (the user is told). */
  resumed?(n: number): void;
  /** The join was refused (the code says why). */
  refused?(code: string, message: string): void;
}

export class Session {
  private ws: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, { resolve(a: Ack): void; reject(e: CommandError): void }>();
  /** `media_offer`s waiting for their `media_answer` (section 13), by request id. */
  private offers = new Map<number, { resolve(sdp: string): void; reject(e: CommandError): void }>();
  private joinId = 0;
  private you = 0;
  private token = "";
  private lastSeq = 0;
  private replayed = -1;
  private wasResume = false;
  private attempts = 0;
  private timer = 0;
  private pingTimer = 0;
  private ended = false;
  status: Status = "connecting";

  constructor(private hooks: SessionHooks) {
    window.addEventListener("offline", () => {
      if (this.ended) return;
      this.setStatus("offline");
      this.ws?.close(4999, "offline");
    });
    window.addEventListener("online", () => {
      if (this.ended) return;
      this.reconnectNow();
    });
  }

  start(): void {
    this.connect();
  }

  get participant(): number {
    return this.you;
  }

  /** Sends an SDP offer; resolves with the SFU's answer, rejects with its error (or a drop). */
  offerMedia(sdp: string): Promise<string> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.status !== "online") {
      return Promise.reject(new CommandError("offline", "not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.offers.set(id, { resolve, reject });
      ws.send(JSON.stringify({ type: "media_offer", id, sdp }));
    });
  }

  /** Sends a command; resolves with its ack, rejects with its error (or a drop). */
  send(cmd: Command): Promise<Ack> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.status !== "online") {
      return Promise.reject(new CommandError("offline", "not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ ...cmd, id }));
    });
  }

  /** Fire-and-forget presence (no id, no ack: section 3). */
  presence(p: Omit<Extract<ClientMessage, { type: "presence" }>, "id" | "type">): void {
    if (this.ws?.readyState === WebSocket.OPEN && this.status === "online") {
      this.ws.send(JSON.stringify({ type: "presence", ...p }));
    }
  }

  /** Leaves for good (the server closes with 1000). */
  leave(): void {
    void this.send({ type: "leave" }).catch(() => undefined);
  }

  private url(): string {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  }

  private setStatus(s: Status, detail?: string): void {
    this.status = s;
    this.hooks.status(s, detail);
  }

  private connect(): void {
    clearTimeout(this.timer);
    if (this.ended) return;
    this.setStatus(this.token ? (navigator.onLine ? "reconnecting" : "offline") : "connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", id: this.nextId++, protocol: 1 }));
      const resume = this.token ? { participant: this.you, token: this.token, last_seq: this.lastSeq } : undefined;
      this.joinId = this.nextId++;
      this.replayed = -1;
      this.wasResume = !!resume;
      ws.send(JSON.stringify({ ...this.hooks.join(resume), id: this.joinId }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let m: ServerMessage;
      try {
        m = JSON.parse(String(ev.data)) as ServerMessage;
      } catch {
        return;
      }
      this.handle(m, ws);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      for (const p of this.pending.values()) p.reject(new CommandError("disconnected", "connection lost"));
      this.pending.clear();
      for (const p of this.offers.values()) p.reject(new CommandError("disconnected", "connection lost"));
      this.offers.clear();
      if (this.ended) return;
      const final = FINAL.get(ev.code);
      if (final) {
        this.ended = true;
        this.setStatus("ended", final);
        return;
      }
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.ended) return;
    if (!navigator.onLine) {
      this.setStatus("offline");
      return; // the "online" event reconnects
    }
    this.setStatus("reconnecting");
    const base = Math.min(10_000, 300 * 2 ** Math.min(this.attempts, 6));
    this.attempts++;
    this.timer = window.setTimeout(() => this.connect(), base / 2 + Math.random() * (base / 2));
  }

  private reconnectNow(): void {
    this.attempts = 0;
    if (this.ws) {
      this.ws.close(4999, "reconnect");
      return; // onclose schedules
    }
    this.connect();
  }

  private handle(m: ServerMessage, ws: WebSocket): void {
    switch (m.type) {
      case "ack":
      case "error": {
        const id = m.id ?? null;
        if (id !== null && id === this.joinId) {
          this.joinId = 0;
          if (m.type === "ack") {
            this.attempts = 0;
            this.setStatus("online");
            if (this.replayed >= 0) this.hooks.resumed?.(this.replayed);
            else if (this.wasResume) this.hooks.resumed?.(-1);
            this.replayed = -1;
            this.startPings(ws);
          } else if (m.code === "resume_failed") {
            // Gone (timed out, kicked): join afresh as a new participant.
            this.token = "";
            this.lastSeq = 0;
            ws.close(4999, "rejoin");
          } else if (m.code === "unavailable" || m.code === "rate_limited") {
            ws.close(4999, "retry");
          } else {
            this.ended = true;
            this.hooks.refused?.(m.code, m.message);
            this.setStatus("ended", m.code);
            ws.close(1000);
          }
          return;
        }
        if (m.type === "error" && id !== null) {
          const offer = this.offers.get(id);
          if (offer) {
            this.offers.delete(id);
            offer.reject(new CommandError(m.code, m.message));
            return;
          }
        }
        if (id !== null) {
          const p = this.pending.get(id);
          if (p) {
            this.pending.delete(id);
            if (m.type === "ack") p.resolve(m);
            else p.reject(new CommandError(m.code, m.message));
          }
        }
        return;
      }
      case "welcome":
      case "stream_welcome": {
        this.you = m.you;
        this.token = m.resume_token;
        this.lastSeq = m.type === "welcome" ? m.room.seq : m.stream.seq;
        this.replayed = -1;
        this.hooks.message(m);
        return;
      }
      case "media_answer": {
        const offer = this.offers.get(m.id);
        this.offers.delete(m.id);
        offer?.resolve(m.sdp);
        return;
      }
      case "resumed": {
        this.you = m.you;
        this.token = m.resume_token;
        this.replayed = 0;
        this.hooks.message(m);
        return;
      }
      default: {
        if (!LOSSY.has(m.type) && "seq" in m && typeof m.seq === "number") {
          if (m.seq <= this.lastSeq) return; // already applied
          if (m.seq !== this.lastSeq + 1) {
            // A gap means our state is broken: resume (section 4).
            ws.close(4999, "gap");
            return;
          }
          this.lastSeq = m.seq;
          if (this.replayed >= 0) this.replayed++;
        }
        this.hooks.message(m);
      }
    }
  }

  /** A ping every 15 s; no ack within 8 s means the path is dead even if the socket is not. */
  private startPings(ws: WebSocket): void {
    clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => {
      if (this.ws !== ws) return;
      const dead = window.setTimeout(() => ws.close(4999, "ping timeout"), 8000);
      this.send({ type: "ping" }).then(
        () => clearTimeout(dead),
        () => clearTimeout(dead),
      );
    }, 15_000);
  }
}
