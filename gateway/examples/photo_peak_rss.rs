//! Peak memory of the photo pipeline for one 12-megapixel JPEG, read from the kernel
//! (`VmHWM` in /proc/self/status: the resident-set high-water mark).
//!
//!   cargo run --release -p wagu-gateway --example photo_peak_rss -- make /tmp/12mp.jpg
//!   cargo run --release -p wagu-gateway --example photo_peak_rss -- fast /tmp/12mp.jpg
//!   cargo run --release -p wagu-gateway --example photo_peak_rss -- image /tmp/12mp.jpg
//!
//! `make` writes the test photo (in its own process, so the measuring one never held the
//! synthetic pixels); `fast` / `image` process it once with that resampler and print the high-water
//! mark before and after.

use wagu_gateway::photos::PhotoConfig;
use wagu_gateway::photos::pipeline::{self, Resampler};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, path) = match args.as_slice() {
        [_, mode, path] => (mode.as_str(), path.as_str()),
        _ => {
            eprintln!("usage: photo_peak_rss make|fast|image FILE");
            std::process::exit(2);
        }
    };
    if mode == "make" {
        std::fs::write(path, pipeline::synthetic_jpeg(4000, 3000)).expect("write");
        return;
    }
    let resampler = match mode {
        "fast" => Resampler::Fast,
        "image" => Resampler::Image,
        _ => {
            eprintln!("mode must be make, fast or image");
            std::process::exit(2);
        }
    };
    let bytes = std::fs::read(path).expect("read");
    let before = vm_hwm_kib();
    let limits = PhotoConfig::default().decode_limits();
    let p = pipeline::process(&bytes, &limits, resampler).expect("process");
    let after = vm_hwm_kib();
    println!(
        "{mode}: input {} bytes; display {}x{} ({} bytes), thumb {}x{} ({} bytes); \
         VmHWM before {before} KiB, after {after} KiB, pipeline peak +{} KiB",
        bytes.len(),
        p.variants[1].width,
        p.variants[1].height,
        p.variants[1].jpeg.len(),
        p.variants[0].width,
        p.variants[0].height,
        p.variants[0].jpeg.len(),
        after.saturating_sub(before)
    );
}
