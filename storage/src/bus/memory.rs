//! The bus inside one process: the semantics of core NATS (wildcards, queue groups,
//! no-responders, request timeouts, slow consumers losing the newest messages) without a server.

use super::{BusError, Message, SUBSCRIPTION_CAPACITY, SubInner, Subscription, matches};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Clone, Debug, Default)]
pub(super) struct MemoryBus {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    subs: Mutex<HashMap<u64, Sub>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Sub {
    pattern: String,
    group: Option<String>,
    tx: mpsc::Sender<Message>,
}

impl Shared {
    fn subs(&self) -> MutexGuard<'_, HashMap<u64, Sub>> {
        // A panic while holding the lock cannot leave the map half-changed (single inserts and
        // removes), so a poisoned lock is still usable.
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end of an in-process subscription; unsubscribes when dropped.
#[derive(Debug)]
pub(super) struct MemorySubscription {
    rx: mpsc::Receiver<Message>,
    id: u64,
    shared: Arc<Shared>,
}

impl MemorySubscription {
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        self.shared.subs().remove(&self.id);
    }
}

impl MemoryBus {
    pub(super) fn new() -> Self {
        Self::default()
    }

    fn add(&self, pattern: &str, group: Option<&str>, capacity: usize) -> MemorySubscription {
        let (tx, rx) = mpsc::channel(capacity);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.subs().insert(
            id,
            Sub {
                pattern: pattern.to_owned(),
                group: group.map(str::to_owned),
                tx,
            },
        );
        MemorySubscription {
            rx,
            id,
            shared: self.shared.clone(),
        }
    }

    pub(super) fn subscribe(&self, pattern: &str, group: Option<&str>) -> Subscription {
        Subscription {
            inner: SubInner::Memory(self.add(pattern, group, SUBSCRIPTION_CAPACITY)),
        }
    }

    /// Delivers to every matching plain subscription and one member of each matching queue
    /// group; a full subscription loses the message (as a NATS slow consumer does). Returns how
    /// many subscriptions matched (the interest NATS's no-responders answer is about).
    pub(super) fn publish(&self, subject: &str, payload: Bytes, reply: Option<String>) -> usize {
        let msg = Message {
            subject: subject.to_owned(),
            payload,
            reply,
        };
        let subs = self.shared.subs();
        let mut interest = 0;
        let mut groups: HashMap<&str, Vec<&Sub>> = HashMap::new();
        for sub in subs.values().filter(|s| matches(&s.pattern, subject)) {
            interest += 1;
            match &sub.group {
                None => deliver(sub, &msg),
                Some(g) => groups.entry(g.as_str()).or_default().push(sub),
            }
        }
        for members in groups.values() {
            let pick = rand::random_range(0..members.len());
            deliver(members[pick], &msg);
        }
        interest
    }

    pub(super) async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let inbox = format!("_INBOX.memory{id}");
        // Room for a few answers: only the first counts, the others must not look like a slow
        // consumer.
        let mut replies = self.add(&inbox, None, 8);
        if self.publish(subject, payload, Some(inbox)) == 0 {
            return Err(BusError::NoResponders);
        }
        match tokio::time::timeout(timeout, replies.rx.recv()).await {
            Ok(Some(m)) => Ok(m.payload),
            Ok(None) => Err(BusError::Closed),
            Err(_) => Err(BusError::TimedOut),
        }
    }
}

