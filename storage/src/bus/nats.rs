//! The bus on a NATS server (core NATS through `async-nats`: no JetStream).

use super::{
    BusError, CLIENT_CAPACITY, CONNECT_TIMEOUT, Message, PING_INTERVAL, PING_TIMEOUT,
    RECONNECT_DELAY_MAX, SEND_WAIT, SUBSCRIPTION_CAPACITY, SubInner, Subscription,
};
use async_nats::client::{FlushErrorKind, PublishErrorKind, RequestErrorKind, SubscribeErrorKind};
use async_nats::connection::State;
use bytes::Bytes;
use std::time::Duration;

#[derive(Clone, Debug)]
pub(super) struct NatsBus {
    client: async_nats::Client,
}

pub(super) fn message(m: async_nats::Message) -> Message {
    Message {
        subject: m.subject.to_string(),
        payload: m.payload,
        reply: m.reply.map(|r| r.to_string()),
    }
}

/// Backoff between reconnect attempts: at once, then 50 ms more per attempt up to the cap.
fn reconnect_delay(attempts: usize) -> Duration {
    let ms = 50u64.saturating_mul(attempts.saturating_sub(1) as u64);
    Duration::from_millis(ms).min(RECONNECT_DELAY_MAX)
}

impl NatsBus {
    pub(super) async fn connect(url: &str, name: &str) -> Result<Self, BusError> {
        // Several servers of one NATS cluster: `nats://a:4222,nats://b:4222`.
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        let node = name.to_owned();
        let client = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(CONNECT_TIMEOUT)
            .ping_interval(PING_INTERVAL)
            .client_capacity(CLIENT_CAPACITY)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let node = node.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(node = %node, "bus: connected to the NATS server")
                        }
                        async_nats::Event::SlowConsumer(sid) => tracing::warn!(
                            node = %node,
                            sid,
                            "bus: a subscription fell behind; the server's newest messages to it were dropped"
                        ),
                        other => tracing::warn!(node = %node, event = %other, "bus: NATS client event"),
                    }
                }
            })
            .connect(servers)
            .await
            .map_err(|e| BusError::Connect {
                url: url.to_owned(),
                source: Box::new(e),
            })?;
        Ok(NatsBus { client })
    }

    pub(super) fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn connected(&self) -> Result<(), BusError> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(BusError::Disconnected)
        }
    }

    pub(super) async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        self.connected()?;
        let failed = |source: super::BoxError| BusError::Publish {
            subject: subject.to_owned(),
            source,
        };
        match tokio::time::timeout(SEND_WAIT, self.client.publish(subject.to_owned(), payload))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(match e.kind() {
                PublishErrorKind::InvalidSubject => super::invalid(subject),
                PublishErrorKind::Send => BusError::Closed,
                _ => failed(Box::new(e)),
            }),
            Err(_) => Err(failed(
                format!("the client's send buffer stayed full for {SEND_WAIT:?}").into(),
            )),
        }
    }

    pub(super) async fn subscribe(
        &self,
        subject: &str,
        group: Option<&str>,
    ) -> Result<Subscription, BusError> {
        let sub = async {
            match group {
                None => self.client.subscribe(subject.to_owned()).await,
                Some(g) => {
                    self.client
                        .queue_subscribe(subject.to_owned(), g.to_owned())
                        .await
                }
            }
        };
        let failed = |source: super::BoxError| BusError::Subscribe {
            subject: subject.to_owned(),
            source,
        };
        match tokio::time::timeout(SEND_WAIT, sub).await {
            Ok(Ok(s)) => Ok(Subscription {
                inner: SubInner::Nats(s),
            }),
            Ok(Err(e)) => Err(match e.kind() {
                SubscribeErrorKind::InvalidSubject => super::invalid(subject),
                SubscribeErrorKind::InvalidQueueName => super::invalid(group.unwrap_or_default()),
                _ => failed(Box::new(e)),
            }),
            Err(_) => Err(failed(
                format!("the client's send buffer stayed full for {SEND_WAIT:?}").into(),
            )),
        }
    }

    pub(super) async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        self.connected()?;
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        // The outer timeout also bounds the wait for room in the client's buffer.
        match tokio::time::timeout(
            timeout,
            self.client.send_request(subject.to_owned(), request),
        )
        .await
        {
            Ok(Ok(m)) => Ok(m.payload),
            Ok(Err(e)) => Err(match e.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders,
                RequestErrorKind::TimedOut => BusError::TimedOut,
                RequestErrorKind::InvalidSubject => super::invalid(subject),
                _ => BusError::Request {
                    subject: subject.to_owned(),
                    source: Box::new(e),
                },
            }),
            Err(_) => Err(BusError::TimedOut),
        }
    }

    pub(super) async fn flush(&self) -> Result<(), BusError> {
        match tokio::time::timeout(SEND_WAIT, self.client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if matches!(e.kind(), FlushErrorKind::SendError) => Err(BusError::Closed),
            Ok(Err(e)) => Err(BusError::Flush {
                source: Box::new(e),
            }),
            Err(_) => Err(BusError::TimedOut),
        }
    }

    /// A request to a subject nobody subscribes to: the server's no-responders answer proves a
    /// round trip through it.
    pub(super) async fn ping(&self) -> Result<(), BusError> {
        let subject = format!("_WAGU.ping.{}", self.client.new_inbox().replace('.', "-"));
        match self.request(&subject, Bytes::new(), PING_TIMEOUT).await {
            Ok(_) | Err(BusError::NoResponders) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
