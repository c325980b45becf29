//! The SFU against str0m peers in one process, on a simulated clock and a simulated network:
//! no sockets, no sleeping. Each peer is a real str0m `Rtc` (ICE, DTLS, SRTP and RTP all run);
//! datagrams go straight from one side's `Transmit` to the other's `handle_input`.
//!
//! Payloads are tagged with the sender's number, so a receiver knows whose frame it got.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use wagu_media::sfu::SfuSession;
use wagu_proto::ErrorCode;
use wagu_proto::ids::{ParticipantId, RequestId};
use wagu_proto::media::{MediaEndReason, MediaGrant, SfuEvent, SfuRequest};

const SFU: &str = "10.0.0.1:5000";

fn room_grant() -> MediaGrant {
    MediaGrant {
        publish_audio: true,
        publish_video: false,
        audio_slots: 4,
        video_slots: 0,
    }
}

fn streamer_grant() -> MediaGrant {
    MediaGrant {
        publish_audio: true,
        publish_video: true,
        audio_slots: 0,
        video_slots: 0,
    }
}

fn viewer_grant() -> MediaGrant {
    MediaGrant {
        publish_audio: false,
        publish_video: false,
        audio_slots: 1,
        video_slots: 1,
    }
}

struct Peer {
    n: u8,
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    audio_out: Option<Mid>,
    video_out: Option<Mid>,
    connected: bool,
    /// (sender tag, keyframe?, arrival) of every frame received.
    got: Vec<(u8, bool, Instant)>,
    keyframe_requests: usize,
    sent_audio: u64,
    sent_video: u64,
}

struct Net {
    start: Instant,
    now: Instant,
    sfu: SfuSession,
    peers: Vec<Peer>,
    events: Vec<SfuEvent>,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        Net {
            start: now,
            now,
            sfu: SfuSession::new(vec![SFU.parse().unwrap()]),
            peers: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A peer that offers to send what `send` says and receive `recv_audio` + `recv_video`
    /// tracks; returns its index and the offer's outcome.
    fn join(
        &mut self,
        send: &[MediaKind],
        recv_audio: usize,
        recv_video: usize,
        grant: MediaGrant,
    ) -> (usize, Result<(), (ErrorCode, String)>) {
        let n = self.peers.len() as u8;
        let addr: SocketAddr = format!("10.0.0.2:{}", 6000 + u16::from(n)).parse().unwrap();
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mut audio_out = None;
        let mut video_out = None;
        for k in send {
            let mid = change.add_media(*k, Direction::SendOnly, Some(format!("p{n}")), None, None);
            match k {
                MediaKind::Audio => audio_out = Some(mid),
                MediaKind::Video => video_out = Some(mid),
            }
        }
        for _ in 0..recv_audio {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        for _ in 0..recv_video {
            change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().unwrap();
        self.peers.push(Peer {
            n,
            rtc,
            addr,
            pending: Some(pending),
            audio_out,
            video_out,
            connected: false,
            got: Vec::new(),
            keyframe_requests: 0,
            sent_audio: 0,
            sent_video: 0,
        });
        let i = self.peers.len() - 1;
        let outcome = self.offer(i, offer.to_sdp_string(), grant);
        (i, outcome)
    }

    fn offer(
        &mut self,
        i: usize,
        sdp: String,
        grant: MediaGrant,
    ) -> Result<(), (ErrorCode, String)> {
        let participant = ParticipantId(u32::from(self.peers[i].n));
        self.sfu.request(
            self.now,
            SfuRequest::Offer {
                participant,
                request: RequestId(7),
                sdp,
                grant,
            },
        );
        let mut outcome = Err((ErrorCode::Internal, "no answer".into()));
        while let Some(e) = self.sfu.poll_event() {
            match &e {
                SfuEvent::Answer { sdp, request, .. } => {
                    assert_eq!(*request, RequestId(7));
                    let answer = SdpAnswer::from_sdp_string(sdp).unwrap();
                    let pending = self.peers[i].pending.take().unwrap();
                    self.peers[i]
                        .rtc
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .unwrap();
                    outcome = Ok(());
                }
                SfuEvent::Refused { code, message, .. } => {
                    outcome = Err((*code, message.clone()));
                }
                _ => {}
            }
            self.events.push(e);
        }
        self.pump();
        outcome
    }

    /// Moves every datagram until the network is quiet.
    fn pump(&mut self) {
        let sfu: SocketAddr = SFU.parse().unwrap();
        let mut to_sfu: VecDeque<(SocketAddr, Vec<u8>)> = VecDeque::new();
        for _ in 0..10_000 {
            let now = self.now;
            for p in &mut self.peers {
                drain_peer(p, now, &mut to_sfu);
            }
            let mut moved = false;
            while let Some((from, data)) = to_sfu.pop_front() {
                moved = true;
                self.sfu.receive(now, from, sfu, &data);
            }
            while let Some(t) = self.sfu.poll_transmit() {
                moved = true;
                if let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination) {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.as_slice().try_into().unwrap(),
                        },
                    );
                    p.rtc.handle_input(input).unwrap();
                }
            }
            while let Some(e) = self.sfu.poll_event() {
                self.events.push(e);
            }
            while self.sfu.poll_route().is_some() {}
            if !moved {
                return;
            }
        }
        panic!("the simulated network never went quiet");
    }

