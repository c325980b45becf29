//! Unit tests of the live-stream rules, driven with a fake clock.

use super::*;

struct H {
    s: Stream,
    now: UnixMillis,
    next_conn: u64,
    req: u64,
}

fn spec() -> StreamSpec {
    StreamSpec {
        id: StreamId("s1".into()),
        title: "Mukbang at Gukbap House".into(),
        place_id: PlaceId("kakao:1".into()),
        location: Some(LatLng {
            lat: 37.5,
            lng: 127.0,
        }),
        menu: vec!["gukbap".into()],
        streamer_key: HostKey("skey".into()),
    }
}

impl H {
    fn new() -> H {
        H {
            s: Stream::new(spec(), StreamConfig::default(), 1_000),
            now: 1_000,
            next_conn: 1,
            req: 1,
        }
    }
    fn id(&mut self) -> RequestId {
        self.req += 1;
        RequestId(self.req)
    }
    fn join_with(
        &mut self,
        name: &str,
        streamer: bool,
        client_key: Option<&str>,
    ) -> (Vec<Output>, ConnId) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let id = self.id();
        let out = self.s.handle(
            self.now,
            Input::Join {
                conn,
                id,
                name: name.into(),
                host_key: streamer.then(|| HostKey("skey".into())),
                resume: None,
                resume_token: ResumeToken(format!("t{}", conn.0)),
                client_key: client_key.map(Identity::from),
            },
        );
        (out, conn)
    }
    fn join(&mut self, name: &str, streamer: bool) -> (ParticipantId, ConnId) {
        let (out, conn) = self.join_with(name, streamer, None);
        let pid = out
            .iter()
            .find_map(|o| match o {
                Output::Attach { participant, .. } => Some(*participant),
                _ => None,
            })
            .expect("attached");
        (pid, conn)
    }
    fn cmd(&mut self, p: ParticipantId, conn: ConnId, msg: ClientMessage) -> Vec<Output> {
        self.s.handle(
            self.now,
            Input::Command {
                conn,
                participant: p,
                msg,
            },
        )
    }
}

fn code(out: &[Output]) -> Option<ErrorCode> {
    out.iter().rev().find_map(|o| match o {
        Output::Send {
            msg: ServerMessage::Error { code, .. },
            ..
        } => Some(*code),
        Output::JoinRefused { code, .. } => Some(*code),
        _ => None,
    })
}

fn acked(out: &[Output]) -> bool {
    out.iter().any(|o| {
        matches!(
            o,
            Output::Send {
                msg: ServerMessage::Ack { .. },
                ..
            }
        )
    })
}

#[test]
fn every_moderation_command_from_a_viewer_is_forbidden() {
    let mut h = H::new();
    let (streamer, _) = h.join("Chef", true);
    let (v, vc) = h.join("Viewer", false);
    let (other, _) = h.join("Other", false);
    let chat = h.id();
    h.cmd(
        v,
        vc,
        ClientMessage::Chat {
            id: chat,
            text: "hi".into(),
        },
    );
    let seq = h.s.chat().last().unwrap().seq;
    let cmds = [
        ClientMessage::Pin {
            id: RequestId(90),
            message: seq,
        },
        ClientMessage::Unpin { id: RequestId(91) },
        ClientMessage::DeleteMessage {
            id: RequestId(92),
            message: seq,
        },
        ClientMessage::Mute {
            id: RequestId(93),
            participant: other,
            minutes: 5,
        },
        ClientMessage::Ban {
            id: RequestId(94),
            participant: other,
        },
        ClientMessage::Ban {
            id: RequestId(95),
            participant: streamer,
        },
        ClientMessage::EndStream { id: RequestId(96) },
    ];
    for c in cmds {
        let out = h.cmd(v, vc, c.clone());
        assert_eq!(code(&out), Some(ErrorCode::Forbidden), "{c:?}");
    }
    assert_eq!(h.s.chat().count(), 1);
    assert!(h.s.pinned().is_none());
    assert!(!h.s.is_closed());
}

