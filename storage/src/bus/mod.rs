//! The bus between nodes: subject-addressed messages from one Wagu node to others, over NATS
//! ([`Bus::connect`]) or inside one process ([`Bus::memory`], for tests and a single node).
//!
//! What it does:
//! - publish / subscribe on NATS subjects, with NATS wildcards (`*` one token, `>` the rest) and
//!   queue groups (each message goes to one member of a group);
//! - request / reply with a per-call timeout; a request nobody subscribes to fails at once with
//!   [`BusError::NoResponders`] (the NATS 2.2+ no-responders status), so a request to a dead
//!   owner fails fast instead of waiting out its timeout;
//! - [`subject_token`]: the one place that checks an id is safe inside a subject;
//! - [`Bus::ping`]: a round trip to the server, for readiness.
//!
//! Delivery is at most once, in order per publisher and subject, as core NATS gives it: no
//! persistence, no redelivery, no acks. A subscriber that falls behind by
//! [`SUBSCRIPTION_CAPACITY`] messages loses the newest ones (NATS calls it a slow consumer);
//! callers detect loss by their own sequence numbers and repair it (Wagu's seq + replay).
//!
//! During an outage of the NATS server the client reconnects by itself (forever, backing off
//! to at most [`RECONNECT_DELAY_MAX`]) and re-sends its subscriptions, so a [`Subscription`]
//! keeps working across a server restart. While the client knows it is disconnected, `publish`,
//! `request` and `ping` fail at once with [`BusError::Disconnected`] — nothing is queued to be
//! delivered late; a `subscribe` meanwhile is queued and takes effect on the reconnect. What was handed to the client just before it noticed the outage (at most
//! [`CLIENT_CAPACITY`] commands plus one socket buffer) is either written after the reconnect
//! or lost; a send that finds that buffer full waits at most [`SEND_WAIT`] and then fails.
//!
//! What it does not do: decide who owns a session, what a subject means, or how payloads are
//! encoded (callers hand it bytes); it does not persist or retry messages (JetStream is not
//! used).

mod memory;
mod nats;

use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use crate::error::BoxError;

/// Messages a subscription holds before the newest are dropped (a slow consumer).
pub const SUBSCRIPTION_CAPACITY: usize = 8192;
/// Commands (publishes, subscribes, ...) the NATS client buffers before its connection task
/// takes them.
pub const CLIENT_CAPACITY: usize = 4096;
/// How long a send waits for room in the client's buffer before it fails.
pub const SEND_WAIT: Duration = Duration::from_secs(1);
/// Longest pause between two reconnect attempts to the NATS server.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(500);
/// How often the client pings the server; two unanswered pings count as a lost connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
/// Time to open a connection to the server (first connect and each reconnect attempt).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// [`Bus::ping`] gives up after this.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The first connection to the NATS server failed.
    #[error("bus: cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("bus: publish to {subject} failed: {source}")]
    Publish {
        subject: String,
        #[source]
        source: BoxError,
    },
    #[error("bus: subscribe to {subject} failed: {source}")]
    Subscribe {
        subject: String,
        #[source]
        source: BoxError,
    },
    #[error("bus: request to {subject} failed: {source}")]
    Request {
        subject: String,
        #[source]
        source: BoxError,
    },
    /// Flushing the client's buffered messages to the server failed.
    #[error("bus: flush failed: {source}")]
    Flush {
        #[source]
        source: BoxError,
    },
    /// Nobody subscribes to the subject of a request.
    #[error("bus: no responders")]
    NoResponders,
    /// A request got no reply within its timeout (or a ping no answer).
    #[error("bus: timed out")]
    TimedOut,
    /// The client is between connections (the server is down or unreachable); it keeps
    /// reconnecting by itself.
    #[error("bus: disconnected from the server (reconnecting)")]
    Disconnected,
    /// A subject, token or queue group that NATS would refuse or misread.
    #[error("bus: invalid subject or token {0:?}")]
    InvalidSubject(String),
    /// The client was closed for good.
    #[error("bus: closed")]
    Closed,
}

/// One message as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub payload: Bytes,
    /// Where to send the answer ([`Bus::respond`]) when the message is a request.
    pub reply: Option<String>,
}

/// A connection to the bus; cheap to clone (clones share one connection).
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Nats(nats::NatsBus),
    Memory(memory::MemoryBus),
}

impl Bus {
    /// Connects to the NATS server at `url` (`nats://host:port`, several comma-separated) as
    /// client `name` (the node id, shown by the server's monitoring). Fails when the server
    /// cannot be reached within [`CONNECT_TIMEOUT`]; after that first connection the client
    /// reconnects by itself.
    pub async fn connect(url: &str, name: &str) -> Result<Bus, BusError> {
        Ok(Bus {
            inner: Inner::Nats(nats::NatsBus::connect(url, name).await?),
        })
    }

    /// An in-process bus with the same semantics (wildcards, queue groups, no-responders,
    /// timeouts, slow consumers); clones share it.
    pub fn memory() -> Bus {
        Bus {
            inner: Inner::Memory(memory::MemoryBus::new()),
        }
    }

