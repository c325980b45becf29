//! One session's SFU as a sans-IO state machine: every peer's str0m [`Rtc`], and the rules that
//! forward one peer's media to the others.
//!
//! What it does: turns an admitted SDP offer into a peer and its answer; feeds each datagram to
//! the peer it belongs to; forwards a publisher's Opus (and VP8/H.264) frames into the receive
//! *slots* of every subscriber — a fixed number of audio slots filled by the loudest speakers
//! (RFC 6464 levels), so a client's SDP never grows with the room; rewrites RTP time per slot
//! so that a slot switching speakers stays continuous; asks a publisher for a keyframe when a
//! viewer starts watching (throttled) and passes viewers' own requests on; drops a muted
//! publisher's audio; reports who publishes and who speaks. Time comes in as an `Instant`
//! (tests pass a simulated clock), datagrams go out through [`SfuSession::poll_transmit`].
//!
//! What it does not do: sockets or tasks (`node.rs`), admission (the session's actor decided
//! before the offer got here), simulcast layer selection or bandwidth estimation.
//!
//! str0m's rule is kept everywhere: after any call that changes an `Rtc` (input, SDP, a write,
//! a keyframe request) its `poll_output` is drained until `Output::Timeout`.
//!
//! Why one file of ~950 lines: one session's SFU is one state machine over every peer's `Rtc`
//! (admission, slot assignment, RTP rewriting, keyframes); its forwarding rules read the same
//! peer table.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use wagu_proto::ErrorCode;
use wagu_proto::ids::{ParticipantId, RequestId};
use wagu_proto::media::{MediaEndReason, MediaGrant, MediaPeer, SfuEvent, SfuRequest};

/// How often slots are re-ranked and the speaking list is recomputed.
const REBALANCE_EVERY: Duration = Duration::from_millis(200);
/// A publisher whose audio stopped this long ago no longer holds slots.
const AUDIO_ACTIVE_FOR: Duration = Duration::from_secs(2);
/// At most one keyframe request per publisher in this window.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);
/// A peer that has not connected this long after its answer is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 6464 level (-dBov, 0 loudest … 127 silent) at or under which a speaker counts as speaking.
const SPEAKING_LEVEL: f32 = 50.0;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A change to how the node's socket routes datagrams to this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// STUN requests naming this local ICE ufrag belong to this session.
    AddUfrag(String),
    RemoveUfrag(String),
    /// Datagrams from this remote address belong to this session.
    AddAddr(SocketAddr),
    RemoveAddr(SocketAddr),
}

/// Counters the driver turns into metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub keyframe_requests: u64,
    pub dropped_muted: u64,
    /// NACKs the SFU sent publishers (it lost their packets) and received from subscribers.
    pub nacks_sent: u64,
    pub nacks_received: u64,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    out: u64,
    freq: u32,
    at: Instant,
    source: ParticipantId,
}

#[derive(Debug)]
struct Slot {
    mid: Mid,
    kind: MediaKind,
    source: Option<ParticipantId>,
    /// Added to the source's RTP time: keeps the slot's clock continuous across speakers.
    offset: i64,
    /// What was last written on this slot.
    last: Option<Last>,
    /// Video: nothing is forwarded until a keyframe from the current source arrives.
    awaiting_keyframe: bool,
}

struct Peer {
    participant: ParticipantId,
    rtc: Rtc,
    grant: MediaGrant,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    audio_in: Option<Mid>,
    video_in: Option<Mid>,
    slots: Vec<Slot>,
    muted: bool,
    connected: bool,
    /// Smoothed RFC 6464 level (lower is louder); 127 when unknown.
    level: f32,
    last_audio: Option<Instant>,
    last_keyframe_request: Option<Instant>,
    timeout: Instant,
    created: Instant,
    candidates: usize,
    /// Cumulative NACK counts str0m last reported, per mid (ingress, egress).
    nacks_in: Vec<(Mid, u64)>,
    nacks_out: Vec<(Mid, u64)>,
}

/// What a drained peer produced that concerns other peers.
#[allow(clippy::large_enum_variant)] // short-lived, drained at once; boxing each frame costs more
enum Propagate {
    Media(ParticipantId, MediaData),
    /// A subscriber asks for a keyframe on the slot fed by this publisher.
    Keyframe(ParticipantId, KeyframeRequestKind),
    Connected(ParticipantId),
    Dead(ParticipantId),
}

