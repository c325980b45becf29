//! What an idle session costs in heap, counted by a global allocator that keeps a running total
//! (this test binary only). A quiet room must cost almost nothing: a node holds thousands.
//!
//! Not a benchmark: a bound that fails when a change makes every idle session carry a large
//! buffer or future for its whole life. ractor boxes each actor's message loop once and keeps
//! it, so whatever `SessionActor::handle` awaits inline (the store's futures) sits in every
//! session: before the snapshot and retire awaits were boxed that was about 20 kB a session.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;
use wagu_engine::actor::EngineConfig;
use wagu_engine::persist::SessionStore;
use wagu_engine::sessions::{CreateRoom, Rooms};
use wagu_storage::EphemeralStore;

mod common;
use common::*;

/// Bytes allocated and not yet freed, by everything in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROOMS: usize = 200;
const MEMBERS: usize = 5;

/// Heap per idle room of five, the members' outbound queues and the in-memory store's copy of
/// the room included. Measured in the test build: 22.5 kB; 28.4 kB with tokio channels as the
/// members' queues and ractor's per-message tracing spans, 48.2 kB with the session actor's
/// snapshot and retire awaits inline as well (the changes this guards).
const BOUND_PER_ROOM: isize = 27_000;

#[tokio::test(flavor = "current_thread")]
async fn an_idle_room_of_five_costs_a_few_kilobytes_of_heap() {
    let rooms = Rooms::start(
        SessionStore::new(EphemeralStore::memory(), Duration::from_secs(600)),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    // One room first, so that what every room shares (the supervisor's maps, the runtime's
    // timer wheel, lazily made statics) is not counted against the others.
    let warm = rooms.create(CreateRoom::default()).await.unwrap();
    let _warm = join(&rooms, &warm.share, "Warm", None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let before = LIVE.load(Ordering::Relaxed);
    let mut members = Vec::new();
    for _ in 0..ROOMS {
        let created = rooms.create(CreateRoom::default()).await.unwrap();
        for m in 0..MEMBERS {
            let host = (m == 0).then(|| created.host_key.clone());
            members.push(join(&rooms, &created.share, &format!("M{m}"), host).await);
        }
    }
    // Let every session settle: snapshots written, joins' temporaries freed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_room = (LIVE.load(Ordering::Relaxed) - before) / ROOMS as isize;
    eprintln!(
        "an idle room of {MEMBERS} holds {per_room} bytes of heap ({} per member)",
        per_room / MEMBERS as isize
    );
    assert!(
        per_room < BOUND_PER_ROOM,
        "an idle room of {MEMBERS} holds {per_room} bytes of heap (bound {BOUND_PER_ROOM})"
    );
    drop(members);
}
