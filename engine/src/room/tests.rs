//! Unit tests of the room rules, driven with a fake clock.
//!
//! Why ~920 lines: one scenario test per room rule, each spelling out its inputs; they share
//! the small harness at the top.

use super::*;
use wagu_proto::limits::CHAT_TAIL;

pub(crate) struct Harness {
    pub room: Room,
    pub now: UnixMillis,
    next_conn: u64,
    next_req: u64,
}

pub(crate) fn spec(mode: VoteMode) -> RoomSpec {
    RoomSpec {
        id: RoomId("room1".into()),
        title: "Lunch".into(),
        center: None,
        vote_mode: mode,
        share: ShareToken("share".into()),
        host_key: HostKey("hostkey".into()),
        share_expires_at: 1_000_000,
    }
}

impl Harness {
    pub fn new(mode: VoteMode) -> Self {
        Harness {
            room: Room::new(spec(mode), RoomConfig::default(), 1000),
            now: 1000,
            next_conn: 1,
            next_req: 1,
        }
    }

    pub fn req(&mut self) -> RequestId {
        self.next_req += 1;
        RequestId(self.next_req)
    }

    /// Joins; returns (participant, conn, outputs).
    pub fn join(&mut self, name: &str, host: bool) -> (ParticipantId, ConnId, Vec<Output>) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let id = self.req();
        let out = self.room.handle(
            self.now,
            Input::Join {
                conn,
                id,
                name: name.into(),
                host_key: host.then(|| HostKey("hostkey".into())),
                resume: None,
                resume_token: ResumeToken(format!("tok-{}", conn.0)),
                client_key: None,
            },
        );
        let pid = out
            .iter()
            .find_map(|o| match o {
                Output::Attach { participant, .. } => Some(*participant),
                _ => None,
            })
            .expect("join attached");
        (pid, conn, out)
    }

    pub fn cmd(&mut self, pid: ParticipantId, conn: ConnId, msg: ClientMessage) -> Vec<Output> {
        self.room.handle(
            self.now,
            Input::Command {
                conn,
                participant: pid,
                msg,
            },
        )
    }
}

/// The reply (ack or error) in a set of outputs.
pub(crate) fn reply(out: &[Output]) -> &ServerMessage {
    out.iter()
        .rev()
        .find_map(|o| match o {
            Output::Send { msg, .. }
                if matches!(msg, ServerMessage::Ack { .. } | ServerMessage::Error { .. }) =>
            {
                Some(msg)
            }
            _ => None,
        })
        .expect("a reply")
}

fn error_code(out: &[Output]) -> Option<ErrorCode> {
    match reply(out) {
        ServerMessage::Error { code, .. } => Some(*code),
        _ => None,
    }
}

fn add(h: &mut Harness, pid: ParticipantId, conn: ConnId, place: &str) -> Vec<Output> {
    let id = h.req();
    h.cmd(
        pid,
        conn,
        ClientMessage::AddCandidate {
            id,
            place_id: PlaceId(place.into()),
            name: format!("Place {place}"),
            lat: 37.5,
            lng: 127.0,
            note: None,
        },
    )
}

fn vote(h: &mut Harness, pid: ParticipantId, conn: ConnId, places: &[&str]) -> Vec<Output> {
    let id = h.req();
    h.cmd(
        pid,
        conn,
        ClientMessage::Vote {
            id,
            choices: places.iter().map(|p| PlaceId(p.to_string())).collect(),
        },
    )
}

#[test]
fn join_gives_welcome_then_ack_and_announces() {
    let mut h = Harness::new(VoteMode::Single);
    let (host, _, out) = h.join("Mina", true);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: ServerMessage::Welcome { .. },
            ..
        }
    )));
    assert!(matches!(reply(&out), ServerMessage::Ack { .. }));
    assert_eq!(h.room.host(), Some(host));
    let (_, _, out) = h.join("Jun", false);
    let announced = out.iter().any(|o| {
        matches!(o, Output::Broadcast { msg: ServerMessage::ParticipantJoined { participant, .. }, .. } if participant.name == "Jun")
    });
    assert!(announced);
    // The newcomer's own announcement precedes its attach, so it only sees it in the snapshot.
    let pos_broadcast = out
        .iter()
        .position(|o| matches!(o, Output::Broadcast { .. }))
        .unwrap();
    let pos_attach = out
        .iter()
        .position(|o| matches!(o, Output::Attach { .. }))
        .unwrap();
    assert!(pos_broadcast < pos_attach);
}

