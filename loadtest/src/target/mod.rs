//! The servers a scenario can drive, behind one [`Driver`]. Each target module speaks one
//! server's protocol: how a room comes to exist, which frames open a session, how a presence or
//! chat is encoded with the harness's marker, and what an incoming frame means. Scenarios only
//! see [`Incoming`] and never build or parse JSON themselves, so the timing, stats and report
//! are the same code whatever the server.
//!
//! | target | a room is | opening a session | presence / chat | what comes back |
//! |---|---|---|---|---|
//! | `wagu` | `POST /api/rooms` | `hello`, `join` (host key for slot 0) | `presence` (no id), `chat` | batches of everyone's latest presence every ≤ 50 ms, each chat |
//! | `centrifugo` | the channel `room:<n>` | `connect` (HS256 JWT), `subscribe` | `publish` of the Wagu client frame as `data` | every publication to every subscriber, the sender included |
//! | `bare` | `?room=<n>` on the bare relay | nothing | the Wagu client frame, as is | each frame relayed verbatim to the room's other members |
//!
//! Live streams (`streams` scenario) exist on Wagu only: `POST /api/streams`, then
//! `join_stream` (the streamer with its key), chat as in a room, read with
//! [`wagu::classify_stream`] rather than through [`Driver::classify`].
//!
//! All three carry the same marker (see [`wagu`]): a receiver reads `(slot, counter)` from a
//! viewport or a chat text and looks the send time up, so latency means the same thing on every
//! target. What differs is what the server does between: Wagu coalesces presence (one batch per
//! room per 50 ms), Centrifugo and the bare relay forward each message on its own.

pub mod bare;
pub mod centrifugo;
pub mod wagu;

use crate::http::{Base, HttpClient};
use std::borrow::Cow;
use wagu_proto::ids::{HostKey, ShareToken};

/// Which server the run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A Wagu node: `POST /api/rooms`, then the room WebSocket protocol (`wagu-proto`).
    Wagu,
    /// A Centrifugo v6 node over its bidirectional JSON WebSocket protocol; rooms are channels.
    Centrifugo,
    /// `wagu-loadtest bare-server`: a relay that forwards each frame to the room's others.
    Bare,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Wagu => "wagu",
            Target::Centrifugo => "centrifugo",
            Target::Bare => "bare",
        }
    }
}

/// How the clients of one room reach it.
#[derive(Debug)]
pub struct RoomAccess {
    /// The URL of the WebSocket handshake.
    pub ws_url: String,
    pub join: Join,
}

#[derive(Debug)]
pub enum Join {
    Wagu {
        share: ShareToken,
        host_key: HostKey,
    },
    Centrifugo {
        channel: String,
    },
    Bare,
}

/// One step of opening a session: send `frame`, then read until the success reply to `id`
/// (after a `welcome` when `needs_welcome`).
#[derive(Debug)]
pub struct Step {
    pub frame: String,
    pub id: u64,
    pub needs_welcome: bool,
    /// For error books: "hello", "join", "connect", "subscribe".
    pub what: &'static str,
}

/// What one server message means to a harness client. A WebSocket frame may hold several
/// (Centrifugo puts newline-separated messages in one frame).
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// Traced presence updates as `(sender slot, counter)`, with the server's stamp of the
    /// message (Unix ms) where the protocol has one (Wagu's batch `at`).
    Presence {
        at_ms: Option<u64>,
        updates: Vec<(usize, u64)>,
    },
    /// A traced chat message.
    Chat { from: usize, counter: u64 },
    /// The success reply to request `id` (Wagu `ack`, Centrifugo reply without `error`).
    Ack(u64),
    /// An error frame or error reply, by code.
    Error(Cow<'static, str>),
    /// Wagu's `welcome` (the room snapshot).
    Welcome,
    /// An application-level ping that must be answered ([`Driver::pong`]).
    Ping,
    /// Anything else the server may legitimately send: counted, not parsed.
    Other,
    /// Not a message this protocol knows.
    Undecodable,
}

/// Everything target-specific a run needs, built once from the command line.
pub struct Driver {
    pub target: Target,
    base: Base,
    centrifugo_secret: Vec<u8>,
    /// Expiry of the Centrifugo connection tokens (Unix seconds), fixed for the run.
    token_exp: u64,
}

impl Driver {
    pub fn new(target: Target, base: Base, centrifugo_secret: &str) -> Driver {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Driver {
            target,
            base,
            centrifugo_secret: centrifugo_secret.as_bytes().to_vec(),
            // A day: longer than any run, short enough that a leaked token is soon worthless.
            token_exp: now + 86_400,
        }
    }

