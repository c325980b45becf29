#!/usr/bin/env python3
"""WebRTC peers written by somebody else (aiortc) against a running Wagu, for the SFU tests.

Each peer speaks the Wagu protocol over the WebSocket (docs/PROTOCOL.md: hello, join or
join_stream, media_offer -> media_answer, media_mute), then sends and receives real Opus
(and VP8) through the server's SFU. What each peer decoded is printed as one JSON document on
stdout; gateway/tests/media_aiortc.rs starts this script and judges the figures.

  peers.py room   --ws URL --share TOKEN [--seconds S]
      three peers send 440, 660 and 880 Hz tones; after S seconds peer 0 mutes itself for S
      more seconds. Reports, per peer and window, the energy each tone has in what it decoded.
  peers.py stream --ws URL --stream ID --streamer-key KEY [--seconds S]
      a streamer sends a 440 Hz tone and VP8 video; one viewer watches from the start, a late
      one joins after S seconds. Reports decoded frames and the late viewer's time to its
      first picture.
"""

import argparse
import asyncio
import fractions
import json
import sys
import time

import aioice.ice
import numpy as np
import websockets
from aiortc import (
    AudioStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from av import AudioFrame, VideoFrame

# aioice leaves 127.0.0.1 out of its host candidates; the SFU under test listens on loopback.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

RATE = 48000
SAMPLES = 960  # 20 ms


class Tone(AudioStreamTrack):
    """A pure tone, paced at 20 ms a frame (aiortc's own track does not pace generated audio)."""

    def __init__(self, freq):
        super().__init__()
        self.freq = freq
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.n * SAMPLES / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(SAMPLES) + self.n * SAMPLES) / RATE
        pcm = (np.sin(2 * np.pi * self.freq * t) * 12000).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.n * SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += 1
        return frame