#[test]
fn expired_share_and_full_room_are_refused() {
    let mut h = Harness::new(VoteMode::Single);
    h.room.config.max_participants = 1;
    h.join("A", true);
    let out = h.room.handle(
        h.now,
        Input::Join {
            conn: ConnId(99),
            id: RequestId(1),
            name: "B".into(),
            host_key: None,
            resume: None,
            resume_token: ResumeToken("t".into()),
            client_key: None,
        },
    );
    assert!(matches!(
        out[0],
        Output::JoinRefused {
            code: ErrorCode::RoomFull,
            ..
        }
    ));
    h.now = 2_000_000;
    let out = h.room.handle(
        h.now,
        Input::Join {
            conn: ConnId(100),
            id: RequestId(2),
            name: "C".into(),
            host_key: None,
            resume: None,
            resume_token: ResumeToken("t".into()),
            client_key: None,
        },
    );
    assert!(matches!(
        out[0],
        Output::JoinRefused {
            code: ErrorCode::ShareExpired,
            ..
        }
    ));
}

#[test]
fn duplicate_candidate_refused_and_only_adder_or_host_removes() {
    let mut h = Harness::new(VoteMode::Single);
    let (host, hc) = {
        let (p, c, _) = h.join("Host", true);
        (p, c)
    };
    let (a, ac, _) = h.join("A", false);
    let (b, bc, _) = h.join("B", false);
    assert!(error_code(&add(&mut h, a, ac, "p1")).is_none());
    assert_eq!(
        error_code(&add(&mut h, b, bc, "p1")),
        Some(ErrorCode::DuplicateCandidate)
    );
    let id = h.req();
    let out = h.cmd(
        b,
        bc,
        ClientMessage::RemoveCandidate {
            id,
            place_id: PlaceId("p1".into()),
        },
    );
    assert_eq!(error_code(&out), Some(ErrorCode::Forbidden));
    let id = h.req();
    let out = h.cmd(
        host,
        hc,
        ClientMessage::RemoveCandidate {
            id,
            place_id: PlaceId("p1".into()),
        },
    );
    assert_eq!(error_code(&out), None);
    assert!(h.room.candidates().is_empty());
}

#[test]
fn votes_tally_change_withdraw_and_removed_candidate_drops_votes() {
    let mut h = Harness::new(VoteMode::Approval { max: 2 });
    let (host, hc, _) = h.join("Host", true);
    let (a, ac, _) = h.join("A", false);
    add(&mut h, host, hc, "x");
    add(&mut h, host, hc, "y");
    add(&mut h, host, hc, "z");
    assert_eq!(error_code(&vote(&mut h, a, ac, &["x", "y"])), None);
    assert_eq!(
        error_code(&vote(&mut h, a, ac, &["x", "y", "z"])),
        Some(ErrorCode::TooManyChoices)
    );
    assert_eq!(
        error_code(&vote(&mut h, a, ac, &["x", "x"])),
        Some(ErrorCode::Invalid)
    );
    assert_eq!(
        error_code(&vote(&mut h, a, ac, &["nope"])),
        Some(ErrorCode::UnknownCandidate)
    );
    assert_eq!(error_code(&vote(&mut h, host, hc, &["y"])), None);
    let t = votes::tally(h.room.candidates(), h.room.ballots());
    assert_eq!(t.iter().map(|e| e.votes).collect::<Vec<_>>(), vec![1, 2, 0]);
    // Removing y strips it from both ballots; the host's ballot becomes empty and disappears.
    let id = h.req();
    h.cmd(
        host,
        hc,
        ClientMessage::RemoveCandidate {
            id,
            place_id: PlaceId("y".into()),
        },
    );
    assert_eq!(h.room.ballots().get(&a), Some(&vec![PlaceId("x".into())]));
    assert!(!h.room.ballots().contains_key(&host));
    // Withdraw.
    assert_eq!(error_code(&vote(&mut h, a, ac, &[])), None);
    assert!(h.room.ballots().is_empty());
}

