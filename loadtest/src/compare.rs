//! `wagu-loadtest compare`: the side-by-side table of `deploy/bench.sh`, built from the JSON
//! results of earlier runs (one loaded run per server, optionally one idle run), with every
//! ratio taken to the first server given.
//!
//! It reads the results as plain JSON (by field path), so it works on files written by any
//! build of the harness that has these fields, and it computes nothing the results do not
//! hold but the ratios and "delivered per server CPU-second".

use crate::cli::CompareArgs;
use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize, Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub target: String,
    pub connections_open: f64,
    /// Friends' messages (presence updates + chat) received per second.
    pub delivered_per_sec: f64,
    pub delivery_ratio: f64,
    pub presence_sent_per_sec: f64,
    pub presence_target_per_sec: f64,
    /// WebSocket messages the clients read per second (Wagu's batches carry several updates).
    pub ws_messages_in_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub chat_p99_ms: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub delivered_per_cpu_second: Option<f64>,
    pub rss_mb_avg: Option<f64>,
    pub rss_kb_per_active_connection: Option<f64>,
    pub rss_kb_per_idle_connection: Option<f64>,
    pub idle_connections: Option<f64>,
    pub errors: f64,
}

pub fn num(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

pub fn load(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))
}

/// One row from a loaded result and, optionally, an idle one.
pub fn row(name: &str, active: &Value, idle: Option<&Value>) -> Row {
    let cpu = num(active, "/server/cpu_percent_avg");
    let delivered = num(active, "/delivered_per_sec").unwrap_or(0.0);
    Row {
        name: name.to_string(),
        target: active
            .pointer("/target")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
        connections_open: num(active, "/connections_open").unwrap_or(0.0),
        delivered_per_sec: delivered,
        delivery_ratio: num(active, "/presence/delivery_ratio").unwrap_or(0.0),
        presence_sent_per_sec: num(active, "/presence/sent_per_sec").unwrap_or(0.0),
        presence_target_per_sec: num(active, "/presence/target_sent_per_sec").unwrap_or(0.0),
        ws_messages_in_per_sec: num(active, "/throughput/messages_in_per_sec").unwrap_or(0.0),
        p50_ms: num(active, "/presence/latency_ms/p50").unwrap_or(0.0),
        p99_ms: num(active, "/presence/latency_ms/p99").unwrap_or(0.0),
        chat_p99_ms: num(active, "/chat/latency_ms/p99"),
        server_cpu_percent: cpu,
        delivered_per_cpu_second: cpu
            .filter(|c| *c > 0.0)
            .map(|c| (delivered / (c / 100.0)).round()),
        rss_mb_avg: num(active, "/server/rss_mb_avg"),
        rss_kb_per_active_connection: num(active, "/server/rss_kb_per_connection"),
        rss_kb_per_idle_connection: idle.and_then(|i| num(i, "/server/rss_kb_per_connection")),
        idle_connections: idle.and_then(|i| num(i, "/connections_open")),
        errors: num(active, "/errors/total").unwrap_or(0.0)
            + idle.and_then(|i| num(i, "/errors/total")).unwrap_or(0.0),
    }
}

fn ratio(x: Option<f64>, reference: Option<f64>) -> String {
    match (x, reference) {
        (Some(x), Some(r)) if r > 0.0 => format!("{:.2}×", x / r),
        _ => "—".into(),
    }
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or("—".into(), f)
}

pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The Markdown table; ratios are to `rows[0]`.
pub fn table(rows: &[Row]) -> String {
    let Some(r0) = rows.first() else {
        return String::new();
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| server | delivered msgs/s | ÷ {0} | WS msgs in/s at clients | presence e2e p50 / p99 ms | p99 ÷ {0} | chat e2e p99 ms | server CPU (of 1 core) | delivered per server CPU-s | RSS per active conn | RSS per idle conn | idle ÷ {0} | errors |",
        r0.name
    );
    t.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.1} / {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            thousands(r.delivered_per_sec),
            ratio(Some(r.delivered_per_sec), Some(r0.delivered_per_sec)),
            thousands(r.ws_messages_in_per_sec),
            r.p50_ms,
            r.p99_ms,
            ratio(Some(r.p99_ms), Some(r0.p99_ms)),
            opt(r.chat_p99_ms, |p| format!("{p:.1}")),
            opt(r.server_cpu_percent, |c| format!("{c:.0} %")),
            opt(r.delivered_per_cpu_second, thousands),
            opt(r.rss_kb_per_active_connection, |k| format!("{k:.1} kB")),
            opt(r.rss_kb_per_idle_connection, |k| format!("{k:.1} kB")),
            ratio(r.rss_kb_per_idle_connection, r0.rss_kb_per_idle_connection),
            r.errors
        );
    }
    t
}

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for spec in &args.runs {
        let Some((name, files)) = spec.split_once('=') else {
            bail!("--run {spec:?}: expected NAME=ACTIVE.json[,IDLE.json]");
        };
        let mut files = files.split(',');
        let active = load(Path::new(files.next().unwrap_or_default()))?;
        let idle = files.next().map(|f| load(Path::new(f))).transpose()?;
        rows.push(row(name, &active, idle.as_ref()));
    }
    print!("{}", table(&rows));
    if let Some(out) = &args.out {
        let json = serde_json::json!({ "reference": rows[0].name, "rows": rows });
        std::fs::write(out, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(target: &str, delivered: f64, p99: f64, cpu: f64, kb: f64) -> Value {
        serde_json::json!({
            "target": target,
            "connections_open": 1000,
            "delivered_per_sec": delivered,
            "presence": {"delivery_ratio": 1.0, "sent_per_sec": 10000.0, "target_sent_per_sec": 10000.0,
                         "latency_ms": {"p50": p99 / 2.0, "p99": p99}},
            "throughput": {"messages_in_per_sec": delivered},
            "server": {"cpu_percent_avg": cpu, "rss_mb_avg": 40.0, "rss_kb_per_connection": kb},
            "errors": {"total": 0}
        })
    }

    #[test]
    fn ratios_are_to_the_first_row() {
        let w = row(
            "wagu",
            &result("wagu", 90_000.0, 50.0, 50.0, 20.0),
            Some(&result("wagu", 0.0, 0.0, 1.0, 8.0)),
        );
        let c = row(
            "centrifugo",
            &result("centrifugo", 45_000.0, 100.0, 100.0, 40.0),
            None,
        );
        assert_eq!(w.delivered_per_cpu_second, Some(180_000.0));
        assert_eq!(w.rss_kb_per_idle_connection, Some(8.0));
        let t = table(&[w, c]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[2].starts_with("| wagu | 90,000 | 1.00× |"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("| 45,000 | 0.50× |"), "{}", lines[3]);
        assert!(lines[3].contains("| 2.00× |"), "p99 ratio: {}", lines[3]);
        assert!(lines[3].contains("| — | — |"), "no idle run: {}", lines[3]);
        assert!(lines[3].contains("| 2.00× | — |"), "no chat: {}", lines[3]);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-1000.0), "-1,000");
    }
}