    /// Advances the clock by `d` in 5 ms steps; publishers send 20 ms audio frames and 33 ms
    /// video frames (a keyframe first and whenever asked).
    fn run(&mut self, d: Duration, audio_from: &[usize], video_from: &[usize]) {
        let steps = d.as_millis() / 5;
        for _ in 0..steps {
            self.now += Duration::from_millis(5);
            let now = self.now;
            let elapsed = now.duration_since(self.start);
            for p in &mut self.peers {
                p.rtc.handle_input(Input::Timeout(now)).unwrap();
            }
            self.sfu.timeout(now);
            for &i in audio_from {
                let p = &mut self.peers[i];
                if p.connected && elapsed >= Duration::from_millis(20 * p.sent_audio) {
                    send_audio(p, now);
                }
            }
            for &i in video_from {
                let p = &mut self.peers[i];
                if p.connected && elapsed >= Duration::from_millis(33 * p.sent_video) {
                    send_video(p, now);
                }
            }
            self.pump();
        }
    }

    fn heard(&self, i: usize, from: u8) -> usize {
        self.peers[i].got.iter().filter(|g| g.0 == from).count()
    }
}

fn drain_peer(p: &mut Peer, now: Instant, to_sfu: &mut VecDeque<(SocketAddr, Vec<u8>)>) {
    loop {
        match p.rtc.poll_output().unwrap() {
            Output::Timeout(_) => return,
            Output::Transmit(t) => to_sfu.push_back((p.addr, t.contents.into())),
            Output::Event(e) => match e {
                Event::Connected => p.connected = true,
                Event::MediaData(d) => {
                    let tag = d.data.first().copied().unwrap_or(255);
                    p.got.push((tag, d.is_keyframe(), now));
                }
                Event::KeyframeRequest(r) => {
                    assert_eq!(r.kind, KeyframeRequestKind::Pli);
                    p.keyframe_requests += 1;
                }
                _ => {}
            },
        }
    }
}

fn send_audio(p: &mut Peer, now: Instant) {
    let mid = p.audio_out.unwrap();
    let w = p.rtc.writer(mid).unwrap();
    let pt = w
        .payload_params()
        .find(|pp| pp.spec().codec == Codec::Opus)
        .unwrap()
        .pt();
    let time = MediaTime::new(960 * p.sent_audio, str0m::media::Frequency::FORTY_EIGHT_KHZ);
    // Louder the lower the number: peer 0 is the loudest.
    let level = -(20 + 10 * i8::try_from(p.n).unwrap());
    w.audio_level(level, true)
        .write(pt, now, time, vec![p.n, 0xfc, 0xff, 0xfe])
        .unwrap();
    p.sent_audio += 1;
}