#[test]
fn only_host_closes_vote_and_decision_is_in_snapshot() {
    let mut h = Harness::new(VoteMode::Single);
    let (host, hc, _) = h.join("Host", true);
    let (a, ac, _) = h.join("A", false);
    add(&mut h, a, ac, "x");
    add(&mut h, a, ac, "y");
    vote(&mut h, a, ac, &["y"]);
    let id = h.req();
    assert_eq!(
        error_code(&h.cmd(a, ac, ClientMessage::CloseVote { id })),
        Some(ErrorCode::Forbidden)
    );
    let id = h.req();
    let out = h.cmd(host, hc, ClientMessage::CloseVote { id });
    let decision = out
        .iter()
        .find_map(|o| match o {
            Output::Broadcast {
                msg: ServerMessage::VoteClosed { decision, .. },
                ..
            } => Some(decision.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(decision.winner, Some(PlaceId("y".into())));
    assert_eq!(
        error_code(&vote(&mut h, a, ac, &["x"])),
        Some(ErrorCode::VoteClosed)
    );
    assert!(matches!(h.room.snapshot().vote, VoteState::Closed { .. }));
    let id = h.req();
    assert_eq!(
        error_code(&h.cmd(host, hc, ClientMessage::ReopenVote { id })),
        None
    );
    assert_eq!(error_code(&vote(&mut h, a, ac, &["x"])), None);
}

#[test]
fn chat_tail_is_bounded() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    for i in 0..(CHAT_TAIL + 5) {
        let id = h.req();
        h.cmd(
            a,
            ac,
            ClientMessage::Chat {
                id,
                text: format!("m{i}"),
            },
        );
    }
    let chat: Vec<_> = h.room.chat().collect();
    assert_eq!(chat.len(), CHAT_TAIL);
    assert_eq!(chat[0].text, "m5");
}

#[test]
fn presence_is_coalesced_and_rate_bounded() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    let vp = |lat: f64| Viewport {
        center: LatLng { lat, lng: 127.0 },
        zoom: 14.0,
        bounds: None,
    };
    // First update flushes at once (nothing was sent for a while).
    let out = h.cmd(
        a,
        ac,
        ClientMessage::Presence {
            id: None,
            viewport: Some(vp(1.0)),
            pointer: None,
        },
    );
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::BroadcastOthers { author, .. } if *author == a))
            .count(),
        1
    );
    // Three more within 50 ms: nothing is sent, the deadline says when.
    for lat in [2.0, 3.0, 4.0] {
        h.now += 10;
        let out = h.cmd(
            a,
            ac,
            ClientMessage::Presence {
                id: None,
                viewport: Some(vp(lat)),
                pointer: None,
            },
        );
        assert!(
            out.iter()
                .all(|o| !matches!(o, Output::Broadcast { .. } | Output::BroadcastOthers { .. }))
        );
    }
    let deadline = h.room.next_deadline().unwrap();
    assert_eq!(deadline, 1000 + 50);
    h.now = deadline;
    let out = h.room.handle(h.now, Input::Tick);
    let batch = out
        .iter()
        .find_map(|o| match o {
            Output::BroadcastOthers {
                msg: ServerMessage::Presence { updates, .. },
                ..
            } => Some(updates.clone()),
            _ => None,
        })
        .unwrap();
    // Latest wins: one entry, the last viewport.
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].viewport.unwrap().center.lat, 4.0);
}