/// Every media peer of one session.
pub struct SfuSession {
    /// Host candidates advertised to every peer (the node's public addresses).
    local: Vec<SocketAddr>,
    peers: Vec<Peer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SfuEvent>,
    routes: VecDeque<Route>,
    next_rebalance: Option<Instant>,
    last_peers: Vec<MediaPeer>,
    last_speaking: Vec<ParticipantId>,
    counters: Counters,
    /// Fractions lost (RTCP), `true` for what publishers sent us, `false` for what subscribers
    /// report losing of ours; drained by the driver into a histogram.
    losses: Vec<(bool, f32)>,
}

impl SfuSession {
    /// A session whose peers reach the SFU at `local` (each becomes a host candidate).
    pub fn new(local: Vec<SocketAddr>) -> Self {
        SfuSession {
            local,
            peers: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            routes: VecDeque::new(),
            next_rebalance: None,
            last_peers: Vec::new(),
            last_speaking: Vec::new(),
            counters: Counters::default(),
            losses: Vec::new(),
        }
    }

    /// Publishers and subscribers, for metrics.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Every participant with a peer.
    pub fn participants(&self) -> Vec<ParticipantId> {
        self.peers.iter().map(|p| p.participant).collect()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Applies one request of the session's actor.
    pub fn request(&mut self, now: Instant, request: SfuRequest) {
        match request {
            SfuRequest::Offer {
                participant,
                request,
                sdp,
                grant,
            } => self.offer(now, participant, request, &sdp, grant),
            SfuRequest::Candidate {
                participant,
                candidate,
            } => {
                if let Some(i) = self.index(participant) {
                    let line = candidate.strip_prefix("a=").unwrap_or(&candidate);
                    match Candidate::from_sdp_string(line) {
                        Ok(c) => {
                            self.peers[i].candidates += 1;
                            self.peers[i].rtc.add_remote_candidate(c);
                            self.drain_all(now, vec![i]);
                        }
                        Err(e) => tracing::debug!(%participant, error = %e, "bad ICE candidate"),
                    }
                }
            }
            SfuRequest::Mute { participant, muted } => {
                if let Some(i) = self.index(participant) {
                    self.peers[i].muted = muted;
                    self.report_peers();
                }
            }
            SfuRequest::End {
                participant,
                reason: _,
            } => {
                // Asked for by the session: it already told the client.
                self.remove(participant, None);
            }
            SfuRequest::Close => {
                let all: Vec<_> = self.peers.iter().map(|p| p.participant).collect();
                for p in all {
                    self.remove(p, None);
                }
            }
        }
        self.schedule(now);
    }

    /// Feeds one datagram; false when no peer of this session accepts it.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let by_ufrag = crate::demux::stun_local_ufrag(data)
            .and_then(|u| self.peers.iter().position(|p| p.ufrag == u));
        let found = by_ufrag
            .or_else(|| self.peers.iter().position(|p| p.addrs.contains(&source)))
            .or_else(|| self.peers.iter().position(|p| p.rtc.accepts(&input)));
        let Some(i) = found else {
            return false;
        };
        if !self.peers[i].addrs.contains(&source) {
            self.peers[i].addrs.push(source);
            self.routes.push_back(Route::AddAddr(source));
        }
        if let Err(e) = self.peers[i].rtc.handle_input(input) {
            tracing::debug!(participant = %self.peers[i].participant, error = %e, "peer input failed");
            self.peers[i].rtc.disconnect();
        }
        self.drain_all(now, vec![i]);
        self.schedule(now);
        true
    }

