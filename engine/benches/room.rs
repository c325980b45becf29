//! Criterion benchmark of the room state machine alone: how many commands per second one room
//! applies (no actor, no sockets, no JSON). Run: `cargo bench -p wagu-engine --bench room`.
//! Also, the `decode` group: one client frame from JSON bytes to a validated message, as the
//! gateway does for every frame (`wagu_proto::codec::decode_client`), beside serde's general
//! path for `ClientMessage` alone (what decoding cost before the `presence` fast path).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wagu_engine::room::{ConnId, Input, Room, RoomConfig, RoomSpec};
use wagu_proto::ClientMessage;
use wagu_proto::ids::*;
use wagu_proto::model::*;

fn room_with(participants: u32) -> (Room, Vec<(ParticipantId, ConnId)>) {
    let spec = RoomSpec {
        id: RoomId("bench".into()),
        title: "bench".into(),
        center: None,
        vote_mode: VoteMode::Approval { max: 3 },
        share: ShareToken("s".into()),
        host_key: HostKey("h".into()),
        share_expires_at: u64::MAX / 2,
    };
    let config = RoomConfig {
        // Keep the replay buffer realistic but bounded; the benchmark runs millions of events.
        replay_capacity: 1024,
        ..RoomConfig::default()
    };
    let mut room = Room::new(spec, config, 0);
    let mut members = Vec::new();
    for i in 0..participants {
        let conn = ConnId(u64::from(i));
        let out = room.handle(
            0,
            Input::Join {
                conn,
                id: RequestId(1),
                name: format!("p{i}"),
                host_key: (i == 0).then(|| HostKey("h".into())),
                resume: None,
                resume_token: ResumeToken(format!("t{i}")),
                client_key: None,
            },
        );
        let pid = out
            .iter()
            .find_map(|o| match o {
                wagu_engine::room::Output::Attach { participant, .. } => Some(*participant),
                _ => None,
            })
            .unwrap();
        members.push((pid, conn));
    }
    for p in 0..10 {
        let (pid, conn) = members[0];
        room.handle(
            0,
            Input::Command {
                conn,
                participant: pid,
                msg: ClientMessage::AddCandidate {
                    id: RequestId(2),
                    place_id: PlaceId(format!("place{p}")),
                    name: "x".into(),
                    lat: 37.0,
                    lng: 127.0,
                    note: None,
                },
            },
        );
    }
    (room, members)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("room");
    g.throughput(Throughput::Elements(1));
    for n in [10u32, 50] {
        g.bench_with_input(BenchmarkId::new("presence", n), &n, |b, &n| {
            let (mut room, members) = room_with(n);
            let mut now = 1u64;
            let mut i = 0usize;
            b.iter(|| {
                let (pid, conn) = members[i % members.len()];
                i += 1;
                now += 1;
                let vp = Viewport {
                    center: LatLng {
                        lat: 37.0 + (i as f64) * 1e-6,
                        lng: 127.0,
                    },
                    zoom: 15.0,
                    bounds: None,
                };
                black_box(room.handle(
                    now,
                    Input::Command {
                        conn,
                        participant: pid,
                        msg: ClientMessage::Presence {
                            id: None,
                            viewport: Some(vp),
                            pointer: None,
                        },
                    },
                ));
            });
        });
        g.bench_with_input(BenchmarkId::new("vote", n), &n, |b, &n| {
            let (mut room, members) = room_with(n);
            let mut i = 0usize;
            b.iter(|| {
                let (pid, conn) = members[i % members.len()];
                i += 1;
                let choice = PlaceId(format!("place{}", i % 10));
                black_box(room.handle(
                    1,
                    Input::Command {
                        conn,
                        participant: pid,
                        msg: ClientMessage::Vote {
                            id: RequestId(3),
                            choices: vec![choice],
                        },
                    },
                ));
            });
        });
        g.bench_with_input(BenchmarkId::new("chat", n), &n, |b, &n| {
            let (mut room, members) = room_with(n);
            let mut i = 0usize;
            b.iter(|| {
                let (pid, conn) = members[i % members.len()];
                i += 1;
                black_box(room.handle(
                    1,
                    Input::Command {
                        conn,
                        participant: pid,
                        msg: ClientMessage::Chat {
                            id: RequestId(4),
                            text: "맛있겠다".into(),
                        },
                    },
                ));
            });
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let presence = br#"{"type":"presence","viewport":{"center":{"lat":35.6812,"lng":139.7671},"zoom":14.5},"pointer":{"lat":35.6815,"lng":139.7668}}"#;
    let chat = br#"{"type":"chat","id":42,"text":"the ramen place by the station?"}"#;
    for (name, frame) in [("presence", &presence[..]), ("chat", &chat[..])] {
        g.bench_function(BenchmarkId::new("decode_client", name), |b| {
            b.iter(|| wagu_proto::codec::decode_client(black_box(frame)).unwrap())
        });
        g.bench_function(BenchmarkId::new("serde_general_path", name), |b| {
            b.iter(|| serde_json::from_slice::<ClientMessage>(black_box(frame)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench, decode);
criterion_main!(benches);
