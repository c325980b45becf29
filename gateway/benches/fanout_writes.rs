//! One chat-sized frame written to many loopback sockets: what a stream's fan-out pays in the
//! kernel per delivery, with one `send` per socket (the gateway's path today) or with one
//! io_uring submission per slice of sockets (the candidate: no system call per socket and, with
//! registered files, no descriptor lookup). It measures the kernel half of the stream's cost
//! before the gateway's write path is rebuilt around it (docs/PERFORMANCE.md, "Why 7,500
//! viewers stays out of reach").
//!
//!   cargo bench -p wagu-gateway --bench fanout_writes
//!
//! Each iteration writes one 200-byte frame to each of [`SOCKETS`] connected loopback sockets,
//! after a pause (untimed) in which a reader thread drains the peers through epoll, as the load
//! generator does: a stream's chats come tens of milliseconds apart, and back-to-back rounds
//! would instead measure senders blocked on full receive windows. With two or
//! more cores the bench thread is pinned to core 0 and the reader to core 1, as `deploy/bench.sh`
//! pins the server and the generator. Throughput is in deliveries (socket writes) per second.
//!
//! What it does not do: WebSocket framing, tungstenite or tokio (the user-space half is in the
//! loadtest's profiles), or run where io_uring is refused (that variant then reports nothing).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use io_uring::{IoUring, opcode, types};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sockets per iteration: twice as many descriptors, more than the common soft limit of
/// 1,024, so the bench first raises its soft open-file limit to the hard one.
const SOCKETS: usize = 1500;
/// A stream chat frame's size on the wire, about.
const FRAME: usize = 200;
/// The untimed pause before each round (a chat every 50 ms at 20 a second).
const PAUSE: Duration = Duration::from_millis(20);
/// Sockets per io_uring submission (the flusher's slice is 64; larger slices are tried too).
const SLICES: [usize; 2] = [64, 512];

fn pin(cpu: usize) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The connected pairs and the reader that drains the peers until dropped.
struct Loopback {
    writers: Vec<TcpStream>,
    _peers: Arc<Vec<TcpStream>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    fn new(n: usize) -> Loopback {
        let _ = wagu_gateway::fdlimit::raise_soft_to_hard();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mut writers, mut peers) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let peer = TcpStream::connect(addr).expect("connect (raise the open-file limit?)");
            let (writer, _) = listener.accept().expect("accept");
            writer.set_nodelay(true).expect("nodelay");
            peer.set_nonblocking(true).expect("nonblocking");
            writers.push(writer);
            peers.push(peer);
        }
        let peers = Arc::new(peers);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (peers, stop) = (peers.clone(), stop.clone());
            std::thread::spawn(move || drain(&peers, &stop))
        };
        Loopback {
            writers,
            _peers: peers,
            stop,
            reader: Some(reader),
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        self.writers.iter().map(|w| w.as_raw_fd()).collect()
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Reads every peer as it becomes readable (edge-triggered epoll) until `stop`.
fn drain(peers: &[TcpStream], stop: &AtomicBool) {
    pin(1);
    // SAFETY: plain epoll calls on descriptors that outlive this thread (the Loopback joins it
    // before dropping them), with buffers of the lengths given.
    unsafe {
        let ep = libc::epoll_create1(0);
        assert!(ep >= 0, "epoll_create1");
        for (i, p) in peers.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: i as u64,
            };
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, p.as_raw_fd(), &mut ev);
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Acquire) {
            let k = libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100);
            for e in events.iter().take(k.max(0) as usize) {
                let fd = peers[e.u64 as usize].as_raw_fd();
                while libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) > 0 {}
            }
        }
        libc::close(ep);
    }
}

/// One `send` per socket.
fn send_each(fds: &[RawFd], frame: &[u8]) {
    for &fd in fds {
        // SAFETY: a connected socket and a live buffer of the length given.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(n, frame.len() as isize, "send");
    }
}

/// One io_uring submission per `slice` sockets, waiting for each slice's completions.
/// `fixed`: the sockets are the ring's registered files, indexed as in `fds`.
fn send_uring(ring: &mut IoUring, fds: &[RawFd], frame: &[u8], slice: usize, fixed: bool) {
    for (s, chunk) in fds.chunks(slice).enumerate() {
        {
            let mut sq = ring.submission();
            for (j, &fd) in chunk.iter().enumerate() {
                let entry = if fixed {
                    let i = (s * slice + j) as u32;
                    opcode::Send::new(types::Fixed(i), frame.as_ptr(), frame.len() as u32).build()
                } else {
                    opcode::Send::new(types::Fd(fd), frame.as_ptr(), frame.len() as u32).build()
                };
                // SAFETY: `frame` outlives the submission (we wait for every completion below).
                unsafe { sq.push(&entry).expect("ring has room for a slice") };
            }
        }
        ring.submit_and_wait(chunk.len()).expect("submit");
        let mut done = 0;
        for cqe in ring.completion() {
            assert_eq!(cqe.result(), frame.len() as i32, "send through the ring");
            done += 1;
        }
        assert_eq!(done, chunk.len());
    }
}

/// Times `iters` rounds of `round`, each after an untimed [`PAUSE`].
fn paced(iters: u64, mut round: impl FnMut()) -> Duration {
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        std::thread::sleep(PAUSE);
        let t = Instant::now();
        round();
        timed += t.elapsed();
    }
    timed
}

fn fanout(c: &mut Criterion) {
    pin(0);
    let net = Loopback::new(SOCKETS);
    let fds = net.fds();
    let frame = vec![b'x'; FRAME];
    let mut g = c.benchmark_group(format!("fanout_{SOCKETS}_sockets"));
    g.sample_size(20);
    g.throughput(Throughput::Elements(SOCKETS as u64));
    g.bench_function("send_each", |b| {
        b.iter_custom(|n| paced(n, || send_each(&fds, &frame)))
    });
    let max_slice = SLICES.iter().copied().max().unwrap_or(64) as u32;
    match IoUring::new(max_slice) {
        Ok(mut ring) => {
            for slice in SLICES {
                g.bench_function(format!("uring_slice_{slice}"), |b| {
                    b.iter_custom(|n| {
                        paced(n, || send_uring(&mut ring, &fds, &frame, slice, false))
                    })
                });
            }
            if ring.submitter().register_files(&fds).is_ok() {
                for slice in SLICES {
                    g.bench_function(format!("uring_fixed_files_slice_{slice}"), |b| {
                        b.iter_custom(|n| {
                            paced(n, || send_uring(&mut ring, &fds, &frame, slice, true))
                        })
                    });
                }
            }
        }
        Err(e) => eprintln!("io_uring refused here ({e}): only send_each is measured"),
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