    /// Time passed: str0m's timers, slot ranking, connect timeouts.
    pub fn timeout(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.peers.len())
            .filter(|&i| self.peers[i].timeout <= now)
            .collect();
        for &i in &due {
            if let Err(e) = self.peers[i].rtc.handle_input(Input::Timeout(now)) {
                tracing::debug!(error = %e, "peer timeout failed");
                self.peers[i].rtc.disconnect();
            }
        }
        self.drain_all(now, due);
        let stale: Vec<ParticipantId> = self
            .peers
            .iter()
            .filter(|p| !p.connected && now.duration_since(p.created) > CONNECT_TIMEOUT)
            .map(|p| p.participant)
            .collect();
        for p in stale {
            self.remove(p, Some(MediaEndReason::Disconnected));
        }
        if self.next_rebalance.is_some_and(|t| t <= now) {
            self.rebalance(now);
        }
        self.schedule(now);
    }

    /// When [`SfuSession::timeout`] must be called next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let peers = self.peers.iter().map(|p| p.timeout).min();
        match (peers, self.next_rebalance) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    /// Loss fractions reported since the last call (`true`: ingress).
    pub fn drain_losses(&mut self) -> Vec<(bool, f32)> {
        std::mem::take(&mut self.losses)
    }

    pub fn poll_route(&mut self) -> Option<Route> {
        self.routes.pop_front()
    }

    fn index(&self, p: ParticipantId) -> Option<usize> {
        self.peers.iter().position(|x| x.participant == p)
    }

    fn schedule(&mut self, now: Instant) {
        if self.peers.is_empty() {
            self.next_rebalance = None;
        } else if self.next_rebalance.is_none() {
            self.next_rebalance = Some(now + REBALANCE_EVERY);
        }
    }

    fn offer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        request: RequestId,
        sdp: &str,
        grant: MediaGrant,
    ) {
        // A new offer replaces the participant's peer (a reconnect after a resume): the
        // session's seat now belongs to the new offer, so no `Ended` for the old one.
        self.remove(participant, None);
        let refuse = |code, message: String| SfuEvent::Refused {
            participant,
            request,
            code,
            message,
        };
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.events.push_back(refuse(
                    ErrorCode::Invalid,
                    format!("malformed SDP offer: {e}"),
                ));
                return;
            }
        };
        let creds = IceCreds::new();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        for addr in &self.local {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "cannot advertise media address"),
            }
        }
        let answer = match rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                self.events.push_back(refuse(
                    ErrorCode::Invalid,
                    format!("unusable SDP offer: {e}"),
                ));
                return;
            }
        };
        let mut peer = Peer {
            participant,
            rtc,
            grant,
            ufrag: creds.ufrag.clone(),
            addrs: Vec::new(),
            audio_in: None,
            video_in: None,
            slots: Vec::new(),
            muted: false,
            connected: false,
            level: 127.0,
            last_audio: None,
            last_keyframe_request: None,
            timeout: now,
            created: now,
            candidates: 0,
            nacks_in: Vec::new(),
            nacks_out: Vec::new(),
        };
        // Each m-line of the offer, as the answer takes it, is checked against the grant. (str0m
        // reports `MediaAdded` only once DTLS is up: too late to refuse the offer.)
        let mut forbidden = None;
        for mid in offered_mids(sdp) {
            let Some(m) = peer.rtc.media(mid) else {
                continue; // the data channel's m-line, or one str0m did not take
            };
            let (kind, direction) = (m.kind(), m.direction());
            if let Err(why) = add_media(&mut peer, mid, kind, direction) {
                forbidden = Some(why);
            }
        }
        let mut sends = Vec::new();
        loop {
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    peer.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => sends.push(t),
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    forbidden = Some(format!("the offer could not be applied: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = forbidden {
            self.events.push_back(refuse(ErrorCode::Forbidden, why));
            return;
        }
        if peer.audio_in.is_none() && peer.video_in.is_none() && peer.slots.is_empty() {
            self.events.push_back(refuse(
                ErrorCode::Invalid,
                "the offer has no audio or video m-line this session can use".into(),
            ));
            return;
        }
        for t in sends {
            self.push_transmit(t);
        }
        self.routes.push_back(Route::AddUfrag(peer.ufrag.clone()));
        self.events.push_back(SfuEvent::Answer {
            participant,
            request,
            sdp: candidates_in_every_section(&answer.to_sdp_string()),
        });
        self.peers.push(peer);
        self.report_peers();
    }

    /// Removes a participant's peer; `reason` tells the session when it did not ask for it.
    fn remove(&mut self, participant: ParticipantId, reason: Option<MediaEndReason>) {
        let Some(i) = self.index(participant) else {
            return;
        };
        let mut peer = self.peers.swap_remove(i);
        peer.rtc.disconnect();
        self.routes.push_back(Route::RemoveUfrag(peer.ufrag));
        for a in peer.addrs {
            self.routes.push_back(Route::RemoveAddr(a));
        }
        for other in &mut self.peers {
            for s in &mut other.slots {
                if s.source == Some(participant) {
                    s.source = None;
                }
            }
        }
        if let Some(reason) = reason {
            self.events.push_back(SfuEvent::Ended {
                participant,
                reason,
            });
        }
        self.report_peers();
    }

    fn push_transmit(&mut self, t: str0m::net::Transmit) {
        self.transmits.push_back(Transmit {
            source: t.source,
            destination: t.destination,
            contents: t.contents.into(),
        });
    }

    /// Drains every peer in `dirty`, then every peer that draining made dirty (forwarded media
    /// is a write into another peer), until nothing is left to do.
    fn drain_all(&mut self, now: Instant, mut dirty: Vec<usize>) {
        let mut guard = 0;
        while let Some(i) = dirty.pop() {
            guard += 1;
            if guard > 10_000 {
                tracing::error!("SFU drain did not settle; dropping the rest of this batch");
                break;
            }
            let props = self.drain(i);
            for p in props {
                match p {
                    Propagate::Media(from, data) => self.forward(now, from, data, &mut dirty),
                    Propagate::Keyframe(from, kind) => {
                        if let Some(j) = self.index(from) {
                            self.request_keyframe(now, j, kind);
                            dirty.push(j);
                        }
                    }
                    Propagate::Connected(p) => {
                        // A viewer just connected: its video slots need a keyframe.
                        if let Some(j) = self.index(p) {
                            let sources: Vec<ParticipantId> = self.peers[j]
                                .slots
                                .iter()
                                .filter(|s| s.kind == MediaKind::Video)
                                .filter_map(|s| s.source)
                                .collect();
                            for s in sources {
                                if let Some(k) = self.index(s) {
                                    self.request_keyframe(now, k, KeyframeRequestKind::Pli);
                                    dirty.push(k);
                                }
                            }
                        }
                    }
                    Propagate::Dead(p) => {
                        self.remove(p, Some(MediaEndReason::Disconnected));
                        // Indices moved: drain everyone that is left once more.
                        dirty = (0..self.peers.len()).collect();
                    }
                }
            }
        }
    }

    /// Drains one peer's `poll_output` to its timeout.
    fn drain(&mut self, i: usize) -> Vec<Propagate> {
        let mut props = Vec::new();
        let Some(peer) = self.peers.get_mut(i) else {
            return props;
        };
        let who = peer.participant;
        let mut sends = Vec::new();
        loop {
            if !peer.rtc.is_alive() {
                props.push(Propagate::Dead(who));
                break;
            }
            match peer.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    peer.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => sends.push(t),
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        peer.connected = true;
                        props.push(Propagate::Connected(who));
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        props.push(Propagate::Dead(who));
                        break;
                    }
                    Event::MediaData(d) => props.push(Propagate::Media(who, d)),
                    Event::MediaIngressStats(st) => {
                        let last = last_count(&mut peer.nacks_in, st.mid, st.nacks);
                        self.counters.nacks_sent += st.nacks.saturating_sub(last);
                        if let Some(l) = st.loss {
                            self.losses.push((true, l));
                        }
                    }
                    Event::MediaEgressStats(st) => {
                        let last = last_count(&mut peer.nacks_out, st.mid, st.nacks);
                        self.counters.nacks_received += st.nacks.saturating_sub(last);
                        if let Some(l) = st.loss {
                            self.losses.push((false, l));
                        }
                    }
                    Event::KeyframeRequest(r) => {
                        if let Some(src) = peer
                            .slots
                            .iter()
                            .find(|s| s.mid == r.mid)
                            .and_then(|s| s.source)
                        {
                            props.push(Propagate::Keyframe(src, r.kind));
                        }
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(participant = %who, error = %e, "peer failed");
                    peer.rtc.disconnect();
                    props.push(Propagate::Dead(who));
                    break;
                }
            }
        }
        for t in sends {
            self.push_transmit(t);
        }
        props
    }

    fn request_keyframe(&mut self, now: Instant, publisher: usize, kind: KeyframeRequestKind) {
        let p = &mut self.peers[publisher];
        let Some(mid) = p.video_in else {
            return;
        };
        if p.last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_THROTTLE)
        {
            return;
        }
        if let Some(mut w) = p.rtc.writer(mid)
            && w.request_keyframe(None, kind).is_ok()
        {
            p.last_keyframe_request = Some(now);
            self.counters.keyframe_requests += 1;
        }
    }

    /// Forwards one frame of `from` to every subscriber with a slot for it.
    fn forward(
        &mut self,
        now: Instant,
        from: ParticipantId,
        data: MediaData,
        dirty: &mut Vec<usize>,
    ) {
        let Some(src) = self.index(from) else {
            return;
        };
        let kind = if Some(data.mid) == self.peers[src].audio_in {
            MediaKind::Audio
        } else if Some(data.mid) == self.peers[src].video_in {
            MediaKind::Video
        } else {
            return; // media on an m-line the grant did not give it: dropped
        };
        if kind == MediaKind::Audio {
            let p = &mut self.peers[src];
            p.last_audio = Some(now);
            if let Some(level) = data.ext_vals.audio_level {
                let l = f32::from(level.unsigned_abs().min(127));
                p.level = 0.7 * p.level + 0.3 * l;
            } else {
                // No RFC 6464 level from this sender: count it as present but quiet.
                p.level = p.level.min(90.0);
            }
            if p.muted {
                self.counters.dropped_muted += 1;
                return;
            }
        }
        let keyframe = data.is_keyframe();
        let mut need_keyframe = false;
        for j in 0..self.peers.len() {
            if j == src {
                continue;
            }
            let peer = &mut self.peers[j];
            // The slot already fed by `from`, or a free one (small rooms never wait for ranking).
            let slot = match peer
                .slots
                .iter()
                .position(|s| s.kind == kind && s.source == Some(from))
            {
                Some(s) => s,
                None => match peer
                    .slots
                    .iter()
                    .position(|s| s.kind == kind && s.source.is_none())
                {
                    Some(s) => {
                        let slot = &mut peer.slots[s];
                        slot.source = Some(from);
                        slot.awaiting_keyframe = kind == MediaKind::Video;
                        s
                    }
                    None => continue,
                },
            };
            let slot_state = &mut peer.slots[slot];
            if slot_state.awaiting_keyframe {
                if !keyframe {
                    need_keyframe = true;
                    continue;
                }
                slot_state.awaiting_keyframe = false;
            }
            if !peer.connected {
                continue;
            }
            let time = rebase(slot_state, from, &data, now);
            let mid = slot_state.mid;
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                tracing::debug!(participant = %peer.participant, error = %e, "forward failed");
                continue;
            }
            self.counters.forwarded_packets += 1;
            self.counters.forwarded_bytes += data.data.len() as u64;
            dirty.push(j);
        }
        if need_keyframe {
            self.request_keyframe(now, src, KeyframeRequestKind::Pli);
            dirty.push(src);
        }
    }

    /// Re-ranks audio slots by loudness and reports who speaks.
    fn rebalance(&mut self, now: Instant) {
        self.next_rebalance = Some(now + REBALANCE_EVERY);
        let mut active: Vec<(f32, ParticipantId)> = self
            .peers
            .iter()
            .filter(|p| p.audio_in.is_some() && !p.muted)
            .filter(|p| {
                p.last_audio
                    .is_some_and(|t| now.duration_since(t) < AUDIO_ACTIVE_FOR)
            })
            .map(|p| (p.level, p.participant))
            .collect();
        active.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let speaking: Vec<ParticipantId> = active
            .iter()
            .filter(|(l, _)| *l <= SPEAKING_LEVEL)
            .map(|(_, p)| *p)
            .collect();
        if speaking != self.last_speaking {
            self.last_speaking = speaking.clone();
            self.events.push_back(SfuEvent::Speaking(speaking));
        }
        for peer in &mut self.peers {
            let n = peer
                .slots
                .iter()
                .filter(|s| s.kind == MediaKind::Audio)
                .count();
            if n == 0 {
                continue;
            }
            let wanted: Vec<ParticipantId> = active
                .iter()
                .map(|(_, p)| *p)
                .filter(|p| *p != peer.participant)
                .take(n)
                .collect();
            // Free slots held by speakers no longer wanted, then fill them with the wanted
            // ones that have none.
            for s in peer.slots.iter_mut().filter(|s| s.kind == MediaKind::Audio) {
                if s.source.is_some_and(|src| !wanted.contains(&src)) {
                    s.source = None;
                }
            }
            for w in wanted {
                if peer.slots.iter().any(|s| s.source == Some(w)) {
                    continue;
                }
                if let Some(s) = peer
                    .slots
                    .iter_mut()
                    .find(|s| s.kind == MediaKind::Audio && s.source.is_none())
                {
                    s.source = Some(w);
                }
            }
        }
    }

    fn report_peers(&mut self) {
        let mut peers: Vec<MediaPeer> = self
            .peers
            .iter()
            .filter(|p| p.audio_in.is_some() || p.video_in.is_some())
            .map(|p| MediaPeer {
                participant: p.participant,
                audio: p.audio_in.is_some(),
                video: p.video_in.is_some(),
                muted: p.muted,
            })
            .collect();
        peers.sort_by_key(|p| p.participant);
        if peers != self.last_peers {
            self.last_peers = peers.clone();
            self.events.push_back(SfuEvent::Peers(peers));
        }
    }
}

