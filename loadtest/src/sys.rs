//! What the harness asks of the operating system: enough file descriptors, the ephemeral port
//! range, and the server process's CPU time and resident memory from `/proc` (Linux).

use std::time::Instant;

/// Raises the soft `RLIMIT_NOFILE` to `wanted` (and the hard limit too when allowed, e.g. as
/// root); returns the soft limit in force afterwards.
pub fn raise_nofile(wanted: u64) -> std::io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if lim.current.is_none_or(|soft| soft >= wanted) {
        return Ok(lim.current.unwrap_or(u64::MAX));
    }
    if hard < wanted {
        let both = Rlimit {
            current: Some(wanted),
            maximum: Some(wanted),
        };
        if setrlimit(Resource::Nofile, both).is_ok() {
            return Ok(wanted);
        }
        // Not privileged (or above fs.nr_open): settle for the hard limit.
    }
    let soft = wanted.min(hard);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: lim.maximum,
        },
    )?;
    Ok(soft)
}

/// `net.ipv4.ip_local_port_range`.
pub fn ephemeral_port_range() -> Option<(u32, u32)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u32>());
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    /// CPU used since the previous reading, in percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

/// Reads `/proc/PID/stat` (user + system time of all threads) and `/proc/PID/status`
/// (`VmRSS`) and turns successive readings into CPU percentages.
pub struct ProcSampler {
    pid: u32,
    ticks_per_sec: f64,
    last: Option<(Instant, u64)>,
    /// RSS at the first reading: the server before this run's connections.
    pub baseline_rss_bytes: u64,
}

impl ProcSampler {
    pub fn new(pid: u32) -> std::io::Result<Self> {
        let tck = rustix::param::clock_ticks_per_second();
        let mut s = ProcSampler {
            pid,
            ticks_per_sec: if tck > 0 { tck as f64 } else { 100.0 },
            last: None,
            baseline_rss_bytes: 0,
        };
        // The first reading only sets the baselines; it also proves the process is there.
        s.sample()?;
        s.baseline_rss_bytes = rss_bytes(pid)?;
        Ok(s)
    }

    /// `None` on the first call (no interval yet).
    pub fn sample(&mut self) -> std::io::Result<Option<ProcSample>> {
        let now = Instant::now();
        let ticks = cpu_ticks(self.pid)?;
        let rss_bytes = rss_bytes(self.pid)?;
        let out = self.last.map(|(t0, k0)| {
            let secs = now.duration_since(t0).as_secs_f64().max(1e-6);
            ProcSample {
                cpu_percent: ticks.saturating_sub(k0) as f64 / self.ticks_per_sec / secs * 100.0,
                rss_bytes,
            }
        });
        self.last = Some((now, ticks));
        Ok(out)
    }
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`, in clock ticks. The fields are counted
/// after the `comm` field's closing parenthesis, since a command name may contain spaces.
fn cpu_ticks(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| invalid("no comm field"))?;
    // `after` starts at field 3 (state); utime is field 14, so index 11 here.
    let mut f = after.split_whitespace().skip(11);
    let utime: u64 = f
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| invalid("no utime"))?;
    let stime: u64 = f
        .next()
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| invalid("no stime"))?;
    Ok(utime + stime)
}

fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| invalid("no VmRSS"))
}

fn invalid(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let mut s = ProcSampler::new(std::process::id()).unwrap();
        // Burn a little CPU so the interval has something to show.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let r = s.sample().unwrap().unwrap();
        assert!(r.rss_bytes > 0 && r.cpu_percent >= 0.0, "{r:?} {x}");
    }
}