    /// `"nats"` or `"memory"`.
    pub fn backend(&self) -> &'static str {
        match &self.inner {
            Inner::Nats(_) => "nats",
            Inner::Memory(_) => "memory",
        }
    }

    /// Sends `payload` to every subscriber of `subject` (and one member of each queue group).
    /// Returning `Ok` means the client took it, not that anyone received it.
    pub async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        match &self.inner {
            Inner::Nats(b) => b.publish(subject, payload).await,
            Inner::Memory(b) => {
                b.publish(subject, payload, None);
                Ok(())
            }
        }
    }

    /// Receives the messages published to subjects matching `subject` (wildcards allowed).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        check_pattern(subject)?;
        match &self.inner {
            Inner::Nats(b) => b.subscribe(subject, None).await,
            Inner::Memory(b) => Ok(b.subscribe(subject, None)),
        }
    }

    /// Like [`Bus::subscribe`], but each message goes to only one subscription of `group`.
    pub async fn queue_subscribe(
        &self,
        subject: &str,
        group: &str,
    ) -> Result<Subscription, BusError> {
        check_pattern(subject)?;
        check_group(group)?;
        match &self.inner {
            Inner::Nats(b) => b.subscribe(subject, Some(group)).await,
            Inner::Memory(b) => Ok(b.subscribe(subject, Some(group))),
        }
    }

    /// Sends a request and waits up to `timeout` for the first reply. Fails at once with
    /// [`BusError::NoResponders`] when nobody subscribes to `subject`, with
    /// [`BusError::TimedOut`] when nobody answered in time.
    pub async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        check_subject(subject)?;
        match &self.inner {
            Inner::Nats(b) => b.request(subject, payload, timeout).await,
            Inner::Memory(b) => b.request(subject, payload, timeout).await,
        }
    }

    /// Answers a request: `reply_to` is the [`Message::reply`] of the request.
    pub async fn respond(&self, reply_to: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish(reply_to, payload).await
    }

    /// Waits until everything published so far has been written to the server.
    pub async fn flush(&self) -> Result<(), BusError> {
        match &self.inner {
            Inner::Nats(b) => b.flush().await,
            Inner::Memory(_) => Ok(()),
        }
    }

    /// A round trip to the server (for `/readyz`): fails with [`BusError::Disconnected`] while
    /// reconnecting and [`BusError::TimedOut`] after [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), BusError> {
        match &self.inner {
            Inner::Nats(b) => b.ping().await,
            Inner::Memory(_) => Ok(()),
        }
    }

    /// Whether the client is connected right now (always true in memory).
    pub fn is_connected(&self) -> bool {
        match &self.inner {
            Inner::Nats(b) => b.is_connected(),
            Inner::Memory(_) => true,
        }
    }
}

/// A stream of the messages of one subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    inner: SubInner,
}

#[derive(Debug)]
enum SubInner {
    Nats(async_nats::Subscriber),
    Memory(memory::MemorySubscription),
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match &mut self.inner {
            SubInner::Nats(s) => Pin::new(s).poll_next(cx).map(|m| m.map(nats::message)),
            SubInner::Memory(s) => s.poll_recv(cx),
        }
    }
}

/// `s` as one token of a subject (a room id, node id, connection id): refused when empty or
/// when it holds `.`, `*`, `>`, whitespace or a control character, any of which would change
/// which subjects it matches.
pub fn subject_token(s: &str) -> Result<&str, BusError> {
    let ok = !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control());
    if ok {
        Ok(s)
    } else {
        Err(BusError::InvalidSubject(s.chars().take(80).collect()))
    }
}

fn invalid(s: &str) -> BusError {
    BusError::InvalidSubject(s.chars().take(200).collect())
}

fn bad_char(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// A subject to publish to: non-empty tokens, no wildcards.
fn check_subject(s: &str) -> Result<(), BusError> {
    if s.split('.').all(|t| subject_token(t).is_ok()) {
        Ok(())
    } else {
        Err(invalid(s))
    }
}

/// A subject to subscribe to: non-empty tokens; `*` and `>` only as whole tokens, `>` last.
fn check_pattern(s: &str) -> Result<(), BusError> {
    let tokens: Vec<&str> = s.split('.').collect();
    let ok = tokens.iter().enumerate().all(|(i, t)| match *t {
        "*" => true,
        ">" => i + 1 == tokens.len(),
        t => subject_token(t).is_ok(),
    });
    if ok { Ok(()) } else { Err(invalid(s)) }
}

/// A queue group name: non-empty, no whitespace or control characters.
fn check_group(g: &str) -> Result<(), BusError> {
    if !g.is_empty() && !g.chars().any(bad_char) {
        Ok(())
    } else {
        Err(invalid(g))
    }
}

/// Whether the subject `subject` matches the pattern `pattern` (both already checked).
fn matches(pattern: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for p in pattern.split('.') {
        match (p, s.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_dots_wildcards_or_spaces_are_refused() {
        assert_eq!(subject_token("room-1_A").unwrap(), "room-1_A");
        for bad in ["", "a.b", "*", ">", "a b", "a\tb", "a\nb", "x>", "\u{7}"] {
            assert!(
                matches!(subject_token(bad), Err(BusError::InvalidSubject(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn subjects_and_patterns_follow_the_nats_rules() {
        assert!(check_subject("wagu.room.r1.events").is_ok());
        for bad in ["", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a.*", "a.>", "*.b.>", ">", "*"] {
            assert!(check_pattern(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a.>.b", "a.b*", "a..b", "a.>x", "a. b"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
        assert!(check_group("gateways").is_ok());
        assert!(check_group("").is_err() && check_group("a b").is_err());
    }

    #[test]
    fn wildcards_match_like_nats() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(!matches("a.*", "a"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "x"));
        assert!(matches("*.b.>", "a.b.c.d"));
        assert!(!matches("*.b.>", "a.c.d"));
    }
}