/// The answer with the SFU's candidates (and `a=end-of-candidates`) in every m-section, not
/// only the first. Peers that gather remote candidates per section before applying BUNDLE
/// (aiortc keeps the last section's per transport) otherwise find none when two sections of
/// one kind come after the first; browsers accept either form.
fn candidates_in_every_section(sdp: &str) -> String {
    let nl = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.lines().collect();
    let candidates: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    if candidates.is_empty() {
        return sdp.to_string();
    }
    let mut out = String::with_capacity(sdp.len() + 256);
    let mut in_media = false;
    let mut has_candidates = false;
    let mut has_end = false;
    let close = |out: &mut String, in_media: bool, has_candidates: bool, has_end: bool| {
        if !in_media {
            return;
        }
        if !has_candidates {
            for c in &candidates {
                out.push_str(c);
                out.push_str(nl);
            }
        }
        if !has_end {
            out.push_str("a=end-of-candidates");
            out.push_str(nl);
        }
    };
    for l in &lines {
        if l.starts_with("m=") {
            close(&mut out, in_media, has_candidates, has_end);
            in_media = true;
            has_candidates = false;
            has_end = false;
        }
        has_candidates |= l.starts_with("a=candidate:");
        has_end |= *l == "a=end-of-candidates";
        out.push_str(l);
        out.push_str(nl);
    }
    close(&mut out, in_media, has_candidates, has_end);
    out
}