#[test]
fn viewer_count_is_coalesced_not_per_join() {
    let mut h = H::new();
    h.join("Chef", true);
    let mut counts = 0;
    for i in 0..50 {
        let (out, _) = h.join_with(&format!("v{i}"), false, None);
        counts += out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Broadcast {
                        msg: ServerMessage::Viewers { .. },
                        ..
                    }
                )
            })
            .count();
        assert!(
            out.iter()
                .all(|o| !matches!(o, Output::Broadcast { lossy: false, .. })),
            "a viewer's join is not a broadcast event"
        );
    }
    assert!(
        counts <= 1,
        "at most one count event within the interval, got {counts}"
    );
    let d = h.s.next_deadline().unwrap();
    h.now = d;
    let out = h.s.handle(h.now, Input::Tick);
    let n = out.iter().find_map(|o| match o {
        Output::Broadcast {
            msg: ServerMessage::Viewers { count, .. },
            lossy: true,
        } => Some(*count),
        _ => None,
    });
    assert_eq!(n, Some(50));
    assert_eq!(h.s.viewers(), 50);
}

fn attached(out: &[Output]) -> ParticipantId {
    out.iter()
        .find_map(|o| match o {
            Output::Attach { participant, .. } => Some(*participant),
            _ => None,
        })
        .expect("attached")
}

#[test]
fn pin_delete_mute_and_ban() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let (out, tc) = h.join_with("Troll", false, Some("device-1"));
    let troll = attached(&out);
    let id = h.id();
    h.cmd(
        troll,
        tc,
        ClientMessage::Chat {
            id,
            text: "first!".into(),
        },
    );
    let m1 = h.s.chat().last().unwrap().seq;
    // Pin, then delete the pinned message: it is unpinned too.
    let id = h.id();
    assert!(acked(&h.cmd(
        st,
        sc,
        ClientMessage::Pin { id, message: m1 }
    )));
    assert_eq!(h.s.pinned().map(|m| m.seq), Some(m1));
    let id = h.id();
    assert_eq!(
        code(&h.cmd(
            st,
            sc,
            ClientMessage::Pin {
                id,
                message: Seq(999)
            }
        )),
        Some(ErrorCode::UnknownMessage)
    );
    let id = h.id();
    let out = h.cmd(st, sc, ClientMessage::DeleteMessage { id, message: m1 });
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            msg: ServerMessage::MessageDeleted { .. },
            ..
        }
    )));
    assert!(h.s.pinned().is_none());
    assert_eq!(h.s.chat().count(), 0);
    // Mute: chat refused until the time is up.
    let id = h.id();
    assert!(acked(&h.cmd(
        st,
        sc,
        ClientMessage::Mute {
            id,
            participant: troll,
            minutes: 2
        }
    )));
    let id = h.id();
    assert_eq!(
        code(&h.cmd(
            troll,
            tc,
            ClientMessage::Chat {
                id,
                text: "x".into()
            }
        )),
        Some(ErrorCode::Muted)
    );
    h.now += 2 * 60_000;
    let id = h.id();
    assert!(acked(&h.cmd(
        troll,
        tc,
        ClientMessage::Chat {
            id,
            text: "back".into()
        }
    )));
    // Ban: closed with 4005, and neither resume nor a fresh join with the same device works.
    let id = h.id();
    let out = h.cmd(
        st,
        sc,
        ClientMessage::Ban {
            id,
            participant: troll,
        },
    );
    assert!(out.contains(&Output::Detach {
        conn: tc,
        code: close::BANNED
    }));
    let out = h.s.handle(
        h.now,
        Input::Join {
            conn: ConnId(77),
            id: RequestId(1),
            name: "Troll".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: troll,
                token: ResumeToken(format!("t{}", tc.0)),
                last_seq: Seq(1),
            }),
            resume_token: ResumeToken("n".into()),
            client_key: Some("device-1".into()),
        },
    );
    assert_eq!(code(&out), Some(ErrorCode::Banned));
    let (out, _) = h.join_with("Troll2", false, Some("device-1"));
    assert_eq!(code(&out), Some(ErrorCode::Banned));
    let (out, _) = h.join_with("Someone", false, Some("device-2"));
    assert!(code(&out).is_none());
}

