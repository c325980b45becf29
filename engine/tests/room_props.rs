//! Property tests: random command sequences from several participants must keep the room's
//! invariants — tallies equal the ballots, nobody holds two ballots or an over-long one,
//! removed candidates carry no votes, and reliable sequence numbers are gapless.

use proptest::prelude::*;
use std::collections::BTreeSet;
use wagu_engine::room::{ConnId, Input, Output, Room, RoomConfig, RoomSpec, votes};
use wagu_proto::ids::*;
use wagu_proto::model::*;
use wagu_proto::{ClientMessage, ResumeRequest, ServerMessage};

#[derive(Debug, Clone)]
enum Op {
    Add(usize, u8),
    Remove(usize, u8),
    Vote(usize, Vec<u8>),
    Close(usize),
    Reopen(usize),
    Chat(usize),
    Drop(usize),
    Resume(usize, u64),
    Leave(usize),
    Join,
    Kick(usize, usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..6;
    prop_oneof![
        (who.clone(), 0u8..6).prop_map(|(w, p)| Op::Add(w, p)),
        (who.clone(), 0u8..6).prop_map(|(w, p)| Op::Remove(w, p)),
        (who.clone(), proptest::collection::vec(0u8..6, 0..4)).prop_map(|(w, v)| Op::Vote(w, v)),
        who.clone().prop_map(Op::Close),
        who.clone().prop_map(Op::Reopen),
        who.clone().prop_map(Op::Chat),
        who.clone().prop_map(Op::Drop),
        (who.clone(), 0u64..40).prop_map(|(w, s)| Op::Resume(w, s)),
        who.clone().prop_map(Op::Leave),
        Just(Op::Join),
        (who.clone(), who.clone()).prop_map(|(a, b)| Op::Kick(a, b)),
        (0u64..120_000).prop_map(Op::Wait),
    ]
}

struct Member {
    pid: ParticipantId,
    conn: ConnId,
    token: ResumeToken,
}

fn check_invariants(room: &Room, max_choices: usize) {
    let snap = room.snapshot();
    let ids: BTreeSet<ParticipantId> = room.participant_ids().collect();
    let cands: BTreeSet<&PlaceId> = room.candidates().iter().map(|c| &c.place_id).collect();
    let mut votes_cast = 0u32;
    for (pid, choices) in room.ballots() {
        assert!(ids.contains(pid), "ballot of a participant who left");
        assert!(!choices.is_empty(), "empty ballots are withdrawn");
        assert!(choices.len() <= max_choices, "ballot over the limit");
        let uniq: BTreeSet<_> = choices.iter().collect();
        assert_eq!(uniq.len(), choices.len(), "duplicate choice in one ballot");
        for c in choices {
            assert!(cands.contains(c), "a vote for a removed candidate");
        }
        votes_cast += choices.len() as u32;
    }
    assert_eq!(snap.tally, votes::tally(room.candidates(), room.ballots()));
    assert_eq!(snap.tally.iter().map(|e| e.votes).sum::<u32>(), votes_cast);
    assert_eq!(
        snap.ballots.len(),
        room.ballots().len(),
        "one ballot per participant"
    );
}

fn run(mode: VoteMode, ops: Vec<Op>) {
    let spec = RoomSpec {
        id: RoomId("r".into()),
        title: "t".into(),
        center: None,
        vote_mode: mode,
        share: ShareToken("s".into()),
        host_key: HostKey("h".into()),
        share_expires_at: u64::MAX / 2,
    };
    let mut room = Room::new(spec, RoomConfig::default(), 0);
    let mut now = 0u64;
    let mut next_conn = 0u64;
    let mut req = 0u64;
    let mut members: Vec<Member> = Vec::new();
    let mut last_seq = Seq(0);
    let mut apply = |room: &mut Room, now: u64, input: Input, members: &mut Vec<Member>| {
        let out = room.handle(now, input);
        // One input may bring several events that carry a tally (two participants expiring
        // at one tick each withdraw a ballot): each is the tally as of its own seq, so only
        // the last of them must match the room's tally after the input.
        let mut last_tally = None;
        for o in &out {
            match o {
                Output::Broadcast { msg, lossy: false } => {
                    let s = msg.seq().expect("reliable events carry a seq");
                    assert_eq!(s, last_seq.next(), "sequence numbers are gapless");
                    last_seq = s;
                    if let ServerMessage::BallotChanged { tally, .. }
                    | ServerMessage::CandidateRemoved { tally, .. } = msg
                    {
                        last_tally = Some(tally);
                    }
                }
                Output::Broadcast { msg, lossy: true } | Output::BroadcastOthers { msg, .. } => {
                    assert_eq!(msg.seq(), Some(last_seq), "presence does not advance seq");
                }
                _ => {}
            }
        }
        if let Some(tally) = last_tally {
            assert_eq!(tally, &votes::tally(room.candidates(), room.ballots()));
        }
        // Forget members the room removed.
        let ids: BTreeSet<ParticipantId> = room.participant_ids().collect();
        members.retain(|m| ids.contains(&m.pid));
        out
    };
    for op in ops {
        req += 1;
        let id = RequestId(req);
        let pick = |members: &Vec<Member>, w: usize| {
            members
                .get(w % members.len().max(1))
                .map(|m| (m.pid, m.conn))
        };
        let input = match op {
            Op::Join => {
                next_conn += 1;
                let conn = ConnId(next_conn);
                let token = ResumeToken(format!("t{next_conn}"));
                let out = apply(
                    &mut room,
                    now,
                    Input::Join {
                        conn,
                        id,
                        name: "n".into(),
                        host_key: Some(HostKey("h".into())).filter(|_| members.is_empty()),
                        resume: None,
                        resume_token: token.clone(),
                        client_key: None,
                    },
                    &mut members,
                );
                if let Some(pid) = out.iter().find_map(|o| match o {
                    Output::Attach { participant, .. } => Some(*participant),
                    _ => None,
                }) {
                    members.push(Member { pid, conn, token });
                }
                check_invariants(&room, mode.max_choices());
                continue;
            }
            Op::Wait(ms) => {
                now += ms;
                Input::Tick
            }
            Op::Drop(w) => match pick(&members, w) {
                Some((participant, conn)) => Input::Disconnect { conn, participant },
                None => continue,
            },
            Op::Resume(w, back) => {
                let idx = w % members.len().max(1);
                let Some(m) = members.get_mut(idx) else {
                    continue;
                };
                next_conn += 1;
                let conn = ConnId(next_conn);
                let r = ResumeRequest {
                    participant: m.pid,
                    token: m.token.clone(),
                    last_seq: Seq(room.seq().0.saturating_sub(back)),
                };
                m.conn = conn;
                Input::Join {
                    conn,
                    id,
                    name: "n".into(),
                    host_key: None,
                    resume: Some(r),
                    resume_token: ResumeToken("x".into()),
                    client_key: None,
                }
            }
            other => {
                let Some((participant, conn)) = pick(
                    &members,
                    match &other {
                        Op::Add(w, _)
                        | Op::Remove(w, _)
                        | Op::Vote(w, _)
                        | Op::Close(w)
                        | Op::Reopen(w)
                        | Op::Chat(w)
                        | Op::Leave(w)
                        | Op::Kick(w, _) => *w,
                        _ => 0,
                    },
                ) else {
                    continue;
                };
                let place = |p: u8| PlaceId(format!("place{p}"));
                let msg = match other {
                    Op::Add(_, p) => ClientMessage::AddCandidate {
                        id,
                        place_id: place(p),
                        name: "x".into(),
                        lat: 1.0,
                        lng: 2.0,
                        note: None,
                    },
                    Op::Remove(_, p) => ClientMessage::RemoveCandidate {
                        id,
                        place_id: place(p),
                    },
                    Op::Vote(_, v) => ClientMessage::Vote {
                        id,
                        choices: v.into_iter().map(place).collect(),
                    },
                    Op::Close(_) => ClientMessage::CloseVote { id },
                    Op::Reopen(_) => ClientMessage::ReopenVote { id },
                    Op::Chat(_) => ClientMessage::Chat {
                        id,
                        text: "hi".into(),
                    },
                    Op::Leave(_) => ClientMessage::Leave { id },
                    Op::Kick(_, t) => match pick(&members, t) {
                        Some((target, _)) => ClientMessage::Kick {
                            id,
                            participant: target,
                        },
                        None => continue,
                    },
                    _ => unreachable!(),
                };
                Input::Command {
                    conn,
                    participant,
                    msg,
                }
            }
        };
        let out = apply(&mut room, now, input, &mut members);
        // Exactly one ack or error answers every command that carried an id.
        let replies = out.iter().filter(|o| matches!(o,
            Output::Send { msg: ServerMessage::Ack { id: rid, .. } | ServerMessage::Error { id: Some(rid), .. }, .. } if *rid == id)
            || matches!(o, Output::JoinRefused { id: rid, .. } if *rid == id)).count();
        assert!(replies <= 1, "at most one reply per command");
        check_invariants(&room, mode.max_choices());
        if room.is_closed() {
            break;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn single_choice_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        run(VoteMode::Single, ops);
    }

    #[test]
    fn approval_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        run(VoteMode::Approval { max: 2 }, ops);
    }
}
