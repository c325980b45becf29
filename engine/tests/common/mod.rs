//! What the engine's actor tests share: reading a connection's queue, joining, sending a
//! command and waiting for its reply.
#![allow(dead_code)]

use std::time::{Duration, Instant};
use wagu_engine::actor::outbound::Receiver;
use wagu_engine::actor::outbound::{Frame, Outbound};
use wagu_engine::sessions::{JoinRequest, Rooms, SessionHandle};
use wagu_proto::codec::decode_server;
use wagu_proto::ids::*;
use wagu_proto::model::RoomSnapshot;
use wagu_proto::{ClientMessage, ServerMessage};

pub async fn next(rx: &mut Receiver) -> ServerMessage {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Frame::Text(b))) => decode_server(&b).unwrap(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Reads until the ack or error of request `id`, returning everything read.
pub async fn until_reply(rx: &mut Receiver, id: u64) -> Vec<ServerMessage> {
    let mut seen = Vec::new();
    loop {
        let m = next(rx).await;
        let done = matches!(&m, ServerMessage::Ack { id: r, .. } | ServerMessage::Error { id: Some(r), .. } if r.0 == id);
        seen.push(m);
        if done {
            return seen;
        }
    }
}

pub struct Client {
    pub session: SessionHandle,
    pub rx: Receiver,
    pub token: ResumeToken,
    pub last_seq: Seq,
}

/// A first join (request id 1) through `share`, as `name`, without host key or resume.
pub fn newcomer(share: &ShareToken, name: &str) -> JoinRequest {
    JoinRequest {
        id: RequestId(1),
        share: share.clone(),
        name: name.into(),
        host_key: None,
        resume: None,
        account: None,
    }
}

/// The room as a newcomer named `name` sees it in its welcome.
pub async fn welcome_room(rooms: &Rooms, share: &ShareToken, name: &str) -> Box<RoomSnapshot> {
    let (out, mut rx) = Outbound::channel(256);
    let _session = rooms.join(newcomer(share, name), out).await.unwrap();
    match next(&mut rx).await {
        ServerMessage::Welcome { room, .. } => room,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

pub async fn join(rooms: &Rooms, share: &ShareToken, name: &str, host: Option<HostKey>) -> Client {
    let (out, mut rx) = Outbound::channel(256);
    let session = rooms
        .join(
            JoinRequest {
                host_key: host,
                ..newcomer(share, name)
            },
            out,
        )
        .await
        .unwrap();
    let frames = until_reply(&mut rx, 1).await;
    let ServerMessage::Welcome {
        resume_token, room, ..
    } = &frames[0]
    else {
        panic!("welcome first, got {:?}", frames[0]);
    };
    Client {
        session,
        rx,
        token: resume_token.clone(),
        last_seq: room.seq,
    }
}

pub async fn command(c: &mut Client, msg: ClientMessage) -> Vec<ServerMessage> {
    let id = msg.id().unwrap().0;
    c.session.send(msg, Instant::now()).unwrap();
    let frames = until_reply(&mut c.rx, id).await;
    for f in &frames {
        if let Some(s) = f.seq() {
            c.last_seq = c.last_seq.max(s);
        }
    }
    frames
}
