//! The progress bar (indicatif) shown while a run goes, and the log writer that keeps log
//! lines from tearing it.
//!
//! The bar only draws when stderr is a terminal; otherwise (CI, `deploy/bench.sh` writing to a
//! file) it stays hidden and the monitor prints a progress line every `--progress-secs`
//! instead. Log events go through [`LogWriter`], which hides the bar for the moment it writes,
//! so a warning in the middle of a run prints cleanly above the bar.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, Write};
use std::sync::Mutex;

/// The bar on screen, if any, for [`LogWriter`].
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A bar over the planned run length in seconds; `None` when it would not show (stderr is not
/// a terminal, or `--no-progress`).
pub fn start(planned_secs: u64, enabled: bool) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let bar =
        ProgressBar::with_draw_target(Some(planned_secs.max(1)), ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:24}] {pos:>4}/{len}s {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    *ACTIVE.lock().expect("progress lock") = Some(bar.clone());
    Some(bar)
}

/// Removes the bar from the screen and from the log path.
pub fn finish(bar: &ProgressBar) {
    bar.finish_and_clear();
    *ACTIVE.lock().expect("progress lock") = None;
}

/// `tracing` output to stderr, around the bar when one is active.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Clone out of the lock: `suspend` redraws, and nothing else may wait on ACTIVE then.
        let bar = ACTIVE.lock().ok().and_then(|g| g.clone());
        match bar {
            Some(bar) => bar
                .suspend(|| io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The bar's message: the same figures as a progress line, shorter.
pub fn message(
    phase: &str,
    open: i64,
    msgs_in: u64,
    msgs_out: u64,
    p99_ms: Option<f64>,
    errors: u64,
    server: Option<(f64, f64)>,
) -> String {
    let k = |n: u64| {
        if n >= 10_000 {
            format!("{:.1}k", n as f64 / 1000.0)
        } else {
            n.to_string()
        }
    };
    let mut s = format!(
        "{phase:<7} open {open}  in {}/s out {}/s",
        k(msgs_in),
        k(msgs_out)
    );
    if let Some(p) = p99_ms {
        s.push_str(&format!("  p99 {p:.1} ms"));
    }
    if let Some((cpu, rss_mb)) = server {
        s.push_str(&format!("  server {cpu:.0}% {rss_mb:.0} MB"));
    }
    s.push_str(&format!("  errors {errors}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_compact() {
        assert_eq!(
            message(
                "measure",
                1000,
                29_700,
                10_000,
                Some(52.04),
                0,
                Some((45.2, 32.4))
            ),
            "measure open 1000  in 29.7k/s out 10.0k/s  p99 52.0 ms  server 45% 32 MB  errors 0"
        );
        assert_eq!(
            message("ramp", 3, 5, 6, None, 1, None),
            "ramp    open 3  in 5/s out 6/s  errors 1"
        );
    }

    #[test]
    fn no_bar_without_a_terminal_or_when_disabled() {
        assert!(start(10, false).is_none());
        // Test runners capture stderr, so it is not a terminal here.
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            assert!(start(10, true).is_none());
        }
    }
}