    /// Checks that the server answers before any room is set up. Wagu has a health route;
    /// for the others a TCP connect is the one check that needs no configuration.
    pub async fn probe(&self) -> anyhow::Result<()> {
        if self.target == Target::Wagu {
            let mut probe = HttpClient::new(self.base.clone());
            return match probe.get("/healthz").await {
                Ok((200, _)) => Ok(()),
                Ok((status, _)) => anyhow::bail!("/healthz answered {status}"),
                Err(e) => anyhow::bail!("cannot reach the server: {e}"),
            };
        }
        tokio::net::TcpStream::connect(self.base.addr)
            .await
            .map(drop)
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base.addr))
    }

    /// Makes room `index` exist (Wagu) or names it (the others). The error is a short reason
    /// for the room-creation error book.
    pub async fn open_room(
        &self,
        http: &mut HttpClient,
        index: usize,
    ) -> Result<RoomAccess, String> {
        let ws = |path: String| format!("ws://{}{}{path}", self.base.host, self.base.prefix);
        Ok(match self.target {
            Target::Wagu => {
                let created = wagu::create_room(http).await?;
                tracing::debug!(room = %created.room_id, index, "room created");
                RoomAccess {
                    ws_url: created.ws_url,
                    join: Join::Wagu {
                        share: created.share_token,
                        host_key: created.host_key,
                    },
                }
            }
            Target::Centrifugo => RoomAccess {
                ws_url: ws(centrifugo::WS_PATH.to_string()),
                join: Join::Centrifugo {
                    channel: centrifugo::channel(index),
                },
            },
            Target::Bare => RoomAccess {
                ws_url: ws(bare::path(index)),
                join: Join::Bare,
            },
        })
    }

    /// The frames that open a session for `slot` (0 is Wagu's host).
    pub fn opening(&self, room: &RoomAccess, slot: usize, name: String) -> Vec<Step> {
        match &room.join {
            Join::Wagu { share, host_key } => vec![
                Step {
                    frame: wagu::hello(),
                    id: wagu::HELLO_ID,
                    needs_welcome: false,
                    what: "hello",
                },
                Step {
                    frame: wagu::join(share, name, (slot == 0).then(|| host_key.clone())),
                    id: wagu::JOIN_ID,
                    needs_welcome: true,
                    what: "join",
                },
            ],
            Join::Centrifugo { channel } => {
                let token =
                    centrifugo::connection_token(&self.centrifugo_secret, &name, self.token_exp);
                vec![
                    Step {
                        frame: centrifugo::connect(centrifugo::CONNECT_ID, &token),
                        id: centrifugo::CONNECT_ID,
                        needs_welcome: false,
                        what: "connect",
                    },
                    Step {
                        frame: centrifugo::subscribe(centrifugo::SUBSCRIBE_ID, channel),
                        id: centrifugo::SUBSCRIBE_ID,
                        needs_welcome: false,
                        what: "subscribe",
                    },
                ]
            }
            Join::Bare => Vec::new(),
        }
    }

    /// A fresh per-client encoder for the session's presence and chat frames.
    pub fn encoder(&self, room: &RoomAccess) -> Encoder {
        match &room.join {
            Join::Wagu { .. } => Encoder::Wagu {
                next_id: wagu::FIRST_FREE_ID,
            },
            Join::Centrifugo { channel } => Encoder::Centrifugo {
                channel: channel.clone(),
                next_id: centrifugo::FIRST_FREE_ID,
            },
            Join::Bare => Encoder::Bare,
        }
    }

    /// Calls `f` with each message of one received text frame.
    pub fn classify(&self, frame: &str, f: impl FnMut(Incoming)) {
        match self.target {
            Target::Wagu => {
                let mut f = f;
                f(wagu::classify_generic(frame))
            }
            Target::Centrifugo => centrifugo::classify(frame, f),
            Target::Bare => {
                let mut f = f;
                f(bare::classify(frame))
            }
        }
    }

    /// The answer to [`Incoming::Ping`].
    pub fn pong(&self) -> &'static str {
        centrifugo::PONG
    }
}

/// Builds the frames of one client's session.
pub enum Encoder {
    Wagu { next_id: u64 },
    Centrifugo { channel: String, next_id: u64 },
    Bare,
}

impl Encoder {
    fn take_id(next_id: &mut u64) -> u64 {
        let id = *next_id;
        *next_id += 1;
        id
    }

    pub fn presence(&mut self, slot: usize, counter: u64) -> String {
        match self {
            // Fire and forget: no id, so no ack to read.
            Encoder::Wagu { .. } | Encoder::Bare => wagu::presence(slot, counter),
            // Centrifugo requires an id on every publish and answers each one.
            Encoder::Centrifugo { channel, next_id } => centrifugo::publish(
                Self::take_id(next_id),
                channel,
                &wagu::presence(slot, counter),
            ),
        }
    }

    pub fn chat(&mut self, slot: usize, counter: u64) -> String {
        match self {
            Encoder::Wagu { next_id } => wagu::chat(Self::take_id(next_id), slot, counter),
            // The relay does not answer; the id only keeps the frame a valid Wagu chat.
            Encoder::Bare => wagu::chat(0, slot, counter),
            Encoder::Centrifugo { channel, next_id } => {
                let id = Self::take_id(next_id);
                centrifugo::publish(id, channel, &wagu::chat(id, slot, counter))
            }
        }
    }
}
