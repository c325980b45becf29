//! A session revived on a node whose clock runs behind the node that wrote it keeps its time:
//! the revived session's clock starts at the latest time it was handled at (snapshot or
//! journal), never at the reviving node's earlier reading.

use std::time::Duration;
use wagu_engine::actor::unix_now;
use wagu_engine::persist::SessionStore;
use wagu_engine::room::{Input, Room, RoomConfig, RoomSpec};
use wagu_proto::ids::*;
use wagu_proto::model::VoteMode;
use wagu_storage::EphemeralStore;

fn spec() -> RoomSpec {
    RoomSpec {
        id: RoomId("clock".into()),
        title: "t".into(),
        center: None,
        vote_mode: VoteMode::Single,
        share: ShareToken("s".into()),
        host_key: HostKey("h".into()),
        share_expires_at: u64::MAX / 2,
    }
}

#[tokio::test]
async fn a_session_revived_where_the_clock_is_behind_never_goes_back_in_time() {
    let store = SessionStore::new(EphemeralStore::memory(), Duration::from_secs(60));
    // The node that ran the room: its clock an hour ahead of ours.
    let ahead = unix_now() + 3_600_000;
    let room = Room::new(spec(), RoomConfig::default(), ahead);
    store.save(&room, 0, 7, ahead, 0).await.unwrap();
    let floor = store
        .load_to_revive::<Room>("clock", unix_now())
        .await
        .unwrap()
        .unwrap()
        .not_before;
    assert_eq!(floor, ahead, "the snapshot's time is the floor");
    // It handled one more input, journaled, before it died.
    let entry = SessionStore::encode_entry("clock", 7, 1, ahead + 500, &Input::Tick).unwrap();
    store
        .append_entries::<Room>("clock", 7, vec![entry])
        .await
        .unwrap();
    let revived = store
        .load_to_revive::<Room>("clock", unix_now())
        .await
        .unwrap()
        .unwrap();
    let (applied, floor) = (revived.applied, revived.not_before);
    assert_eq!(applied, 1);
    assert_eq!(floor, ahead + 500, "the journal's latest time is the floor");
    // Where our clock is ahead instead, ours counts.
    let later = ahead + 10_000;
    let floor = store
        .load_to_revive::<Room>("clock", later)
        .await
        .unwrap()
        .unwrap()
        .not_before;
    assert_eq!(floor, later);
}