#[test]
fn a_presence_batch_of_one_author_skips_that_author_and_a_shared_batch_goes_to_everyone() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    let presence = |lat: f64| ClientMessage::Presence {
        id: None,
        viewport: None,
        pointer: Some(LatLng { lat, lng: 127.0 }),
    };
    // A alone moved: the batch is A's own update, so it goes to everyone but A.
    let out = h.cmd(a, ac, presence(1.0));
    let only_a: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::BroadcastOthers {
                msg: ServerMessage::Presence { updates, .. },
                author,
            } => Some((*author, updates.len())),
            _ => None,
        })
        .collect();
    assert_eq!(only_a, vec![(a, 1)]);
    // A and B both move within the window: one batch with both, for everyone (each sees the
    // other's update; its own in the same frame is harmless).
    h.now += 10;
    h.cmd(a, ac, presence(2.0));
    h.now += 10;
    h.cmd(b, bc, presence(3.0));
    h.now = h.room.next_deadline().unwrap();
    let out = h.room.handle(h.now, Input::Tick);
    let shared: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                msg: ServerMessage::Presence { updates, .. },
                lossy: true,
            } => Some(updates.len()),
            Output::BroadcastOthers { .. } => panic!("a batch of two authors skipped one"),
            _ => None,
        })
        .collect();
    assert_eq!(shared, vec![2]);
}

#[test]
fn drop_then_resume_replays_exactly_what_was_missed() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    let seen = h.room.seq();
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: bc,
            participant: b,
        },
    );
    for i in 0..3 {
        let id = h.req();
        h.cmd(
            a,
            ac,
            ClientMessage::Chat {
                id,
                text: format!("while away {i}"),
            },
        );
    }
    let out = h.room.handle(
        h.now,
        Input::Join {
            conn: ConnId(50),
            id: RequestId(77),
            name: "B".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: b,
                token: ResumeToken(format!("tok-{}", bc.0)),
                last_seq: seen,
            }),
            resume_token: ResumeToken("unused".into()),
            client_key: None,
        },
    );
    let sent: Vec<Seq> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn: ConnId(50),
                msg,
            } => msg.seq(),
            _ => None,
        })
        .collect();
    // away, 3 chats, back: gapless from seen+1 to the current seq, no duplicates.
    let expected: Vec<Seq> = ((seen.0 + 1)..=h.room.seq().0).map(Seq).collect();
    assert_eq!(sent, expected);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: ServerMessage::Resumed { .. },
            ..
        }
    )));
    // The broadcast of "back" did not go to the new connection (it was attached after).
    let attach = out
        .iter()
        .position(|o| matches!(o, Output::Attach { .. }))
        .unwrap();
    let back = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Broadcast {
                    msg: ServerMessage::ParticipantBack { .. },
                    ..
                }
            )
        })
        .unwrap();
    assert!(back < attach);
}

#[test]
fn snapshot_shows_away_participants_as_away() {
    let mut h = Harness::new(VoteMode::Single);
    h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: bc,
            participant: b,
        },
    );
    let snap = h.room.snapshot();
    let info = snap.participants.iter().find(|p| p.id == b).unwrap();
    assert_eq!(info.status, Status::Away);
    let out = h.room.handle(
        h.now,
        Input::Join {
            conn: ConnId(80),
            id: RequestId(1),
            name: "B".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: b,
                token: ResumeToken(format!("tok-{}", bc.0)),
                last_seq: h.room.seq(),
            }),
            resume_token: ResumeToken("n".into()),
            client_key: None,
        },
    );
    assert!(out.iter().any(|o| matches!(o, Output::Attach { .. })));
    let snap = h.room.snapshot();
    assert_eq!(
        snap.participants.iter().find(|p| p.id == b).unwrap().status,
        Status::Online
    );
}