/// The count last seen for `mid`, replaced by `now`.
fn last_count(seen: &mut Vec<(Mid, u64)>, mid: Mid, now: u64) -> u64 {
    match seen.iter_mut().find(|(m, _)| *m == mid) {
        Some((_, n)) => std::mem::replace(n, now),
        None => {
            seen.push((mid, now));
            0
        }
    }
}

/// The `a=mid:` of every m-section of an SDP, in order.
fn offered_mids(sdp: &str) -> Vec<Mid> {
    sdp.split("\nm=")
        .skip(1)
        .filter_map(|section| {
            section
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
                .filter(|m| !m.is_empty() && m.len() <= 16)
                .map(Mid::from)
        })
        .collect()
}

/// Classifies one m-line of an offer against the grant. `direction` is ours: `RecvOnly` means
/// the client sends on it.
fn add_media(
    peer: &mut Peer,
    mid: Mid,
    kind: MediaKind,
    direction: Direction,
) -> Result<(), String> {
    let (may_publish, slots, publishing) = match kind {
        MediaKind::Audio => (
            peer.grant.publish_audio,
            peer.grant.audio_slots,
            &mut peer.audio_in,
        ),
        MediaKind::Video => (
            peer.grant.publish_video,
            peer.grant.video_slots,
            &mut peer.video_in,
        ),
    };
    let word = if kind == MediaKind::Audio {
        "audio"
    } else {
        "video"
    };
    if matches!(direction, Direction::RecvOnly | Direction::SendRecv) {
        if !may_publish {
            return Err(format!(
                "this participant may not send {word} here; offer it `recvonly`"
            ));
        }
        if publishing.is_none() {
            *publishing = Some(mid);
            return Ok(());
        }
    }
    if matches!(direction, Direction::SendOnly | Direction::SendRecv) {
        let have = peer.slots.iter().filter(|s| s.kind == kind).count();
        if have < usize::from(slots) {
            peer.slots.push(Slot {
                mid,
                kind,
                source: None,
                offset: 0,
                last: None,
                awaiting_keyframe: kind == MediaKind::Video,
            });
        }
    }
    Ok(())
}

/// The RTP time to write on `slot` for a frame of `from` at `data.time`: continuous across a
/// change of source (a new source starts where the last one left off, plus the wall time that
/// passed), so a receiver's jitter buffer sees one stream.
fn rebase(slot: &mut Slot, from: ParticipantId, data: &MediaData, now: Instant) -> MediaTime {
    let freq = data.time.frequency();
    let f = i64::from(freq.get());
    let t = data.time.numer() as i64;
    match slot.last {
        Some(l) if l.source == from && l.freq == freq.get() => {}
        Some(l) => {
            let last = l.out as i64 * f / i64::from(l.freq.max(1));
            let elapsed = (now.saturating_duration_since(l.at).as_secs_f64() * f as f64) as i64;
            slot.offset = last + elapsed.max(1) - t;
        }
        None => slot.offset = 0,
    }
    let out = (t + slot.offset).max(0) as u64;
    slot.last = Some(Last {
        out,
        freq: freq.get(),
        at: now,
        source: from,
    });
    MediaTime::new(out, freq)
}
