//! The media node: one UDP port shared by every session's SFU, and one task per session.
//!
//! What it does: binds the port, reads datagrams and hands each to the session that owns its
//! peer ([`Routes`]: by learned source address, else by the STUN ufrag); runs each session's
//! [`SfuSession`] on a task of its own (the only owner of its peers' `Rtc`s), waking for
//! requests, datagrams and str0m's timeouts; sends what the SFU transmits; reports the SFU's
//! events to the session's actor; keeps the metrics. A panic inside str0m or the SFU ends that
//! session's peers (`media_ended` with `internal`) and the task goes on with a fresh SFU: the
//! node, and every other session, carry on.
//!
//! What it does not do: admission or media rules (the session decides, `sfu.rs` forwards), TURN
//! (clients behind strict NATs use a TURN server of their own, see `deploy/`).

use crate::demux::Routes;
use crate::sfu::{Route, SfuSession};
use crate::{MediaConfig, MediaError};
use metrics::{counter, gauge, histogram};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use wagu_engine::actor::media::{MediaEvents, MediaPlane, MediaSession};
use wagu_proto::media::{MediaEndReason, SfuEvent, SfuRequest};

/// Datagrams waiting for one session's task; more are dropped, as a router would.
const SESSION_QUEUE: usize = 2048;

struct Packet {
    at: Instant,
    source: SocketAddr,
    data: Vec<u8>,
}

type PacketTx = mpsc::Sender<Packet>;

struct Inner {
    socket: UdpSocket,
    /// Advertised to peers as host candidates; the first is the destination str0m sees.
    advertised: Vec<SocketAddr>,
    routes: RwLock<Routes<PacketTx>>,
}

/// The SFU side of one node. Cheap to clone.
#[derive(Clone)]
pub struct MediaNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaNode")
            .field("advertised", &self.inner.advertised)
            .finish()
    }
}

impl MediaNode {
    /// Binds the media port and starts reading it. `None` when the config turns media off.
    pub async fn start(config: &MediaConfig) -> Result<Option<MediaNode>, MediaError> {
        let Some(listen) = config.udp_listen()? else {
            return Ok(None);
        };
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| MediaError::Bind {
                addr: listen,
                source,
            })?;
        let bound = socket.local_addr().map_err(|source| MediaError::Bind {
            addr: listen,
            source,
        })?;
        let advertised = config.advertised(bound)?;
        let inner = Arc::new(Inner {
            socket,
            advertised,
            routes: RwLock::new(Routes::default()),
        });
        tokio::spawn(read_loop(inner.clone()));
        Ok(Some(MediaNode { inner }))
    }

    /// The addresses peers are told to send to.
    pub fn advertised(&self) -> &[SocketAddr] {
        &self.inner.advertised
    }

    /// The bound UDP port's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.socket.local_addr()
    }
}

async fn read_loop(inner: Arc<Inner>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, source) = match inner.socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port-unreachable from a peer that left shows up here on some systems.
                tracing::debug!(error = %e, "media socket read failed");
                continue;
            }
        };
        let data = &buf[..n];
        let to = inner
            .routes
            .read()
            .ok()
            .and_then(|r| r.lookup(source, data));
        let Some(to) = to else {
            counter!("wagu_media_packets_dropped_total", "reason" => "unrouted").increment(1);
            continue;
        };
        let packet = Packet {
            at: Instant::now(),
            source,
            data: data.to_vec(),
        };
        if to.try_send(packet).is_err() {
            counter!("wagu_media_packets_dropped_total", "reason" => "queue_full").increment(1);
        }
    }
}

struct Handle {
    requests: mpsc::UnboundedSender<SfuRequest>,
}

impl MediaSession for Handle {
    fn send(&self, request: SfuRequest) {
        let _ = self.requests.send(request);
    }
}

impl MediaPlane for MediaNode {
    fn open(&self, kind: &'static str, id: &str, events: MediaEvents) -> Box<dyn MediaSession> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ptx, prx) = mpsc::channel(SESSION_QUEUE);
        let task = SessionTask {
            inner: self.inner.clone(),
            kind,
            id: id.to_string(),
            events,
            packets_tx: ptx,
            sfu: SfuSession::new(self.inner.advertised.clone()),
            ufrags: HashSet::new(),
            addrs: HashSet::new(),
            peers: 0,
            counters: Default::default(),
        };
        tokio::spawn(task.run(rx, prx));
        Box::new(Handle { requests: tx })
    }
}

struct SessionTask {
    inner: Arc<Inner>,
    kind: &'static str,
    id: String,
    events: MediaEvents,
    packets_tx: PacketTx,
    sfu: SfuSession,
    ufrags: HashSet<String>,
    addrs: HashSet<SocketAddr>,
    peers: usize,
    counters: crate::sfu::Counters,
}