#[test]
fn resume_too_old_gets_snapshot_and_bad_token_is_refused() {
    let mut h = Harness::new(VoteMode::Single);
    h.room.replay = ReplayLog::new(4);
    let (a, ac, _) = h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: bc,
            participant: b,
        },
    );
    for _ in 0..10 {
        let id = h.req();
        h.cmd(
            a,
            ac,
            ClientMessage::Chat {
                id,
                text: "x".into(),
            },
        );
    }
    let resume = |token: &str| Input::Join {
        conn: ConnId(60),
        id: RequestId(1),
        name: "B".into(),
        host_key: None,
        resume: Some(ResumeRequest {
            participant: b,
            token: ResumeToken(token.into()),
            last_seq: Seq(1),
        }),
        resume_token: ResumeToken("unused".into()),
        client_key: None,
    };
    let out = h.room.handle(h.now, resume("wrong"));
    assert!(matches!(
        out[0],
        Output::JoinRefused {
            code: ErrorCode::ResumeFailed,
            ..
        }
    ));
    let out = h.room.handle(h.now, resume(&format!("tok-{}", bc.0)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: ServerMessage::Welcome { .. },
            ..
        }
    )));
}

#[test]
fn away_past_grace_times_out_and_empty_room_retires() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: ac,
            participant: a,
        },
    );
    let d = h.room.next_deadline().unwrap();
    assert_eq!(d, h.now + RoomConfig::default().away_grace_ms);
    h.now = d;
    let out = h.room.handle(h.now, Input::Tick);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            msg: ServerMessage::ParticipantLeft {
                reason: LeaveReason::Timeout,
                ..
            },
            ..
        }
    )));
    let d = h.room.next_deadline().unwrap();
    h.now = d;
    let out = h.room.handle(h.now, Input::Tick);
    assert!(out.contains(&Output::Retire));
}

#[test]
fn kick_rename_close_are_host_only() {
    let mut h = Harness::new(VoteMode::Single);
    let (host, hc, _) = h.join("Host", true);
    let (a, ac, _) = h.join("A", false);
    let id = h.req();
    assert_eq!(
        error_code(&h.cmd(
            a,
            ac,
            ClientMessage::Kick {
                id,
                participant: host
            }
        )),
        Some(ErrorCode::Forbidden)
    );
    let id = h.req();
    assert_eq!(
        error_code(&h.cmd(
            a,
            ac,
            ClientMessage::Rename {
                id,
                title: "x".into()
            }
        )),
        Some(ErrorCode::Forbidden)
    );
    let id = h.req();
    assert_eq!(
        error_code(&h.cmd(a, ac, ClientMessage::CloseRoom { id })),
        Some(ErrorCode::Forbidden)
    );
    let id = h.req();
    let out = h.cmd(host, hc, ClientMessage::Kick { id, participant: a });
    assert!(out.contains(&Output::Detach {
        conn: ac,
        code: close::KICKED
    }));
    // The kicked participant cannot resume.
    let out = h.room.handle(
        h.now,
        Input::Join {
            conn: ConnId(70),
            id: RequestId(1),
            name: "A".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: a,
                token: ResumeToken(format!("tok-{}", ac.0)),
                last_seq: Seq(0),
            }),
            resume_token: ResumeToken("n".into()),
            client_key: None,
        },
    );
    assert!(matches!(
        out[0],
        Output::JoinRefused {
            code: ErrorCode::ResumeFailed,
            ..
        }
    ));
    let id = h.req();
    let out = h.cmd(host, hc, ClientMessage::CloseRoom { id });
    assert!(out.contains(&Output::Retire));
    assert!(matches!(reply(&out), ServerMessage::Ack { .. }));
    assert!(h.room.is_closed());
}

#[test]
fn host_leaving_hands_over() {
    let mut h = Harness::new(VoteMode::Single);
    let (host, hc, _) = h.join("Host", true);
    let (a, _, _) = h.join("A", false);
    let id = h.req();
    h.cmd(host, hc, ClientMessage::Leave { id });
    assert_eq!(h.room.host(), Some(a));
}

#[test]
fn room_round_trips_through_serde() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    add(&mut h, a, ac, "x");
    vote(&mut h, a, ac, &["x"]);
    let json = serde_json::to_vec(&h.room).unwrap();
    let back: Room = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, h.room);
}

/// The `seq` of the last reliable event broadcast in `out`, if any.
pub(crate) fn last_event_seq(out: &[Output]) -> Option<Seq> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { msg, lossy: false } => msg.seq(),
            _ => None,
        })
        .next_back()
}