fn deliver(sub: &Sub, msg: &Message) {
    if let Err(mpsc::error::TrySendError::Full(_)) = sub.tx.try_send(msg.clone()) {
        tracing::warn!(
            pattern = %sub.pattern,
            "bus (memory): a subscription fell behind; a message to it was dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusError, subject_token};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use std::time::{Duration, Instant};

    const WAIT: Duration = Duration::from_secs(2);

    async fn next(s: &mut crate::bus::Subscription) -> crate::bus::Message {
        tokio::time::timeout(WAIT, s.next())
            .await
            .expect("a message arrives")
            .expect("the subscription is open")
    }

    async fn nothing(s: &mut crate::bus::Subscription) {
        let got = tokio::time::timeout(Duration::from_millis(50), s.next()).await;
        assert!(got.is_err(), "unexpected message {got:?}");
    }

    #[tokio::test]
    async fn a_publish_reaches_every_subscriber_of_its_subject_on_any_clone() {
        let a = Bus::memory();
        let b = a.clone();
        assert_eq!(a.backend(), "memory");
        let mut s1 = a.subscribe("wagu.room.r1").await.unwrap();
        let mut s2 = b.subscribe("wagu.room.r1").await.unwrap();
        let mut other = b.subscribe("wagu.room.r2").await.unwrap();
        a.publish("wagu.room.r1", Bytes::from_static(b"hi"))
            .await
            .unwrap();
        for s in [&mut s1, &mut s2] {
            let m = next(s).await;
            assert_eq!(
                (m.subject.as_str(), &m.payload[..]),
                ("wagu.room.r1", &b"hi"[..])
            );
            assert_eq!(m.reply, None);
        }
        nothing(&mut other).await;
    }

    #[tokio::test]
    async fn wildcards_match_one_token_or_the_rest() {
        let bus = Bus::memory();
        let mut star = bus.subscribe("wagu.*.events").await.unwrap();
        let mut rest = bus.subscribe("wagu.>").await.unwrap();
        bus.publish("wagu.r1.events", Bytes::new()).await.unwrap();
        bus.publish("wagu.r1.events.x", Bytes::new()).await.unwrap();
        assert_eq!(next(&mut star).await.subject, "wagu.r1.events");
        nothing(&mut star).await;
        assert_eq!(next(&mut rest).await.subject, "wagu.r1.events");
        assert_eq!(next(&mut rest).await.subject, "wagu.r1.events.x");
    }

    #[tokio::test]
    async fn a_queue_group_gets_each_message_once() {
        let bus = Bus::memory();
        let mut members = Vec::new();
        for _ in 0..3 {
            members.push(bus.queue_subscribe("work", "g").await.unwrap());
        }
        let mut plain = bus.subscribe("work").await.unwrap();
        for i in 0..30u8 {
            bus.publish("work", Bytes::from(vec![i])).await.unwrap();
        }
        let mut got = Vec::new();
        for m in &mut members {
            while let Ok(Some(msg)) =
                tokio::time::timeout(Duration::from_millis(20), m.next()).await
            {
                got.push(msg.payload[0]);
            }
        }
        got.sort();
        assert_eq!(got, (0..30).collect::<Vec<u8>>());
        for i in 0..30u8 {
            assert_eq!(next(&mut plain).await.payload[0], i);
        }
    }

    #[tokio::test]
    async fn a_request_gets_its_reply() {
        let bus = Bus::memory();
        let mut service = bus.subscribe("svc.echo").await.unwrap();
        let responder = bus.clone();
        let task = tokio::spawn(async move {
            let m = next(&mut service).await;
            let mut answer = b"re:".to_vec();
            answer.extend_from_slice(&m.payload);
            responder
                .respond(m.reply.as_deref().unwrap(), Bytes::from(answer))
                .await
                .unwrap();
        });
        let reply = bus
            .request("svc.echo", Bytes::from_static(b"x"), WAIT)
            .await
            .unwrap();
        assert_eq!(&reply[..], b"re:x");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_request_nobody_subscribes_to_fails_at_once_with_no_responders() {
        let bus = Bus::memory();
        let started = Instant::now();
        let r = bus
            .request("svc.none", Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(BusError::NoResponders)), "{r:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
        // A dropped subscription is no longer interest.
        drop(bus.subscribe("svc.none").await.unwrap());
        let r = bus
            .request("svc.none", Bytes::new(), Duration::from_secs(5))
            .await;
        assert!(matches!(r, Err(BusError::NoResponders)), "{r:?}");
    }

    #[tokio::test]
    async fn a_request_nobody_answers_times_out_with_a_typed_error() {
        let bus = Bus::memory();
        let _silent = bus.subscribe("svc.silent").await.unwrap();
        let started = Instant::now();
        let r = bus
            .request("svc.silent", Bytes::new(), Duration::from_millis(100))
            .await;
        assert!(matches!(r, Err(BusError::TimedOut)), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn bad_subjects_tokens_and_groups_are_refused_with_a_typed_error() {
        let bus = Bus::memory();
        let invalid = |r: Result<(), BusError>| matches!(r, Err(BusError::InvalidSubject(_)));
        assert!(invalid(bus.publish("a.*", Bytes::new()).await));
        assert!(invalid(bus.publish("a..b", Bytes::new()).await));
        assert!(invalid(bus.publish("a b", Bytes::new()).await));
        assert!(invalid(bus.subscribe("a.>.b").await.map(drop)));
        assert!(invalid(bus.queue_subscribe("a", "g h").await.map(drop)));
        assert!(matches!(
            bus.request("", Bytes::new(), WAIT).await,
            Err(BusError::InvalidSubject(_))
        ));
        assert!(matches!(
            subject_token("r.1"),
            Err(BusError::InvalidSubject(_))
        ));
    }

    #[tokio::test]
    async fn a_full_subscription_loses_the_newest_messages_and_keeps_working() {
        let bus = Bus::memory();
        let mut slow = bus.subscribe("fast").await.unwrap();
        let n = crate::bus::SUBSCRIPTION_CAPACITY + 10;
        for i in 0..n {
            bus.publish("fast", Bytes::from(i.to_string()))
                .await
                .unwrap();
        }
        for i in 0..crate::bus::SUBSCRIPTION_CAPACITY {
            assert_eq!(next(&mut slow).await.payload, Bytes::from(i.to_string()));
        }
        nothing(&mut slow).await;
        bus.publish("fast", Bytes::from_static(b"again"))
            .await
            .unwrap();
        assert_eq!(&next(&mut slow).await.payload[..], b"again");
    }

    #[tokio::test]
    async fn ping_and_flush_succeed() {
        let bus = Bus::memory();
        bus.ping().await.unwrap();
        bus.flush().await.unwrap();
        assert!(bus.is_connected());
    }
}