class Picture(VideoStreamTrack):
    """A moving colour bar, 320x240."""

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.zeros((240, 320, 3), dtype=np.uint8)
        x = (pts // 3000) % 320
        img[:, max(0, x - 20) : x, :] = (255, 128, 0)
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class Conn:
    """One WebSocket to Wagu: numbered requests, replies matched by id."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.replies = {}
        self.frames = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            self.frames.append(msg)
            rid = msg.get("id")
            if rid is not None and rid in self.replies:
                self.replies.pop(rid).set_result(msg)

    async def request(self, msg):
        rid = self.next_id
        self.next_id += 1
        fut = asyncio.get_event_loop().create_future()
        self.replies[rid] = fut
        await self.ws.send(json.dumps({**msg, "id": rid}))
        return await asyncio.wait_for(fut, 10)


async def open_conn(url):
    ws = await websockets.connect(url, max_size=2**20)
    c = Conn(ws)
    r = await c.request({"type": "hello", "protocol": 1})
    assert r["type"] == "ack", r
    return c


class Peer:
    def __init__(self, name):
        self.name = name
        self.pc = RTCPeerConnection()
        self.audio = []  # (arrival, track index, samples)
        self.video_frames = 0
        self.first_video = None
        self.tracks = 0
        self.pc.on("track", self._on_track)

    def _on_track(self, track):
        index = self.tracks
        self.tracks += 1
        if track.kind == "audio":
            asyncio.ensure_future(self._drain_audio(track, index))
        else:
            asyncio.ensure_future(self._drain_video(track))

    async def _drain_audio(self, track, index):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            pcm = frame.to_ndarray().astype(np.float64)
            if pcm.ndim == 2 and frame.layout.name == "stereo" and pcm.shape[0] == 1:
                pcm = pcm.reshape(-1, 2).mean(axis=1)
            self.audio.append((time.monotonic(), index, pcm.reshape(-1), frame.sample_rate))

    async def _drain_video(self, track):
        while True:
            try:
                await track.recv()
            except Exception:
                return
            self.video_frames += 1
            if self.first_video is None:
                self.first_video = time.monotonic()

    async def connect_media(self, conn):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await conn.request({"type": "media_offer", "sdp": self.pc.localDescription.sdp})
        if reply["type"] != "media_answer":
            raise RuntimeError(f"{self.name}: offer refused: {reply}")
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        return reply

    def energies(self, start, end, freqs):
        """Energy of each frequency in everything decoded between start and end, per track."""
        per_track = {}
        rate = RATE
        for at, idx, pcm, sr in self.audio:
            if start <= at < end:
                per_track.setdefault(idx, []).append(pcm)
                rate = sr
        out = {}
        for idx, chunks in per_track.items():
            x = np.concatenate(chunks)
            if len(x) < rate // 10:
                continue
            spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
            bins = np.fft.rfftfreq(len(x), 1 / rate)
            total = float(np.sum(spectrum**2)) or 1.0
            peak = float(bins[int(np.argmax(spectrum[1:])) + 1])
            share = {}
            for f in freqs:
                band = (bins > f - 15) & (bins < f + 15)
                share[str(f)] = float(np.sum(spectrum[band] ** 2)) / total
            out[str(idx)] = {
                "peak_hz": peak,
                "rms": float(np.sqrt(np.mean(x**2))),
                "samples": int(len(x)),
                "share": share,
            }
        return out


async def room(args):
    freqs = [440, 660, 880]
    peers, conns = [], []
    for i, f in enumerate(freqs):
        c = await open_conn(args.ws)
        r = await c.request({"type": "join", "share": args.share, "name": f"tone{f}"})
        assert r["type"] == "ack", r
        p = Peer(f"tone{f}")
        p.pc.addTransceiver(Tone(f), direction="sendonly")
        for _ in range(2):
            p.pc.addTransceiver("audio", direction="recvonly")
        peers.append(p)
        conns.append(c)
    for p, c in zip(peers, conns):
        await p.connect_media(c)
    t0 = time.monotonic()
    await asyncio.sleep(args.seconds)
    t1 = time.monotonic()
    r = await conns[0].request({"type": "media_mute", "muted": True})
    assert r["type"] == "ack", r
    await asyncio.sleep(0.5)
    t2 = time.monotonic()
    await asyncio.sleep(args.seconds)
    t3 = time.monotonic()
    report = {"peers": []}
    for i, (p, c) in enumerate(zip(peers, conns)):
        report["peers"].append(
            {
                "freq": freqs[i],
                # Skip the first second: ICE, DTLS and the jitter buffer settling.
                "before_mute": p.energies(t0 + 1.0, t1, freqs),
                "after_mute": p.energies(t2, t3, freqs),
                "media_state": [f for f in c.frames if f.get("type") == "media_state"][-1:],
            }
        )
    for p in peers:
        await p.pc.close()
    for c in conns:
        await c.ws.close()
    return report


async def stream(args):
    streamer_conn = await open_conn(args.ws)
    r = await streamer_conn.request(
        {
            "type": "join_stream",
            "stream": args.stream,
            "name": "chef",
            "streamer_key": args.streamer_key,
        }
    )
    assert r["type"] == "ack", r
    streamer = Peer("streamer")
    streamer.pc.addTransceiver(Tone(440), direction="sendonly")
    streamer.pc.addTransceiver(Picture(), direction="sendonly")
    await streamer.connect_media(streamer_conn)

    async def viewer(name):
        c = await open_conn(args.ws)
        r = await c.request({"type": "join_stream", "stream": args.stream, "name": name})
        assert r["type"] == "ack", r
        v = Peer(name)
        v.pc.addTransceiver("audio", direction="recvonly")
        v.pc.addTransceiver("video", direction="recvonly")
        asked = time.monotonic()
        await v.connect_media(c)
        return v, c, asked

    early, early_conn, _ = await viewer("early")
    # A viewer may not publish: an offer with a sending track is refused.
    intruder_conn = await open_conn(args.ws)
    await intruder_conn.request({"type": "join_stream", "stream": args.stream, "name": "intruder"})
    intruder = RTCPeerConnection()
    intruder.addTransceiver(Tone(300), direction="sendonly")
    await intruder.setLocalDescription(await intruder.createOffer())
    refused = await intruder_conn.request(
        {"type": "media_offer", "sdp": intruder.localDescription.sdp}
    )
    await intruder.close()

    await asyncio.sleep(args.seconds)
    late, late_conn, late_asked = await viewer("late")
    await asyncio.sleep(args.seconds)
    t_end = time.monotonic()
    report = {
        "early_frames": early.video_frames,
        "late_frames": late.video_frames,
        "late_first_picture_s": None
        if late.first_video is None
        else late.first_video - late_asked,
        "late_audio": late.energies(t_end - args.seconds + 0.5, t_end, [440]),
        "intruder_reply": refused,
    }
    for p in (streamer, early, late):
        await p.pc.close()
    for c in (streamer_conn, early_conn, late_conn, intruder_conn):
        await c.ws.close()
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["room", "stream"])
    ap.add_argument("--ws", required=True)
    ap.add_argument("--share")
    ap.add_argument("--stream")
    ap.add_argument("--streamer-key")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    run = room if args.mode == "room" else stream
    report = asyncio.run(asyncio.wait_for(run(args), 120))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
