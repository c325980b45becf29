//! Actor tests: rooms run under the supervisor with the real actor runtime, driven through the
//! same `Rooms` door the gateway uses, with channels in place of sockets. Each test runs on the
//! in-process store, on the embedded file and, when the test bed provides it, on real Redis.

use std::time::{Duration, Instant};
use wagu_engine::actor::EngineConfig;
use wagu_engine::actor::outbound::Receiver;
use wagu_engine::actor::outbound::{Frame, Outbound};
use wagu_engine::error::EngineError;
use wagu_engine::persist::SessionStore;
use wagu_engine::sessions::{CreateRoom, JoinRequest, Rooms, SessionHandle};
use wagu_proto::ids::*;
use wagu_proto::model::VoteState;
#[allow(unused_imports)]
use wagu_proto::model::*;
use wagu_proto::{ClientMessage, ErrorCode, Identity, ResumeRequest, ServerMessage};
use wagu_storage::{EphemeralStore, testbed};

mod common;
use common::*;

async fn stores(test: &str) -> Vec<EphemeralStore> {
    // The embedded file lives in a directory of its own; it is left in the system's temp
    // directory (small, and the OS cleans it), as the store may outlive this function's scope.
    let dir = std::env::temp_dir().join(format!(
        "wagu-actors-{test}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let embedded = EphemeralStore::embedded(&dir, Duration::from_secs(1))
        .await
        .expect("embedded store opens");
    let mut v = vec![EphemeralStore::memory(), embedded];
    if let Some(url) = testbed::service(testbed::REDIS_URL, test) {
        v.push(
            EphemeralStore::redis(&url)
                .await
                .unwrap_or_else(|e| panic!("Redis promised at {url} but unreachable: {e}")),
        );
    }
    v
}

/// Rooms on the in-process store (tests that need no Redis variant).
async fn memory_rooms(config: EngineConfig) -> Rooms {
    Rooms::start(
        SessionStore::new(EphemeralStore::memory(), Duration::from_secs(60)),
        config,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn panicking_room_restarts_from_snapshot_without_losing_acked_state() {
    for store in stores("panicking_room_restarts_from_snapshot").await {
        let backend = store.backend();
        let rooms = Rooms::start(
            SessionStore::new(store, Duration::from_secs(600)),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let created = rooms.create(CreateRoom::default()).await.unwrap();
        let mut host = join(
            &rooms,
            &created.share,
            "Host",
            Some(created.host_key.clone()),
        )
        .await;
        command(
            &mut host,
            ClientMessage::AddCandidate {
                id: RequestId(2),
                place_id: PlaceId("p1".into()),
                name: "Gukbap".into(),
                lat: 37.5,
                lng: 127.0,
                note: None,
            },
        )
        .await;
        command(
            &mut host,
            ClientMessage::Vote {
                id: RequestId(3),
                choices: vec![PlaceId("p1".into())],
            },
        )
        .await;
        command(
            &mut host,
            ClientMessage::Chat {
                id: RequestId(4),
                text: "acked before the crash".into(),
            },
        )
        .await;
        let seq_before = host.last_seq;

        host.session.crash_room();
        // The old actor's queues end: the connection is told to resume (no close frame).
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(f) = host.rx.recv().await {
                if let Frame::Close(_) = f {
                    panic!("a crash must not look like a deliberate close");
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "[{backend}] queue did not end after the crash"
        );

        // Resume on a new connection: the supervisor restarted the room with everything acked.
        let (out, mut rx) = Outbound::channel(256);
        let session = rooms
            .join(
                JoinRequest {
                    id: RequestId(10),
                    share: created.share.clone(),
                    name: "Host".into(),
                    host_key: None,
                    resume: Some(ResumeRequest {
                        participant: host.session.participant,
                        token: host.token.clone(),
                        last_seq: seq_before,
                    }),
                    account: None,
                },
                out,
            )
            .await
            .unwrap_or_else(|e| panic!("[{backend}] resume after restart failed: {e}"));
        assert!(session.resumed);
        let frames = until_reply(&mut rx, 10).await;
        assert!(
            matches!(frames[0], ServerMessage::Resumed { .. }),
            "[{backend}] {:?}",
            frames[0]
        );
        // Nothing acknowledged was lost: check through a fresh joiner's snapshot.
        let viewer = join(&rooms, &created.share, "Viewer", None).await;
        drop(viewer.rx);
        let room = welcome_room(&rooms, &created.share, "V2").await;
        assert_eq!(room.candidates.len(), 1, "[{backend}] candidate lost");
        assert_eq!(room.ballots.len(), 1, "[{backend}] vote lost");
        assert_eq!(
            room.chat.last().unwrap().text,
            "acked before the crash",
            "[{backend}]"
        );
        assert!(
            room.seq > seq_before,
            "[{backend}] restart must continue the sequence"
        );
        assert!(matches!(room.vote, VoteState::Open));
        rooms.shutdown().await;
    }
}

#[tokio::test]
async fn empty_room_retires_and_its_link_dies() {
    for store in stores("empty_room_retires_and_its_link_dies").await {
        let mut config = EngineConfig::default();
        config.room.empty_ttl_ms = 200;
        config.room.away_grace_ms = 100;
        let rooms = Rooms::start(SessionStore::new(store, Duration::from_secs(600)), config)
            .await
            .unwrap();
        let created = rooms.create(CreateRoom::default()).await.unwrap();
        let c = join(&rooms, &created.share, "A", None).await;
        assert_eq!(rooms.count().await.unwrap(), 1);
        c.session.disconnect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while rooms.count().await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "room did not retire");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (out, _rx) = Outbound::channel(8);
        let err = rooms
            .join(
                JoinRequest {
                    id: RequestId(1),
                    share: created.share.clone(),
                    name: "B".into(),
                    host_key: None,
                    resume: None,
                    account: None,
                },
                out,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::UnknownSession), "{err:?}");
        rooms.shutdown().await;
    }
}

#[tokio::test]
async fn node_room_limit_is_enforced() {
    let config = EngineConfig {
        max_rooms: 2,
        ..EngineConfig::default()
    };
    let rooms = memory_rooms(config).await;
    rooms.create(CreateRoom::default()).await.unwrap();
    rooms.create(CreateRoom::default()).await.unwrap();
    let err = rooms.create(CreateRoom::default()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Capacity);
    rooms.shutdown().await;
}

#[tokio::test]
async fn slow_connection_is_dropped_without_slowing_the_room() {
    let config = EngineConfig {
        outbound_queue: 8,
        ..EngineConfig::default()
    };
    let rooms = memory_rooms(config).await;
    let created = rooms.create(CreateRoom::default()).await.unwrap();
    let mut fast = join(&rooms, &created.share, "Fast", None).await;
    // The slow client's queue holds 8 frames and nobody reads it.
    let (out, mut slow_rx) = Outbound::channel(8);
    let slow = rooms
        .join(
            JoinRequest {
                id: RequestId(1),
                share: created.share.clone(),
                name: "Slow".into(),
                host_key: None,
                resume: None,
                account: None,
            },
            out,
        )
        .await
        .unwrap();
    let mut saw_away = false;
    for i in 0..50u64 {
        let frames = command(
            &mut fast,
            ClientMessage::Chat {
                id: RequestId(100 + i),
                text: format!("{i}"),
            },
        )
        .await;
        assert!(matches!(frames.last(), Some(ServerMessage::Ack { .. })));
        saw_away |= frames.iter().any(|f| matches!(f, ServerMessage::ParticipantAway { participant, .. } if *participant == slow.participant));
    }
    // The fast client saw the slow one go away; the slow queue ends without a close frame.
    let mut frames = 0;
    while let Some(f) = slow_rx.recv().await {
        assert!(matches!(f, Frame::Text(_)));
        frames += 1;
    }
    assert!(frames <= 8);
    assert!(
        saw_away,
        "the room announced the lagging participant as away"
    );
    rooms.shutdown().await;
}

mod streams {
    use super::*;
    use wagu_engine::sessions::{CreateStream, Streams};
    use wagu_proto::ids::StreamId;
    use wagu_proto::model::LatLng;

    async fn watch(
        streams: &Streams,
        id: &StreamId,
        name: &str,
        key: Option<HostKey>,
        client_key: Option<&str>,
        resume: Option<ResumeRequest>,
    ) -> Result<(SessionHandle, Receiver, Vec<ServerMessage>), EngineError> {
        let (out, mut rx) = Outbound::channel(256);
        let s = streams
            .join(
                id,
                RequestId(1),
                name.into(),
                key,
                resume,
                client_key.map(Identity::from),
                out,
            )
            .await?;
        let frames = until_reply(&mut rx, 1).await;
        Ok((s, rx, frames))
    }

    #[tokio::test]
    async fn crashed_stream_restarts_with_chat_and_bans_kept() {
        for store in stores("crashed_stream_restarts_with_chat_and_bans_kept").await {
            let backend = store.backend();
            let streams = Streams::start(
                SessionStore::new(store, Duration::from_secs(600)),
                EngineConfig::default(),
                None,
            )
            .await
            .unwrap();
            let created = streams
                .create(CreateStream {
                    title: "Mukbang".into(),
                    place_id: PlaceId("p1".into()),
                    location: Some(LatLng {
                        lat: 37.5,
                        lng: 127.0,
                    }),
                    menu: vec![],
                })
                .await
                .unwrap();
            let id = created.stream_id.clone();
            let (streamer, mut srx, _) = watch(
                &streams,
                &id,
                "Chef",
                Some(created.streamer_key.clone()),
                None,
                None,
            )
            .await
            .unwrap();
            let (viewer, mut vrx, frames) =
                watch(&streams, &id, "Fan", None, Some("fan-device"), None)
                    .await
                    .unwrap();
            let ServerMessage::StreamWelcome { resume_token, .. } = &frames[0] else {
                panic!("{:?}", frames[0])
            };
            let token = resume_token.clone();
            let (troll, _trx, _) = watch(&streams, &id, "Troll", None, Some("troll-device"), None)
                .await
                .unwrap();
            viewer
                .send(
                    ClientMessage::Chat {
                        id: RequestId(2),
                        text: "acked chat".into(),
                    },
                    Instant::now(),
                )
                .unwrap();
            let seen = until_reply(&mut vrx, 2).await;
            let last = seen.iter().filter_map(|m| m.seq()).max().unwrap();
            streamer
                .send(
                    ClientMessage::Ban {
                        id: RequestId(3),
                        participant: troll.participant,
                    },
                    Instant::now(),
                )
                .unwrap();
            until_reply(&mut srx, 3).await;

            streamer.crash_room();
            tokio::time::sleep(Duration::from_millis(200)).await;
            // The viewer resumes on the restarted stream and misses nothing.
            let r = ResumeRequest {
                participant: viewer.participant,
                token,
                last_seq: last,
            };
            let (_v2, _rx2, frames) =
                watch(&streams, &id, "Fan", None, Some("fan-device"), Some(r))
                    .await
                    .unwrap_or_else(|e| panic!("[{backend}] resume after restart: {e}"));
            assert!(
                matches!(frames[0], ServerMessage::Resumed { .. }),
                "[{backend}] {:?}",
                frames[0]
            );
            // The ban survived the crash.
            let err = watch(
                &streams,
                &id,
                "Troll again",
                None,
                Some("troll-device"),
                None,
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), ErrorCode::Banned, "[{backend}]");
            let (_n, _nrx, frames) = watch(&streams, &id, "Newcomer", None, None, None)
                .await
                .unwrap();
            let ServerMessage::StreamWelcome { stream, .. } = &frames[0] else {
                panic!()
            };
            assert_eq!(
                stream.chat.last().unwrap().text,
                "acked chat",
                "[{backend}]"
            );
            streams.shutdown().await;
        }
    }
}

#[tokio::test]
async fn resume_after_a_long_gap_replays_everything_without_lagging() {
    let rooms = memory_rooms(EngineConfig::default()).await;
    let created = rooms.create(CreateRoom::default()).await.unwrap();
    let mut a = join(&rooms, &created.share, "A", None).await;
    let b = join(&rooms, &created.share, "B", None).await;
    let (b_id, b_token, b_seen) = (b.session.participant, b.token.clone(), b.last_seq);
    b.session.disconnect();
    drop(b);
    // Far more missed events than a small queue would hold, within the replay buffer.
    let gap = EngineConfig::default().room.replay_capacity as u64 - 10;
    for i in 0..gap {
        command(
            &mut a,
            ClientMessage::Chat {
                id: RequestId(1000 + i),
                text: format!("{i}"),
            },
        )
        .await;
    }
    let (out, mut rx) = Outbound::channel(EngineConfig::default().outbound_queue);
    let session = rooms
        .join(
            JoinRequest {
                id: RequestId(7),
                share: created.share.clone(),
                name: "B".into(),
                host_key: None,
                resume: Some(ResumeRequest {
                    participant: b_id,
                    token: b_token,
                    last_seq: b_seen,
                }),
                account: None,
            },
            out,
        )
        .await
        .unwrap();
    assert!(session.resumed);
    let frames = until_reply(&mut rx, 7).await;
    assert!(
        matches!(frames[0], ServerMessage::Resumed { .. }),
        "{:?}",
        frames[0]
    );
    let chats = frames
        .iter()
        .filter(|m| matches!(m, ServerMessage::Chat { .. }))
        .count() as u64;
    assert_eq!(chats, gap, "every missed chat replayed");
    rooms.shutdown().await;
}

#[tokio::test]
async fn a_kick_reaches_a_client_whose_queue_is_full() {
    let rooms = memory_rooms(EngineConfig::default()).await;
    let created = rooms.create(CreateRoom::default()).await.unwrap();
    let mut host = join(
        &rooms,
        &created.share,
        "Host",
        Some(created.host_key.clone()),
    )
    .await;
    // A client with a tiny queue that stops reading: welcome + ack, then chats fill it.
    let (out, mut rx, slot) = Outbound::channel_with_close(4);
    let slow = rooms
        .join(
            JoinRequest {
                id: RequestId(1),
                share: created.share.clone(),
                name: "Slow".into(),
                host_key: None,
                resume: None,
                account: None,
            },
            out,
        )
        .await
        .unwrap();
    for i in 0..2u64 {
        command(
            &mut host,
            ClientMessage::Chat {
                id: RequestId(10 + i),
                text: "fill".into(),
            },
        )
        .await;
    }
    command(
        &mut host,
        ClientMessage::Kick {
            id: RequestId(20),
            participant: slow.participant,
        },
    )
    .await;
    // The queue had no room for the close frame; the code waits in the slot.
    let mut frames = 0;
    while let Some(f) = rx.recv().await {
        assert!(
            matches!(f, Frame::Text(_)),
            "no room was left for a close frame"
        );
        frames += 1;
    }
    assert!(frames <= 4);
    assert_eq!(slot.get(), Some(wagu_proto::close::KICKED));
    rooms.shutdown().await;
}

/// Commits the embedded store made so far (`None` for the other backends).
fn commits(store: &EphemeralStore) -> Option<u64> {
    match store {
        EphemeralStore::Embedded(e) => {
            Some(e.stats().commits.load(std::sync::atomic::Ordering::Relaxed))
        }
        _ => None,
    }
}

#[tokio::test]
async fn a_busy_room_shares_journal_writes_and_keeps_its_order() {
    for store in stores("a_busy_room_shares_journal_writes_and_keeps_its_order").await {
        let backend = store.backend();
        let rooms = Rooms::start(
            SessionStore::new(store.clone(), Duration::from_secs(600)),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let created = rooms.create(CreateRoom::default()).await.unwrap();
        let mut host = join(
            &rooms,
            &created.share,
            "Host",
            Some(created.host_key.clone()),
        )
        .await;
        let before = commits(&store);
        // 100 chats at once: far faster than one fsync each.
        for i in 0..100u64 {
            host.session
                .send(
                    ClientMessage::Chat {
                        id: RequestId(100 + i),
                        text: format!("c{i}"),
                    },
                    Instant::now(),
                )
                .unwrap();
        }
        let mut acks = Vec::new();
        let mut events = Vec::new();
        while acks.len() < 100 {
            match next(&mut host.rx).await {
                ServerMessage::Ack { id, seq, .. } => {
                    // Each ack follows its own event.
                    assert_eq!(seq, events.last().copied(), "[{backend}] ack {id:?}");
                    acks.push(id.0);
                }
                ServerMessage::Chat { seq, message } => {
                    assert_eq!(message.text, format!("c{}", events.len()));
                    events.push(seq);
                }
                other => panic!("[{backend}] unexpected {other:?}"),
            }
        }
        assert_eq!(
            acks,
            (100..200).collect::<Vec<_>>(),
            "[{backend}] acks in order"
        );
        let first = events[0].0;
        let seqs: Vec<u64> = events.iter().map(|s| s.0).collect();
        assert_eq!(
            seqs,
            (first..first + 100).collect::<Vec<_>>(),
            "[{backend}] no gap"
        );
        if let (Some(before), Some(after)) = (before, commits(&store)) {
            assert!(
                after - before < 100,
                "[{backend}] 100 journaled chats took {} commits: no group commit",
                after - before
            );
        }
        // Everything acknowledged is in the store: a crash now loses none of it.
        host.session.crash_room();
        let (out, mut rx) = Outbound::channel(512);
        rooms
            .join(
                JoinRequest {
                    id: RequestId(1000),
                    share: created.share.clone(),
                    name: "Late".into(),
                    host_key: None,
                    resume: None,
                    account: None,
                },
                out,
            )
            .await
            .unwrap();
        let frames = until_reply(&mut rx, 1000).await;
        let ServerMessage::Welcome { room, .. } = &frames[0] else {
            panic!("[{backend}] welcome first, got {:?}", frames[0]);
        };
        assert_eq!(
            room.chat.len(),
            100,
            "[{backend}] every acked chat survived"
        );
        assert_eq!(room.chat.last().unwrap().text, "c99");
    }
}