/// Journals written before identities were typed hold the join's `client_key` as the string
/// `acct:<account> <device>`: replayed, it still bans the account and the device.
#[test]
fn an_old_journal_join_with_an_identity_string_still_bans_every_key() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let join = Input::Join {
        conn: ConnId(90),
        id: RequestId(90),
        name: "Troll".into(),
        host_key: None,
        resume: None,
        resume_token: ResumeToken("t90".into()),
        client_key: None,
    };
    let mut old = serde_json::to_value(&join).unwrap();
    old["Join"]["client_key"] = "acct:a1 device-1".into();
    let old: Input = serde_json::from_value(old).expect("an old journal entry reads");
    let troll = attached(&h.s.handle(h.now, old));
    let id = h.id();
    let out = h.cmd(
        st,
        sc,
        ClientMessage::Ban {
            id,
            participant: troll,
        },
    );
    assert!(acked(&out));
    let (out, _) = h.join_with("Same account", false, Some("acct:a1"));
    assert_eq!(code(&out), Some(ErrorCode::Banned));
    let (out, _) = h.join_with("Same device", false, Some("device-1"));
    assert_eq!(code(&out), Some(ErrorCode::Banned));
    let (out, _) = h.join_with("Someone", false, Some("acct:a2 device-2"));
    assert!(code(&out).is_none());
    // The snapshot keeps the old form too.
    let snap = serde_json::to_string(&h.s).unwrap();
    assert!(snap.contains("\"acct:a1\""), "{snap}");
}

#[test]
fn streamer_drop_keeps_viewers_then_ends_after_grace() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let (_v, _vc) = h.join("Viewer", false);
    let out = h.s.handle(
        h.now,
        Input::Disconnect {
            conn: sc,
            participant: st,
        },
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            msg: ServerMessage::StreamerAway { .. },
            ..
        }
    )));
    // Back within the grace period: the stream goes on.
    h.now += 10_000;
    let out = h.s.handle(
        h.now,
        Input::Join {
            conn: ConnId(50),
            id: RequestId(1),
            name: "Chef".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: st,
                token: ResumeToken(format!("t{}", sc.0)),
                last_seq: h.s.seq,
            }),
            resume_token: ResumeToken("n".into()),
            client_key: None,
        },
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            msg: ServerMessage::StreamerBack { .. },
            ..
        }
    )));
    // Drop again and stay away: the stream ends for everyone, with the reason.
    h.s.handle(
        h.now,
        Input::Disconnect {
            conn: ConnId(50),
            participant: st,
        },
    );
    let d = h.s.next_deadline().unwrap();
    assert_eq!(d, h.now + StreamConfig::default().streamer_grace_ms);
    h.now = d;
    let out = h.s.handle(h.now, Input::Tick);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast {
            msg: ServerMessage::StreamEnded {
                reason: StreamEndReason::StreamerLeft,
                ..
            },
            ..
        }
    )));
    assert!(out.contains(&Output::Retire));
    let (key, body) = h.s.ended_record().expect("an ended record");
    assert!(key.starts_with("streams/ended/"));
    let rec: EndedStream = serde_json::from_slice(&body).unwrap();
    assert_eq!(rec.peak_viewers, 1);
    assert_eq!(rec.reason, StreamEndReason::StreamerLeft);
}

#[test]
fn end_stream_acks_then_closes_everyone() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let (_v, vc) = h.join("Viewer", false);
    let id = h.id();
    let out = h.cmd(st, sc, ClientMessage::EndStream { id });
    let ack = out
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
    let close = out
        .iter()
        .position(|o| matches!(o, Output::Detach { conn, .. } if *conn == vc))
        .unwrap();
    assert!(ack < close);
    assert!(h.s.is_closed());
    let (out, _) = h.join_with("Late", false, None);
    assert_eq!(code(&out), Some(ErrorCode::RoomClosed));
}

#[test]
fn a_wrong_streamer_key_is_refused_not_demoted() {
    let mut h = H::new();
    let out = h.s.handle(
        h.now,
        Input::Join {
            conn: ConnId(9),
            id: RequestId(1),
            name: "Impostor".into(),
            host_key: Some(HostKey("wrong".into())),
            resume: None,
            resume_token: ResumeToken("t".into()),
            client_key: None,
        },
    );
    assert_eq!(code(&out), Some(ErrorCode::Forbidden));
}