fn send_video(p: &mut Peer, now: Instant) {
    let mid = p.video_out.unwrap();
    let key = p.sent_video == 0 || p.keyframe_requests > 0;
    p.keyframe_requests = 0;
    let w = p.rtc.writer(mid).unwrap();
    let pt = w
        .payload_params()
        .find(|pp| pp.spec().codec == Codec::Vp8)
        .unwrap()
        .pt();
    let time = MediaTime::new(3000 * p.sent_video, str0m::media::Frequency::NINETY_KHZ);
    // A VP8 frame header: bit 0 of the first byte clear means a keyframe, which then carries
    // the start code 9d 01 2a and the size. The tag rides in the second byte's place.
    let frame = if key {
        vec![
            0x50, p.n, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3, 4,
        ]
    } else {
        vec![0x51, p.n, 0x00, 9, 8, 7, 6, 5]
    };
    w.write(pt, now, time, frame).unwrap();
    p.sent_video += 1;
}

#[test]
fn three_peers_hear_each_other_and_not_themselves() {
    let mut net = Net::new();
    for _ in 0..3 {
        let (_, r) = net.join(&[MediaKind::Audio], 3, 0, room_grant());
        r.unwrap();
    }
    net.run(Duration::from_secs(2), &[0, 1, 2], &[]);
    for i in 0..3 {
        assert!(net.peers[i].connected, "peer {i} connected");
        for from in 0..3u8 {
            let n = net.heard(i, from);
            if usize::from(from) == i {
                assert_eq!(n, 0, "peer {i} must not hear itself");
            } else {
                assert!(n > 40, "peer {i} heard only {n} frames from {from}");
            }
        }
    }
    // Everyone publishes; speaking is ordered loudest first.
    let peers = net
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            SfuEvent::Peers(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| p.audio && !p.video && !p.muted));
    let speaking = net
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            SfuEvent::Speaking(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        speaking,
        vec![ParticipantId(0), ParticipantId(1), ParticipantId(2)]
    );
}

#[test]
fn a_muted_peer_goes_silent_for_the_others() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.join(&[MediaKind::Audio], 3, 0, room_grant()).1.unwrap();
    }
    net.run(Duration::from_secs(1), &[0, 1, 2], &[]);
    net.sfu.request(
        net.now,
        SfuRequest::Mute {
            participant: ParticipantId(0),
            muted: true,
        },
    );
    net.run(Duration::from_millis(100), &[0, 1, 2], &[]);
    let before = (net.heard(1, 0), net.heard(2, 0), net.heard(1, 2));
    net.run(Duration::from_secs(1), &[0, 1, 2], &[]);
    assert_eq!(net.heard(1, 0), before.0, "peer 1 still hears muted peer 0");
    assert_eq!(net.heard(2, 0), before.1, "peer 2 still hears muted peer 0");
    assert!(net.heard(1, 2) > before.2 + 30, "unmuted peers still talk");
    assert!(net.sfu.counters().dropped_muted > 30);
    // Unmuted, it is heard again.
    net.sfu.request(
        net.now,
        SfuRequest::Mute {
            participant: ParticipantId(0),
            muted: false,
        },
    );
    net.run(Duration::from_millis(500), &[0, 1, 2], &[]);
    assert!(net.heard(1, 0) > before.0 + 10);
}

#[test]
fn only_the_loudest_speakers_fill_a_listeners_slots() {
    let mut net = Net::new();
    // Four talkers, and a listener with two slots: it gets the two loudest (0 and 1).
    for _ in 0..4 {
        net.join(&[MediaKind::Audio], 4, 0, room_grant()).1.unwrap();
    }
    let (listener, r) = net.join(
        &[],
        2,
        0,
        MediaGrant {
            audio_slots: 2,
            ..room_grant()
        },
    );
    r.unwrap();
    net.run(Duration::from_secs(2), &[0, 1, 2, 3], &[]);
    let recent = |from: u8| {
        let cut = net.now - Duration::from_millis(500);
        net.peers[listener]
            .got
            .iter()
            .filter(|g| g.0 == from && g.2 > cut)
            .count()
    };
    assert!(recent(0) > 15, "loudest heard: {}", recent(0));
    assert!(recent(1) > 15, "second loudest heard: {}", recent(1));
    assert_eq!(recent(2) + recent(3), 0, "quieter speakers take no slot");
}