/// The `seq` of the `ack` in `out` (panics on an error or no reply).
pub(crate) fn ack_seq(out: &[Output]) -> Option<Seq> {
    match reply(out) {
        ServerMessage::Ack { seq, .. } => *seq,
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn resume_input(conn: u64, pid: ParticipantId, token_conn: ConnId, last_seq: Seq) -> Input {
    Input::Join {
        conn: ConnId(conn),
        id: RequestId(99),
        name: "again".into(),
        host_key: None,
        resume: Some(ResumeRequest {
            participant: pid,
            token: ResumeToken(format!("tok-{}", token_conn.0)),
            last_seq,
        }),
        resume_token: ResumeToken("unused".into()),
        client_key: None,
    }
}

#[test]
fn a_hosts_leave_is_acked_with_the_seq_of_host_changed_which_the_leaver_receives_too() {
    let mut h = Harness::new(VoteMode::Single);
    let (a, ac, _) = h.join("A", true);
    let (b, _bc, _) = h.join("B", false);
    add(&mut h, a, ac, "p1");
    vote(&mut h, a, ac, &["p1"]);
    let id = h.req();
    let out = h.cmd(a, ac, ClientMessage::Leave { id });
    // ballot withdrawn, left, host handed on: three events, the ack names the last.
    let kinds: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast { msg, lossy: false } => Some(msg.kind()),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        ["ballot_changed", "participant_left", "host_changed"]
    );
    assert_eq!(ack_seq(&out), Some(h.room.seq()));
    assert_eq!(ack_seq(&out), last_event_seq(&out));
    assert_eq!(h.room.host(), Some(b));
    // The leaver is still attached while the events go out: the close comes after the ack.
    let detach = out
        .iter()
        .position(|o| matches!(o, Output::Detach { conn, .. } if *conn == ac))
        .unwrap();
    let acked = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Send {
                    msg: ServerMessage::Ack { .. },
                    ..
                }
            )
        })
        .unwrap();
    let host_changed = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Broadcast {
                    msg: ServerMessage::HostChanged { .. },
                    ..
                }
            )
        })
        .unwrap();
    assert!(host_changed < acked && acked < detach);
}

#[test]
fn every_command_is_acked_with_the_last_event_it_produced_or_none() {
    let mut h = Harness::new(VoteMode::Approval { max: 2 });
    let (a, ac, _) = h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    let (c, _cc, _) = h.join("C", false);
    let check = |h: &mut Harness, pid, conn, msg: ClientMessage| {
        let out = h.cmd(pid, conn, msg.clone());
        assert_eq!(ack_seq(&out), last_event_seq(&out), "{msg:?}");
    };
    check(&mut h, a, ac, ClientMessage::Ping { id: RequestId(50) });
    for p in ["p1", "p2"] {
        let out = add(&mut h, b, bc, p);
        assert_eq!(ack_seq(&out), last_event_seq(&out));
    }
    let out = vote(&mut h, b, bc, &["p1", "p2"]);
    assert_eq!(ack_seq(&out), last_event_seq(&out));
    let out = vote(&mut h, b, bc, &["p1", "p2"]);
    assert_eq!(ack_seq(&out), None, "an identical ballot produces nothing");
    check(
        &mut h,
        a,
        ac,
        ClientMessage::RemoveCandidate {
            id: RequestId(51),
            place_id: PlaceId("p2".into()),
        },
    );
    check(
        &mut h,
        a,
        ac,
        ClientMessage::Chat {
            id: RequestId(52),
            text: "hi".into(),
        },
    );
    check(
        &mut h,
        a,
        ac,
        ClientMessage::Rename {
            id: RequestId(53),
            title: "New".into(),
        },
    );
    check(
        &mut h,
        a,
        ac,
        ClientMessage::Kick {
            id: RequestId(54),
            participant: c,
        },
    );
    check(
        &mut h,
        a,
        ac,
        ClientMessage::CloseVote { id: RequestId(55) },
    );
    check(
        &mut h,
        a,
        ac,
        ClientMessage::ReopenVote { id: RequestId(56) },
    );
    check(&mut h, b, bc, ClientMessage::Leave { id: RequestId(57) });
    check(
        &mut h,
        a,
        ac,
        ClientMessage::CloseRoom { id: RequestId(58) },
    );
}