#[test]
fn ended_record_names_a_streamer_who_left() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let id = h.id();
    h.cmd(st, sc, ClientMessage::Leave { id });
    let (_, body) = h.s.ended_record().unwrap();
    let rec: EndedStream = serde_json::from_slice(&body).unwrap();
    assert_eq!(rec.streamer_name.as_deref(), Some("Chef"));
    assert_eq!(rec.reason, StreamEndReason::StreamerEnded);
}

#[test]
fn room_commands_are_refused_in_a_stream() {
    let mut h = H::new();
    let (v, vc) = h.join("Viewer", false);
    let out = h.cmd(
        v,
        vc,
        ClientMessage::Vote {
            id: RequestId(5),
            choices: vec![],
        },
    );
    assert_eq!(code(&out), Some(ErrorCode::WrongSession));
}

#[test]
fn stream_round_trips_through_serde() {
    let mut h = H::new();
    h.join("Chef", true);
    h.join_with("V", false, Some("k"));
    let json = serde_json::to_vec(&h.s).unwrap();
    let back: Stream = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, h.s);
}

/// The running counts (connected members, the away queue, the viewer count) always equal a
/// full scan of the members, whatever the sequence of joins, drops, resumes, leaves, bans and
/// expiries.
#[test]
fn running_counts_match_a_full_scan() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let mut viewers: Vec<(ParticipantId, ConnId, String)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for step in 0..3_000 {
        let r = next() % 100;
        match r {
            0..=34 => {
                let (out, conn) = h.join_with(&format!("v{step}"), false, None);
                if let Some(p) = out.iter().find_map(|o| match o {
                    Output::Attach { participant, .. } => Some(*participant),
                    _ => None,
                }) {
                    viewers.push((p, conn, format!("t{}", conn.0)));
                }
            }
            35..=54 if !viewers.is_empty() => {
                let (p, c, _) = viewers[(next() as usize) % viewers.len()].clone();
                h.s.handle(
                    h.now,
                    Input::Disconnect {
                        conn: c,
                        participant: p,
                    },
                );
            }
            55..=69 if !viewers.is_empty() => {
                let i = (next() as usize) % viewers.len();
                let (p, _, token) = viewers[i].clone();
                let conn = ConnId(100_000 + step);
                let out = h.s.handle(
                    h.now,
                    Input::Join {
                        conn,
                        id: RequestId(1),
                        name: "r".into(),
                        host_key: None,
                        resume: Some(ResumeRequest {
                            participant: p,
                            token: ResumeToken(token),
                            last_seq: h.s.seq,
                        }),
                        resume_token: ResumeToken("n".into()),
                        client_key: None,
                    },
                );
                if out.iter().any(|o| matches!(o, Output::Attach { .. })) {
                    viewers[i].1 = conn;
                }
            }
            70..=77 if !viewers.is_empty() => {
                let (p, c, _) = viewers[(next() as usize) % viewers.len()].clone();
                h.cmd(p, c, ClientMessage::Leave { id: RequestId(2) });
            }
            78..=82 if !viewers.is_empty() => {
                let (p, _, _) = viewers[(next() as usize) % viewers.len()].clone();
                h.cmd(
                    st,
                    sc,
                    ClientMessage::Ban {
                        id: RequestId(3),
                        participant: p,
                    },
                );
            }
            _ => {
                h.now += next() % 20_000;
                h.s.handle(h.now, Input::Tick);
            }
        }
        viewers.retain(|(p, _, _)| h.s.members.contains_key(p));
        let connected = h.s.members.values().filter(|m| m.conn.is_some()).count() as u32;
        assert_eq!(h.s.connected, connected, "step {step}");
        let away: BTreeSet<(UnixMillis, ParticipantId)> =
            h.s.members
                .iter()
                .filter(|(id, _)| Some(**id) != h.s.streamer)
                .filter_map(|(id, m)| m.away_since.map(|t| (t, *id)))
                .collect();
        assert_eq!(h.s.away, away, "step {step}");
        assert_eq!(
            h.s.online_viewers,
            connected - 1,
            "step {step}: the streamer is online"
        );
    }
}