#[test]
fn a_late_viewer_gets_a_picture_starting_with_a_keyframe() {
    let mut net = Net::new();
    let (streamer, r) = net.join(
        &[MediaKind::Audio, MediaKind::Video],
        0,
        0,
        streamer_grant(),
    );
    r.unwrap();
    let (early, r) = net.join(&[], 1, 1, viewer_grant());
    r.unwrap();
    net.run(Duration::from_secs(2), &[streamer], &[streamer]);
    assert!(
        net.peers[early].got.iter().any(|g| g.1),
        "the early viewer got a keyframe"
    );

    let (late, r) = net.join(&[], 1, 1, viewer_grant());
    r.unwrap();
    let joined = net.now;
    net.run(Duration::from_secs(1), &[streamer], &[streamer]);
    let late_peer = &net.peers[late];
    assert!(late_peer.connected);
    let video: Vec<_> = late_peer
        .got
        .iter()
        .filter(|g| g.1 || g.0 == 0x51)
        .collect();
    let first_key = late_peer
        .got
        .iter()
        .find(|g| g.1)
        .expect("a keyframe reached the late viewer");
    assert!(
        first_key.2.duration_since(joined) < Duration::from_millis(500),
        "first keyframe after {:?}",
        first_key.2.duration_since(joined)
    );
    // No delta frame before that keyframe.
    let first_video = late_peer.got.iter().find(|g| g.1 || g.0 == 0x51).unwrap();
    assert!(first_video.1, "the first video frame is a keyframe");
    assert!(video.len() > 10);
    assert!(net.sfu.counters().keyframe_requests >= 1);
    // Audio reaches viewers too.
    assert!(late_peer.got.iter().any(|g| g.0 == 0 && !g.1));
}

#[test]
fn a_viewer_offering_to_send_is_refused_and_nothing_else_breaks() {
    let mut net = Net::new();
    let (_, r) = net.join(&[MediaKind::Audio], 3, 0, room_grant());
    r.unwrap();
    let (_, r) = net.join(&[MediaKind::Video], 0, 1, viewer_grant());
    let (code, message) = r.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.contains("recvonly"), "{message}");
    // Malformed SDP.
    net.sfu.request(
        net.now,
        SfuRequest::Offer {
            participant: ParticipantId(9),
            request: RequestId(1),
            sdp: "v=0\r\nthis is not sdp".into(),
            grant: room_grant(),
        },
    );
    match net.sfu.poll_event() {
        Some(SfuEvent::Refused { code, .. }) => assert_eq!(code, ErrorCode::Invalid),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(net.sfu.participants(), vec![ParticipantId(0)]);
}

#[test]
fn a_peer_that_never_connects_is_ended_and_its_routes_removed() {
    let mut net = Net::new();
    let participant = ParticipantId(3);
    // An offer whose client never sends a single packet.
    let mut rtc = Rtc::builder().build(net.now);
    rtc.add_local_candidate(Candidate::host("10.0.0.9:1".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().unwrap();
    net.sfu.request(
        net.now,
        SfuRequest::Offer {
            participant,
            request: RequestId(1),
            sdp: offer.to_sdp_string(),
            grant: room_grant(),
        },
    );
    while net.sfu.poll_event().is_some() {}
    let mut routes = Vec::new();
    while let Some(r) = net.sfu.poll_route() {
        routes.push(r);
    }
    assert_eq!(routes.len(), 1, "{routes:?}");
    for _ in 0..40 {
        net.now += Duration::from_secs(1);
        net.sfu.timeout(net.now);
        while net.sfu.poll_transmit().is_some() {}
    }
    let mut ended = false;
    while let Some(e) = net.sfu.poll_event() {
        if e == (SfuEvent::Ended {
            participant,
            reason: MediaEndReason::Disconnected,
        }) {
            ended = true;
        }
    }
    assert!(ended);
    assert!(net.sfu.participants().is_empty());
    let removed: Vec<_> = std::iter::from_fn(|| net.sfu.poll_route()).collect();
    assert!(
        removed
            .iter()
            .any(|r| matches!(r, wagu_media::sfu::Route::RemoveUfrag(_)))
    );
}