impl SessionTask {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<SfuRequest>,
        mut packets: mpsc::Receiver<Packet>,
    ) {
        gauge!("wagu_media_sessions", "kind" => self.kind).increment(1.0);
        loop {
            let deadline = self.sfu.next_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                r = requests.recv() => {
                    let Some(r) = r else { break };
                    let close = matches!(r, SfuRequest::Close);
                    self.guarded(|sfu| sfu.request(Instant::now(), r));
                    if close {
                        self.flush();
                        break;
                    }
                }
                Some(p) = packets.recv() => {
                    let dest = self.inner.advertised[0];
                    self.guarded(|sfu| { sfu.receive(p.at, p.source, dest, &p.data); });
                    // Whatever else is already queued, before flushing once.
                    for _ in 0..64 {
                        let Ok(p) = packets.try_recv() else { break };
                        self.guarded(|sfu| { sfu.receive(p.at, p.source, dest, &p.data); });
                    }
                }
                _ = sleep_until(deadline) => {
                    self.guarded(|sfu| sfu.timeout(Instant::now()));
                }
            }
            self.flush();
        }
        self.forget_routes();
        self.set_peers(0);
        gauge!("wagu_media_sessions", "kind" => self.kind).decrement(1.0);
    }

    /// Runs one SFU call; a panic in it (a str0m bug, or ours) ends this session's peers and
    /// leaves a fresh SFU in its place.
    fn guarded(&mut self, f: impl FnOnce(&mut SfuSession)) {
        let sfu = &mut self.sfu;
        if std::panic::catch_unwind(AssertUnwindSafe(|| f(sfu))).is_ok() {
            return;
        }
        tracing::error!(kind = self.kind, id = %self.id, "SFU panicked; ending this session's media");
        counter!("wagu_media_panics_total").increment(1);
        let who = std::panic::catch_unwind(AssertUnwindSafe(|| self.sfu.participants()))
            .unwrap_or_default();
        self.sfu = SfuSession::new(self.inner.advertised.clone());
        self.forget_routes();
        for participant in who {
            (self.events)(SfuEvent::Ended {
                participant,
                reason: MediaEndReason::Internal,
            });
        }
        (self.events)(SfuEvent::Peers(Vec::new()));
    }

    fn flush(&mut self) {
        while let Some(t) = self.sfu.poll_transmit() {
            if let Err(e) = self.inner.socket.try_send_to(&t.contents, t.destination) {
                tracing::trace!(error = %e, "media send dropped");
                counter!("wagu_media_packets_dropped_total", "reason" => "send").increment(1);
            }
        }
        while let Some(r) = self.sfu.poll_route() {
            let Ok(mut routes) = self.inner.routes.write() else {
                continue;
            };
            match r {
                Route::AddUfrag(u) => {
                    routes.add_ufrag(u.clone(), self.packets_tx.clone());
                    self.ufrags.insert(u);
                }
                Route::RemoveUfrag(u) => {
                    routes.remove_ufrag(&u);
                    self.ufrags.remove(&u);
                }
                Route::AddAddr(a) => {
                    routes.add_addr(a, self.packets_tx.clone());
                    self.addrs.insert(a);
                }
                Route::RemoveAddr(a) => {
                    routes.remove_addr(&a);
                    self.addrs.remove(&a);
                }
            }
        }
        while let Some(e) = self.sfu.poll_event() {
            (self.events)(e);
        }
        let c = self.sfu.counters();
        let was = std::mem::replace(&mut self.counters, c);
        counter!("wagu_media_forwarded_packets_total")
            .increment(c.forwarded_packets.saturating_sub(was.forwarded_packets));
        counter!("wagu_media_forwarded_bytes_total")
            .increment(c.forwarded_bytes.saturating_sub(was.forwarded_bytes));
        counter!("wagu_media_keyframe_requests_total")
            .increment(c.keyframe_requests.saturating_sub(was.keyframe_requests));
        counter!("wagu_media_muted_dropped_total")
            .increment(c.dropped_muted.saturating_sub(was.dropped_muted));
        counter!("wagu_media_nacks_total", "direction" => "sent")
            .increment(c.nacks_sent.saturating_sub(was.nacks_sent));
        counter!("wagu_media_nacks_total", "direction" => "received")
            .increment(c.nacks_received.saturating_sub(was.nacks_received));
        for (ingress, loss) in self.sfu.drain_losses() {
            let direction = if ingress { "ingress" } else { "egress" };
            histogram!("wagu_media_loss_ratio", "direction" => direction).record(f64::from(loss));
        }
        self.set_peers(self.sfu.peer_count());
    }

    fn set_peers(&mut self, n: usize) {
        if n != self.peers {
            gauge!("wagu_media_peers", "kind" => self.kind).increment(n as f64 - self.peers as f64);
            self.peers = n;
        }
    }

    fn forget_routes(&mut self) {
        if let Ok(mut routes) = self.inner.routes.write() {
            for u in self.ufrags.drain() {
                routes.remove_ufrag(&u);
            }
            for a in self.addrs.drain() {
                routes.remove_addr(&a);
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