#[test]
fn a_resume_that_brings_the_participant_back_is_acked_with_participant_back() {
    let mut h = Harness::new(VoteMode::Single);
    h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: bc,
            participant: b,
        },
    );
    let seen = h.room.seq();
    // Replay: the ack carries the seq of the participant_back the resume produced.
    let out = h.room.handle(h.now, resume_input(60, b, bc, seen));
    assert!(matches!(
        out.iter().find_map(|o| match o {
            Output::Send { msg, .. } => Some(msg),
            _ => None,
        }),
        Some(ServerMessage::Resumed { .. })
    ));
    assert_eq!(ack_seq(&out), Some(h.room.seq()));
    assert_eq!(ack_seq(&out), last_event_seq(&out));
    // A resume of a participant still online (a second device) produces no event: no seq.
    let out = h.room.handle(h.now, resume_input(61, b, bc, h.room.seq()));
    assert_eq!(last_event_seq(&out), None);
    assert_eq!(ack_seq(&out), None);
}

#[test]
fn a_room_resume_with_last_seq_0_gets_a_fresh_snapshot_as_in_a_stream() {
    let mut h = Harness::new(VoteMode::Single);
    h.join("A", true);
    let (b, bc, _) = h.join("B", false);
    h.room.handle(
        h.now,
        Input::Disconnect {
            conn: bc,
            participant: b,
        },
    );
    let out = h.room.handle(h.now, resume_input(62, b, bc, Seq(0)));
    let first = out
        .iter()
        .find_map(|o| match o {
            Output::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .unwrap();
    let ServerMessage::Welcome { room, you, .. } = first else {
        panic!("a welcome snapshot, got {first:?}");
    };
    assert_eq!(*you, b);
    assert_eq!(
        room.seq,
        h.room.seq(),
        "the snapshot includes participant_back"
    );
    assert_eq!(ack_seq(&out), Some(h.room.seq()));
}

fn ack_of(out: &[Output], id: RequestId) -> Option<Option<Seq>> {
    out.iter().find_map(|o| match o {
        Output::Send {
            msg: ServerMessage::Ack { id: r, seq },
            ..
        } if *r == id => Some(*seq),
        _ => None,
    })
}

#[test]
fn a_retry_after_a_lost_ack_is_acknowledged_again_not_applied_twice() {
    let mut h = Harness::new(VoteMode::Single);
    let (p, c, _) = h.join("Mina", false);
    let chat = |text: &str| ClientMessage::Chat {
        id: RequestId(50),
        text: text.into(),
    };
    let first = ack_of(&h.cmd(p, c, chat("see you at 7")), RequestId(50))
        .flatten()
        .expect("applied with a seq");
    // The ack was lost (the node died); the client resumes and sends the same command again,
    // on a room rebuilt from its snapshot (as a new owner would).
    let bytes = serde_json::to_vec(&h.room).unwrap();
    h.room = serde_json::from_slice(&bytes).unwrap();
    let again = h.cmd(p, c, chat("see you at 7"));
    assert_eq!(ack_of(&again, RequestId(50)), Some(Some(first)));
    assert_eq!(again.len(), 1, "nothing but the ack: {again:?}");
    assert_eq!(h.room.chat.len(), 1);
    // The same id with other content is a new command (a client that restarted its ids).
    let other = h.cmd(p, c, chat("make it 8"));
    assert!(ack_of(&other, RequestId(50)).flatten().unwrap() > first);
    assert_eq!(h.room.chat.len(), 2);
    // Another participant's command with the same id and content is its own.
    let (q, d, _) = h.join("Jun", false);
    let theirs = h.cmd(q, d, chat("see you at 7"));
    assert!(ack_of(&theirs, RequestId(50)).flatten().unwrap() > first);
    assert_eq!(h.room.chat.len(), 3);
}
