// Voice and video through the server's SFU (docs/PROTOCOL.md section 13): one
// RTCPeerConnection, its signalling on the session's WebSocket (media_offer → media_answer,
// media_mute, media_leave). The shape of the offer is the server's contract:
//   talker   (map room):  sendonly microphone + 4 recvonly audio slots (the loudest others);
//   streamer (stream):    sendonly microphone + sendonly camera;
//   viewer   (stream):    recvonly audio + recvonly video.
// The media elements live as long as the link, outside any re-rendered DOM: pages place
// `elements` where they want them and call `replay()` after moving them.

import type { ServerMessage } from "./gen/protocol";
import type { Session } from "./session";

export type MediaRole = "talker" | "streamer" | "viewer";

/** Receive slots a talker offers (the server fills at most this many). */
const VOICE_SLOTS = 4;

export class MediaLink {
  private pc: RTCPeerConnection | null = null;
  private local: MediaStream | null = null;
  /** Remote audio (one element per slot) and, for streams, the one video element. */
  readonly audio: HTMLAudioElement[] = [];
  readonly video: HTMLVideoElement;
  muted = false;
  state: "off" | "connecting" | "on" = "off";
  /** Publishing participants (from `media_state`) and who speaks now. */
  peers: { participant: number; audio: boolean; video: boolean; muted: boolean }[] = [];
  speaking: number[] = [];
  onchange: () => void = () => undefined;

  constructor(private session: Session, private role: MediaRole) {
    this.video = document.createElement("video");
    this.video.id = role === "streamer" ? "local-video" : "remote-video";
    this.video.className = "media-video";
    this.video.autoplay = true;
    this.video.playsInline = true;
    // Autoplay with sound needs a gesture; the page offers "sound on" (viewer) and never
    // plays the streamer's own microphone back.
    this.video.muted = true;
  }

  get active(): boolean {
    return this.state !== "off";
  }

  /** Starts (or restarts: after a resume the server needs a fresh offer) the media. */
  async start(): Promise<void> {
    this.close();
    this.state = "connecting";
    this.onchange();
    try {
      if (this.role !== "viewer" && !this.local) {
        this.local = await navigator.mediaDevices.getUserMedia(
          this.role === "streamer" ? { audio: true, video: { width: 640, height: 360 } } : { audio: true },
        );
        if (this.role === "streamer") this.video.srcObject = this.local;
      }
      const pc = new RTCPeerConnection();
      this.pc = pc;
      const mic = this.local?.getAudioTracks()[0];
      if (mic) mic.enabled = !this.muted;
      if (this.role === "talker") {
        pc.addTransceiver(mic!, { direction: "sendonly" });
        for (let i = 0; i < VOICE_SLOTS; i++) pc.addTransceiver("audio", { direction: "recvonly" });
      } else if (this.role === "streamer") {
        pc.addTransceiver(mic!, { direction: "sendonly" });
        pc.addTransceiver(this.local!.getVideoTracks()[0]!, { direction: "sendonly" });
      } else {
        pc.addTransceiver("audio", { direction: "recvonly" });
        pc.addTransceiver("video", { direction: "recvonly" });
      }
      const remoteVideo = new MediaStream();
      pc.ontrack = (e) => {
        if (e.track.kind === "audio") {
          const a = document.createElement("audio");
          a.className = "remote-audio";
          a.autoplay = true;
          a.srcObject = new MediaStream([e.track]);
          this.audio.push(a);
          if (this.role === "viewer") remoteVideo.addTrack(e.track);
        } else {
          remoteVideo.addTrack(e.track);
          this.video.srcObject = remoteVideo;
        }
        this.onchange();
      };
      pc.onconnectionstatechange = () => {
        if (pc !== this.pc) return;
        if (pc.connectionState === "connected") this.state = "on";
        if (pc.connectionState === "failed") this.close();
        this.onchange();
      };
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 2000);
      const answer = await this.session.offerMedia(pc.localDescription!.sdp);
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      if (this.muted && this.role !== "viewer") await this.session.send({ type: "media_mute", muted: true });
    } catch (e) {
      this.close();
      this.onchange();
      throw e;
    }
  }

  /** Mutes or unmutes the microphone; the server stops forwarding it too. */
  async setMuted(muted: boolean): Promise<void> {
    this.muted = muted;
    const mic = this.local?.getAudioTracks()[0];
    if (mic) mic.enabled = !muted;
    this.onchange();
    if (this.pc) await this.session.send({ type: "media_mute", muted });
  }

  /** Ends the media (and tells the server). */
  async leave(): Promise<void> {
    const had = this.pc !== null;
    this.close();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.local = null;
    this.video.srcObject = null;
    this.onchange();
    if (had) await this.session.send({ type: "media_leave" }).catch(() => undefined);
  }

  /** Session frames that concern media. */
  handle(m: ServerMessage): void {
    if (m.type === "media_state") this.peers = m.peers;
    else if (m.type === "speaking") this.speaking = m.participants;
    else if (m.type === "media_ended") this.close();
    else return;
    this.onchange();
  }

  /** Media elements pause when a re-render moves them: play them again. */
  replay(): void {
    for (const el of [this.video, ...this.audio]) {
      if (el.srcObject && el.paused) void el.play().catch(() => undefined);
    }
  }

  private close(): void {
    this.pc?.close();
    this.pc = null;
    for (const a of this.audio) a.remove();
    this.audio.length = 0;
    if (this.role !== "streamer") this.video.srcObject = null;
    this.state = "off";
  }
}

/** Waits until ICE gathering is complete (host candidates go in the offer), at most `ms`. */
function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
