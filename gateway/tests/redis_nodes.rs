//! With Redis as the room store, a room outlives the node that ran it: node A stops (as on a
//! deploy), node B revives the room from Redis, and the client resumes there without losing an
//! acknowledged candidate, vote or chat message. Needs the test bed's Redis.

mod common;

use common::*;
use serde_json::json;
use wagu_gateway::config::EphemeralBackend;
use wagu_proto::ServerMessage;
use wagu_storage::testbed;

fn redis_config(url: &str) -> wagu_gateway::Config {
    let mut c = test_config();
    c.ephemeral.backend = EphemeralBackend::Redis;
    c.ephemeral.redis_url = Some(url.to_string());
    c
}

#[tokio::test]
async fn room_moves_to_another_node_through_redis() {
    let Some(url) = testbed::service(
        testbed::REDIS_URL,
        "room_moves_to_another_node_through_redis",
    ) else {
        return;
    };
    let node_a = start(redis_config(&url)).await;
    let room = create_room(node_a.addr, r#"{"title":"Moving room"}"#).await;
    let mut host = Client::new(node_a.addr).await;
    host.join(&room.share, "Host", Some(&room.host_key)).await;
    host.call(
        json!({"type":"add_candidate","place_id":"p1","name":"Sundae","lat":37.0,"lng":127.0}),
    )
    .await;
    host.call(json!({"type":"vote","choices":["p1"]})).await;
    host.call(json!({"type":"chat","text":"see you on the other node"}))
        .await;
    let (me, token, seen) = (host.me, host.token.clone(), host.last_seq);

    // Node A shuts down: the client is told to resume elsewhere.
    node_a.stop().await;
    assert_eq!(host.close_code().await, Some(wagu_proto::close::RESUME));

    let node_b = start(redis_config(&url)).await;
    let mut again = Client::new(node_b.addr).await;
    let id = again.send(json!({"type":"join","share":room.share,"name":"Host","resume":{"participant":me,"token":token,"last_seq":seen}})).await;
    let r = again.reply(id).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    assert!(
        matches!(again.seen[0], ServerMessage::Resumed { .. }),
        "{:?}",
        again.seen[0]
    );
    // Still the host on the new node, with everything acknowledged before.
    let r = again.call(json!({"type":"rename","title":"Moved"})).await;
    assert!(matches!(r, ServerMessage::Ack { .. }), "{r:?}");
    let mut friend = Client::new(node_b.addr).await;
    let ServerMessage::Welcome { room: snap, .. } = friend.join(&room.share, "Friend", None).await
    else {
        unreachable!()
    };
    assert_eq!(snap.title, "Moved");
    assert_eq!(snap.candidates.len(), 1);
    assert_eq!(snap.ballots.len(), 1);
    assert_eq!(snap.chat.last().unwrap().text, "see you on the other node");
    node_b.stop().await;
}
