//! A session that is ending answers like one that has ended, for every kind: a join racing a
//! room's `close_room` or a stream's `end_stream` gets `room_closed` or `unknown_room` (do not
//! retry), never `unavailable` (which tells a client to retry). The race is real: one task
//! joins in a tight loop on its own worker thread while another ends the session, many times.

use std::time::{Duration, Instant};
use wagu_engine::actor::EngineConfig;
use wagu_engine::actor::outbound::Receiver;
use wagu_engine::actor::outbound::{Frame, Outbound};
use wagu_engine::error::EngineError;
use wagu_engine::persist::SessionStore;
use wagu_engine::sessions::{CreateRoom, CreateStream, JoinRequest, Rooms, Streams};
use wagu_proto::codec::decode_server;
use wagu_proto::ids::*;
use wagu_proto::{ClientMessage, ErrorCode, ServerMessage};
use wagu_storage::blob::FsBlobs;
use wagu_storage::{BlobStore, EphemeralStore};

/// Rounds of "end while someone keeps joining" per kind. Before the fix about one join in
/// twelve that met a stream in its last moments answered `unavailable`.
const ROUNDS: usize = 25;

async fn until_reply(rx: &mut Receiver, id: u64) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    loop {
        let m = match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Frame::Text(b))) => decode_server(&b).unwrap(),
            other => panic!("expected a frame, got {other:?}"),
        };
        let done = matches!(&m, ServerMessage::Ack { id: r, .. } | ServerMessage::Error { id: Some(r), .. } if r.0 == id);
        seen.push(m);
        if done {
            return seen;
        }
    }
}

/// What one racing join was told.
#[derive(Debug, Default)]
struct Answers {
    joined: usize,
    closed: usize,
    unknown: usize,
    other: Vec<String>,
}

impl Answers {
    /// Counts one answer; returns whether the racer may stop (the end is certainly visible).
    fn count(&mut self, r: Result<(), EngineError>) -> bool {
        match r {
            Ok(()) => self.joined += 1,
            Err(e) if e.code() == ErrorCode::RoomClosed => self.closed += 1,
            Err(e) if e.code() == ErrorCode::UnknownRoom => self.unknown += 1,
            Err(e) => self.other.push(format!("{:?} {e}", e.code())),
        }
        self.unknown > 0 || self.closed >= 20
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wagu-ending-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_racing_end_stream_is_told_the_stream_ended_never_to_retry() {
    let dir = temp_dir("streams");
    let records = BlobStore::Fs(FsBlobs::open(dir.clone()).await.unwrap());
    let streams = Streams::start(
        SessionStore::new(EphemeralStore::memory(), Duration::from_secs(600)),
        EngineConfig::default(),
        Some(records),
    )
    .await
    .unwrap();
    let mut all = Answers::default();
    for round in 0..ROUNDS {
        let created = streams
            .create(CreateStream {
                title: "Last bowl".into(),
                place_id: PlaceId("p1".into()),
                location: None,
                menu: vec![],
            })
            .await
            .unwrap();
        let (out, mut rx) = Outbound::channel(256);
        let streamer = streams
            .join(
                &created.stream_id,
                RequestId(1),
                "Chef".into(),
                Some(created.streamer_key.clone()),
                None,
                None,
                out,
            )
            .await
            .unwrap();
        until_reply(&mut rx, 1).await;
        let racer = {
            let streams = streams.clone();
            let id = created.stream_id.clone();
            tokio::spawn(async move {
                let mut answers = Answers::default();
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let (out, _rx) = Outbound::channel(64);
                    let r = streams
                        .join(&id, RequestId(1), "Fan".into(), None, None, None, out)
                        .await
                        .map(|s| s.disconnect());
                    if answers.count(r) || Instant::now() > deadline {
                        return answers;
                    }
                }
            })
        };
        // Let the racer get going, then end the stream under it.
        tokio::time::sleep(Duration::from_millis(2 + (round as u64 % 5))).await;
        streamer
            .send(
                ClientMessage::EndStream { id: RequestId(2) },
                Instant::now(),
            )
            .unwrap();
        let a = racer.await.unwrap();
        all.joined += a.joined;
        all.closed += a.closed;
        all.unknown += a.unknown;
        all.other.extend(a.other);
    }
    streams.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        all.other.is_empty(),
        "joins racing end_stream must get room_closed or unknown_room; got {:?} ({all:?})",
        all.other
    );
    assert!(
        all.closed > 0,
        "the race never met an ending stream: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_racing_close_room_is_told_the_room_closed_never_to_retry() {
    // Racing guests only disconnect (they stay listed as away): room for all of them.
    let mut config = EngineConfig::default();
    config.room.max_participants = 1_000_000;
    let rooms = Rooms::start(
        SessionStore::new(EphemeralStore::memory(), Duration::from_secs(600)),
        config,
    )
    .await
    .unwrap();
    let mut all = Answers::default();
    for round in 0..ROUNDS {
        let created = rooms.create(CreateRoom::default()).await.unwrap();
        let (out, mut rx) = Outbound::channel(256);
        let host = rooms
            .join(
                JoinRequest {
                    id: RequestId(1),
                    share: created.share.clone(),
                    name: "Host".into(),
                    host_key: Some(created.host_key.clone()),
                    resume: None,
                    account: None,
                },
                out,
            )
            .await
            .unwrap();
        until_reply(&mut rx, 1).await;
        let racer = {
            let rooms = rooms.clone();
            let share = created.share.clone();
            tokio::spawn(async move {
                let mut answers = Answers::default();
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut n = 0;
                loop {
                    n += 1;
                    let (out, _rx) = Outbound::channel(64);
                    let r = rooms
                        .join(
                            JoinRequest {
                                id: RequestId(1),
                                share: share.clone(),
                                name: format!("G{n}"),
                                host_key: None,
                                resume: None,
                                account: None,
                            },
                            out,
                        )
                        .await
                        .map(|s| s.disconnect());
                    if answers.count(r) || Instant::now() > deadline {
                        return answers;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(2 + (round as u64 % 5))).await;
        host.send(
            ClientMessage::CloseRoom { id: RequestId(2) },
            Instant::now(),
        )
        .unwrap();
        let a = racer.await.unwrap();
        all.joined += a.joined;
        all.closed += a.closed;
        all.unknown += a.unknown;
        all.other.extend(a.other);
    }
    rooms.shutdown().await;
    assert!(
        all.other.is_empty(),
        "joins racing close_room must get room_closed or unknown_room; got {:?} ({all:?})",
        all.other
    );
}