/// The `seq` of the last reliable event broadcast in `out`, if any.
fn last_event_seq(out: &[Output]) -> Option<Seq> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast { msg, lossy: false } => msg.seq(),
            _ => None,
        })
        .next_back()
}

/// The `seq` of the `ack` in `out` (panics without one).
fn ack_seq(out: &[Output]) -> Option<Seq> {
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                msg: ServerMessage::Ack { seq, .. },
                ..
            } => Some(*seq),
            _ => None,
        })
        .expect("an ack")
}

#[test]
fn a_streamer_who_rejoins_with_the_key_after_a_drop_is_acked_with_streamer_back() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    h.join("Viewer", false);
    h.s.handle(
        h.now,
        Input::Disconnect {
            conn: sc,
            participant: st,
        },
    );
    // Joining again with the streamer key (no resume): the seat is taken over.
    let (out, _) = h.join_with("Chef", true, None);
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: ServerMessage::StreamWelcome { .. },
                ..
            }
        )),
        "a fresh snapshot"
    );
    assert_eq!(last_event_seq(&out), Some(h.s.seq), "streamer_back");
    assert_eq!(ack_seq(&out), Some(h.s.seq));
    // Taking the seat over from a device that is still online produces no event: no seq.
    let (out, _) = h.join_with("Chef", true, None);
    assert_eq!(last_event_seq(&out), None);
    assert_eq!(ack_seq(&out), None);
}

#[test]
fn a_streamer_resume_after_a_drop_is_acked_with_streamer_back() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    h.s.handle(
        h.now,
        Input::Disconnect {
            conn: sc,
            participant: st,
        },
    );
    let out = h.s.handle(
        h.now,
        Input::Join {
            conn: ConnId(70),
            id: RequestId(1),
            name: "Chef".into(),
            host_key: None,
            resume: Some(ResumeRequest {
                participant: st,
                token: ResumeToken(format!("t{}", sc.0)),
                last_seq: h.s.seq,
            }),
            resume_token: ResumeToken("n".into()),
            client_key: None,
        },
    );
    assert!(matches!(
        out.iter().find_map(|o| match o {
            Output::Send { msg, .. } => Some(msg),
            _ => None,
        }),
        Some(ServerMessage::Resumed { .. })
    ));
    assert_eq!(ack_seq(&out), Some(h.s.seq));
    assert_eq!(ack_seq(&out), last_event_seq(&out));
}

#[test]
fn every_stream_command_is_acked_with_the_last_event_it_produced_or_none() {
    let mut h = H::new();
    let (st, sc) = h.join("Chef", true);
    let (v, vc) = h.join("Viewer", false);
    let (t, _tc) = h.join("Troll", false);
    let chat = |h: &mut H, p, c| {
        let id = h.id();
        h.cmd(
            p,
            c,
            ClientMessage::Chat {
                id,
                text: "hi".into(),
            },
        )
    };
    let out = chat(&mut h, v, vc);
    assert_eq!(ack_seq(&out), last_event_seq(&out));
    let msg = h.s.seq;
    let check = |h: &mut H, p, c, make: &dyn Fn(RequestId) -> ClientMessage| {
        let id = h.id();
        let m = make(id);
        let out = h.cmd(p, c, m.clone());
        assert_eq!(ack_seq(&out), last_event_seq(&out), "{m:?}");
    };
    check(&mut h, st, sc, &|id| ClientMessage::Pin {
        id,
        message: msg,
    });
    // Deleting the pinned message: pin_changed, then message_deleted; the ack names the latter.
    check(&mut h, st, sc, &|id| ClientMessage::DeleteMessage {
        id,
        message: msg,
    });
    check(&mut h, st, sc, &|id| ClientMessage::Unpin { id });
    check(&mut h, st, sc, &|id| ClientMessage::Mute {
        id,
        participant: t,
        minutes: 5,
    });
    check(&mut h, st, sc, &|id| ClientMessage::Ban {
        id,
        participant: t,
    });
    check(&mut h, v, vc, &|id| ClientMessage::Leave { id });
    check(&mut h, st, sc, &|id| ClientMessage::Leave { id });
}
