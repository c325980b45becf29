//! `wagu-loadtest capacity`: the capacity tables and curves of `deploy/bench.sh`, built from
//! the JSON results it leaves in one directory:
//!
//! | file | what |
//! |---|---|
//! | `rooms-<target>-<rooms>.json` | one step of the rooms capacity search |
//! | `stream-<target>-<viewers>.json` | one step of the one-stream capacity search |
//! | `<kind>-<target>-<n>.exit` | the harness's exit status for that step (1: it failed, no JSON) |
//! | `quiet-<target>.json` | the second standard workload (many quiet rooms) |
//! | `idle-<target>.json` | clients joined and sitting: memory per idle connection |
//!
//! Each step was judged by the harness itself (its `slo` section: the gates `deploy/bench.sh`
//! passed on the command line). The capacity of a server is its last passing step below the
//! first failing one. When the load generator's core was at or above `--generator-limit` (in
//! % of one core) at either of those two steps, or no step failed, the figure is a lower
//! bound: the generator, not the server, may be what broke (or nothing broke yet).

use crate::compare::{load, num, thousands};
use crate::html::{Line, esc, xy_chart};
use anyhow::Context;
use plotters::style::RGBColor;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct CapacityArgs {
    /// The directory `deploy/bench.sh` wrote the step results to.
    #[arg(long)]
    pub dir: PathBuf,
    /// Servers in table order (comma-separated); ratios are of the first to each other.
    #[arg(long, value_delimiter = ',', default_value = "wagu,centrifugo,bare")]
    pub targets: Vec<String>,
    /// The load generator's CPU (% of one core) from which a result is only a lower bound.
    #[arg(long, default_value_t = 85.0)]
    pub generator_limit: f64,
    /// Write the figures as JSON here (default: DIR/capacity.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the HTML page with the curves here (default: DIR/capacity.html).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// One step of a capacity search.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Step {
    pub target: String,
    /// Rooms (rooms search) or viewers (stream search).
    pub load: u64,
    pub connections: f64,
    pub passed: bool,
    pub violations: Vec<String>,
    /// The main flow's end to end (rooms: presence; stream: chat), ms.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Server stamp to reader (Wagu only).
    pub fanout_p99_ms: Option<f64>,
    /// Rooms: room chat end to end.
    pub chat_p99_ms: Option<f64>,
    /// The main flow's delivery ratio, and the room chat's.
    pub delivery: Option<f64>,
    pub chat_delivery: Option<f64>,
    /// What the clients sent of their target rate (1.0: the generator kept up).
    pub sent_ratio: Option<f64>,
    pub server_cpu: Option<f64>,
    pub server_cpu_max: Option<f64>,
    pub generator_cpu: Option<f64>,
    pub rss_mb: Option<f64>,
    pub errors: f64,
    /// Delivered messages per second (friends' updates and chats).
    pub delivered_per_sec: Option<f64>,
}

/// A server's result in one search.
#[derive(Serialize, Debug, Clone)]
pub struct Capacity {
    pub target: String,
    /// The last passing step (`None`: the first step failed).
    pub last_pass: Option<Step>,
    pub first_fail: Option<Step>,
    /// The figure is a lower bound (generator busy, or no step failed).
    pub lower_bound: bool,
    pub why_lower_bound: Option<String>,
    pub steps: Vec<Step>,
}

/// The second standard workload (many quiet rooms), one server.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Quiet {
    pub target: String,
    pub rooms: f64,
    pub participants: f64,
    pub connections: f64,
    pub joined: f64,
    pub ramp_secs: f64,
    /// From the ramp's start until every connection had joined (or failed).
    pub joins_done_secs: Option<f64>,
    pub join_p90_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
    pub presence_p50_ms: Option<f64>,
    pub presence_p99_ms: Option<f64>,
    pub delivery: Option<f64>,
    pub chat_delivery: Option<f64>,
    pub chat_p99_ms: Option<f64>,
    pub sent_ratio: Option<f64>,
    pub server_cpu: Option<f64>,
    pub generator_cpu: Option<f64>,
    pub rss_mb: Option<f64>,
    pub rss_mb_max: Option<f64>,
    pub errors: f64,
    pub slo_passed: bool,
    pub violations: Vec<String>,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Idle {
    pub target: String,
    pub connections: f64,
    pub rss_kb_per_connection: Option<f64>,
    pub rss_mb_start: Option<f64>,
    pub rss_mb: Option<f64>,
}

#[derive(Serialize, Debug, Default)]
pub struct Report {
    pub generator_limit: f64,
    pub rooms: Vec<Capacity>,
    pub stream: Vec<Capacity>,
    pub quiet: Vec<Quiet>,
    pub idle: Vec<Idle>,
}

fn ratio_of(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// One step's figures from its result (`kind`: `rooms` or `stream`).
pub fn step(kind: &str, target: &str, load: u64, v: &Value) -> Step {
    let (main, fanout) = if kind == "rooms" {
        ("/presence", "/presence_fanout_ms/p99")
    } else {
        ("/chat", "/chat_fanout_ms/p99")
    };
    let lat = |q: &str| {
        num(v, &format!("{main}/latency_ms/samples"))
            .filter(|n| *n > 0.0)
            .and_then(|_| num(v, &format!("{main}/latency_ms/{q}")))
    };
    let sent = num(v, &format!("{main}/sent_per_sec"));
    let target_rate = num(v, &format!("{main}/target_sent_per_sec"));
    Step {
        target: target.to_string(),
        load,
        connections: num(v, "/connections").unwrap_or(0.0),
        passed: slo_passed(v),
        violations: slo_violations(v),
        p50_ms: lat("p50"),
        p99_ms: lat("p99"),
        fanout_p99_ms: num(v, fanout).filter(|_| target == "wagu"),
        chat_p99_ms: (kind == "rooms")
            .then(|| {
                num(v, "/chat/latency_ms/samples")
                    .filter(|n| *n > 0.0)
                    .and_then(|_| num(v, "/chat/latency_ms/p99"))
            })
            .flatten(),
        delivery: num(v, &format!("{main}/delivered_share"))
            .or_else(|| num(v, &format!("{main}/delivery_ratio"))),
        chat_delivery: (kind == "rooms")
            .then(|| num(v, "/chat/delivered_share").or_else(|| num(v, "/chat/delivery_ratio")))
            .flatten(),
        sent_ratio: match (sent, target_rate) {
            (Some(s), Some(t)) => ratio_of(s, t).map(|r| (r * 1000.0).round() / 1000.0),
            _ => None,
        },
        server_cpu: num(v, "/server/cpu_percent_avg"),
        server_cpu_max: num(v, "/server/cpu_percent_max"),
        generator_cpu: num(v, "/harness_cpu_percent"),
        rss_mb: num(v, "/server/rss_mb_avg"),
        errors: num(v, "/errors/total").unwrap_or(0.0),
        delivered_per_sec: num(v, "/delivered_per_sec"),
    }
}

/// Judges a server's steps (in load order): its last passing step before the first failing.
pub fn capacity(target: &str, mut steps: Vec<Step>, generator_limit: f64) -> Capacity {
    steps.sort_by_key(|s| s.load);
    let fail_at = steps.iter().position(|s| !s.passed);
    let first_fail = fail_at.map(|i| steps[i].clone());
    let last_pass = match fail_at {
        Some(0) => None,
        Some(i) => Some(steps[i - 1].clone()),
        None => steps.last().cloned(),
    };
    let busy = [&last_pass, &first_fail]
        .into_iter()
        .flatten()
        .filter_map(|s| s.generator_cpu.map(|c| (s.load, c)))
        .filter(|(_, c)| *c >= generator_limit)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let why_lower_bound = if let Some((load, cpu)) = busy {
        Some(format!("generator core at {cpu:.0} % at step {load}"))
    } else if first_fail.is_none() && !steps.is_empty() {
        Some("no step failed".to_string())
    } else {
        None
    };
    Capacity {
        target: target.to_string(),
        last_pass,
        first_fail,
        lower_bound: why_lower_bound.is_some(),
        why_lower_bound,
        steps,
    }
}

pub fn quiet(target: &str, v: &Value) -> Quiet {
    let lat = |flow: &str, q: &str| {
        num(v, &format!("/{flow}/latency_ms/samples"))
            .filter(|n| *n > 0.0)
            .and_then(|_| num(v, &format!("/{flow}/latency_ms/{q}")))
    };
    Quiet {
        target: target.to_string(),
        rooms: num(v, "/rooms").unwrap_or(0.0),
        participants: num(v, "/participants").unwrap_or(0.0),
        connections: num(v, "/connections").unwrap_or(0.0),
        joined: num(v, "/connections_joined").unwrap_or(0.0),
        ramp_secs: num(v, "/ramp_secs").unwrap_or(0.0),
        joins_done_secs: num(v, "/ramp_done_secs"),
        join_p90_ms: num(v, "/join_latency_ms/p90"),
        join_p99_ms: num(v, "/join_latency_ms/p99"),
        presence_p50_ms: lat("presence", "p50"),
        presence_p99_ms: lat("presence", "p99"),
        delivery: num(v, "/presence/delivered_share")
            .or_else(|| num(v, "/presence/delivery_ratio")),
        chat_delivery: num(v, "/chat/delivered_share").or_else(|| num(v, "/chat/delivery_ratio")),
        chat_p99_ms: lat("chat", "p99"),
        sent_ratio: match (
            num(v, "/presence/sent_per_sec"),
            num(v, "/presence/target_sent_per_sec"),
        ) {
            (Some(s), Some(t)) => ratio_of(s, t).map(|r| (r * 1000.0).round() / 1000.0),
            _ => None,
        },
        server_cpu: num(v, "/server/cpu_percent_avg"),
        generator_cpu: num(v, "/harness_cpu_percent"),
        rss_mb: num(v, "/server/rss_mb_avg"),
        rss_mb_max: num(v, "/server/rss_mb_max"),
        errors: num(v, "/errors/total").unwrap_or(0.0),
        slo_passed: slo_passed(v),
        violations: slo_violations(v),
    }
}

/// Whether the run's SLO gates passed (`/slo/passed`; false when the run had none).
fn slo_passed(v: &Value) -> bool {
    v.pointer("/slo/passed")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The SLO gates the run broke, in the harness's words (`/slo/violations`).
fn slo_violations(v: &Value) -> Vec<String> {
    v.pointer("/slo/violations")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn idle(target: &str, v: &Value) -> Idle {
    Idle {
        target: target.to_string(),
        connections: num(v, "/connections_open").unwrap_or(0.0),
        rss_kb_per_connection: num(v, "/server/rss_kb_per_connection"),
        rss_mb_start: num(v, "/server/rss_mb_start"),
        rss_mb: num(v, "/server/rss_mb_avg"),
    }
}

/// Reads every step file of `kind` for `target` in `dir`: `(load, result or exit status)`.
fn step_files(dir: &Path, kind: &str, target: &str) -> anyhow::Result<Vec<Step>> {
    let prefix = format!("{kind}-{target}-");
    let mut found: BTreeMap<u64, Step> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((n, ext)) = rest.split_once('.') else {
            continue;
        };
        let Ok(load_n) = n.parse::<u64>() else {
            continue;
        };
        match ext {
            "json" => {
                let v = load(&dir.join(&name))?;
                found.insert(load_n, step(kind, target, load_n, &v));
            }
            "exit" => {
                let code = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
                let code = code.trim();
                // Exit 1 leaves no result: the harness itself failed at this load.
                if code != "0" && code != "2" {
                    found.entry(load_n).or_insert_with(|| Step {
                        target: target.to_string(),
                        load: load_n,
                        violations: vec![format!("the harness failed (exit {code}); no result")],
                        ..Default::default()
                    });
                }
            }
            _ => {}
        }
    }
    Ok(found.into_values().collect())
}

fn f1(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.1}"))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.0} %"))
}

fn ratio3(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.3}"))
}

/// A delivered share: four places, so 0.9990 and 0.9985 read apart.
fn share(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{x:.4}"))
}

/// The summary line of a search: capacity per server, then the ratios of the first to the others.
fn capacity_table(out: &mut String, caps: &[Capacity], unit: &str, main: &str) {
    let _ = writeln!(
        out,
        "| server | capacity at SLO ({unit}) | at it: {main} p50 / p99 ms | fan-out p99 | chat p99 | delivered | sent / target | server CPU avg (max) | generator CPU | server RSS | first failing step: why |"
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for c in caps {
        let cap = match (&c.last_pass, &c.why_lower_bound) {
            (Some(s), Some(why)) => format!("≥ {} (lower bound: {why})", thousands(s.load as f64)),
            (Some(s), None) => format!("**{}**", thousands(s.load as f64)),
            (None, _) if c.steps.is_empty() => "not run".into(),
            (None, why) => format!(
                "< {}{}",
                thousands(c.first_fail.as_ref().map_or(0, |s| s.load) as f64),
                why.as_ref().map_or(String::new(), |w| format!(" ({w})"))
            ),
        };
        let at = c.last_pass.clone().unwrap_or_default();
        let fail = c.first_fail.as_ref().map_or("—".to_string(), |f| {
            format!(
                "{}: {}",
                thousands(f.load as f64),
                esc_pipe(&f.violations.join("; "))
            )
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
            c.target,
            cap,
            f1(at.p50_ms),
            f1(at.p99_ms),
            f1(at.fanout_p99_ms),
            f1(at.chat_p99_ms),
            share(at.delivery),
            ratio3(at.sent_ratio),
            pct(at.server_cpu),
            pct(at.server_cpu_max),
            pct(at.generator_cpu),
            at.rss_mb.map_or("—".into(), |m| format!("{m:.0} MB")),
            fail
        );
    }
    if let Some(first) = caps.first().and_then(|c| c.last_pass.as_ref()) {
        for c in &caps[1..] {
            let r = c
                .last_pass
                .as_ref()
                .and_then(|o| ratio_of(first.load as f64, o.load as f64));
            let _ = writeln!(
                out,
                "\n{} ÷ {}: {}",
                caps[0].target,
                c.target,
                r.map_or("— (no passing step)".into(), |r| format!("{r:.2}×"))
            );
        }
    }
}

fn esc_pipe(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Every step, for the curve.
fn steps_table(out: &mut String, caps: &[Capacity], unit: &str, main: &str) {
    let _ = writeln!(
        out,
        "| server | {unit} | connections | verdict | {main} p50 / p99 ms | fan-out p99 | chat p99 | delivered (chat) | sent / target | server CPU | generator CPU | RSS MB | errors |"
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for c in caps {
        for s in &c.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} / {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
                c.target,
                thousands(s.load as f64),
                thousands(s.connections),
                if s.passed {
                    "pass".to_string()
                } else {
                    format!("FAIL: {}", esc_pipe(&s.violations.join("; ")))
                },
                f1(s.p50_ms),
                f1(s.p99_ms),
                f1(s.fanout_p99_ms),
                f1(s.chat_p99_ms),
                share(s.delivery),
                share(s.chat_delivery),
                ratio3(s.sent_ratio),
                pct(s.server_cpu),
                pct(s.generator_cpu),
                f1(s.rss_mb),
                s.errors
            );
        }
    }
}

fn quiet_table(out: &mut String, rows: &[Quiet]) {
    out.push_str("| server | rooms × participants | joined | joins done in (offered over) | join p90 / p99 ms | presence e2e p50 / p99 ms | delivered (chat) | chat p99 ms | sent / target | server CPU | generator CPU | server RSS avg (max) | errors | SLO |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for q in rows {
        let _ = writeln!(
            out,
            "| {} | {} × {} | {} | {} s ({:.0} s) | {} / {} | {} / {} | {} ({}) | {} | {} | {} | {} | {} ({}) MB | {} | {} |",
            q.target,
            thousands(q.rooms),
            q.participants,
            thousands(q.joined),
            f1(q.joins_done_secs),
            q.ramp_secs,
            f1(q.join_p90_ms),
            f1(q.join_p99_ms),
            f1(q.presence_p50_ms),
            f1(q.presence_p99_ms),
            share(q.delivery),
            share(q.chat_delivery),
            f1(q.chat_p99_ms),
            ratio3(q.sent_ratio),
            pct(q.server_cpu),
            pct(q.generator_cpu),
            q.rss_mb.map_or("—".into(), |m| format!("{m:.0}")),
            q.rss_mb_max.map_or("—".into(), |m| format!("{m:.0}")),
            q.errors,
            if q.slo_passed {
                "pass".to_string()
            } else {
                format!("FAIL: {}", esc_pipe(&q.violations.join("; ")))
            }
        );
    }
}

fn idle_table(out: &mut String, rows: &[Idle]) {
    out.push_str("| server | idle connections | server RSS before → during | RSS per idle connection |\n|---|---|---|---|\n");
    for i in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} → {} MB | {} |",
            i.target,
            thousands(i.connections),
            f1(i.rss_mb_start),
            f1(i.rss_mb),
            i.rss_kb_per_connection
                .map_or("—".into(), |k| format!("{k:.1} kB"))
        );
    }
}

/// The Markdown of the whole report.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    if r.rooms.iter().any(|c| !c.steps.is_empty()) {
        out.push_str("### Capacity at SLO: rooms of 10 at 10 Hz presence, 6 chats/min each\n\n");
        capacity_table(&mut out, &r.rooms, "rooms", "presence e2e");
        out.push_str("\nEvery step:\n\n");
        steps_table(&mut out, &r.rooms, "rooms", "presence e2e");
        out.push('\n');
    }
    if r.stream.iter().any(|c| !c.steps.is_empty()) {
        out.push_str("### Capacity at SLO: one live stream, chat 20/s\n\n");
        capacity_table(&mut out, &r.stream, "viewers", "chat e2e");
        out.push_str("\nEvery step:\n\n");
        steps_table(&mut out, &r.stream, "viewers", "chat e2e");
        out.push('\n');
    }
    if !r.quiet.is_empty() {
        out.push_str("### Many quiet rooms\n\n");
        quiet_table(&mut out, &r.quiet);
        out.push('\n');
    }
    if !r.idle.is_empty() {
        out.push_str("### Idle connections\n\n");
        idle_table(&mut out, &r.idle);
        out.push('\n');
    }
    out
}

fn color(i: usize) -> RGBColor {
    [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(110, 110, 110),
        RGBColor(44, 160, 44),
    ][i % 4]
}

fn curve(caps: &[Capacity], f: impl Fn(&Step) -> Option<f64>) -> Vec<Line> {
    caps.iter()
        .enumerate()
        .filter(|(_, c)| !c.steps.is_empty())
        .map(|(i, c)| Line {
            label: Box::leak(c.target.clone().into_boxed_str()),
            color: color(i),
            points: c.steps.iter().map(|s| (s.load as f64, f(s))).collect(),
        })
        .collect()
}

/// Markdown tables to HTML (the only Markdown the report has, besides headings and paragraphs).
fn md_to_html(md: &str) -> String {
    let mut h = String::new();
    let mut in_table = false;
    let mut header = true;
    for line in md.lines() {
        if line.starts_with('|') {
            if !in_table {
                h.push_str("<table>\n");
                in_table = true;
                header = true;
            }
            if line.starts_with("|---") {
                header = false;
                continue;
            }
            let cells: Vec<String> = line
                .trim_matches('|')
                .replace("\\|", "\u{1}")
                .split('|')
                .map(|c| esc(c.trim()).replace('\u{1}', "|").replace("**", ""))
                .collect();
            let tag = if header { "th" } else { "td" };
            h.push_str("<tr>");
            for c in cells {
                let _ = write!(h, "<{tag}>{c}</{tag}>");
            }
            h.push_str("</tr>\n");
            continue;
        }
        if in_table {
            h.push_str("</table>\n");
            in_table = false;
        }
        if let Some(t) = line.strip_prefix("### ") {
            let _ = writeln!(h, "<h2>{}</h2>", esc(t));
        } else if !line.trim().is_empty() {
            let _ = writeln!(h, "<p>{}</p>", esc(line));
        }
    }
    if in_table {
        h.push_str("</table>\n");
    }
    h
}

pub fn html(r: &Report, title: &str) -> anyhow::Result<String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1400px}}\
         table{{border-collapse:collapse;font-size:13px;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}th{{background:#f4f4f4}}\
         </style></head><body><h1>{0}</h1>",
        esc(title)
    );
    let _ = write!(
        h,
        "<p>A figure marked lower bound had the load generator's core at or above {:.0} % \
         (or no step failed): the generator, not the server, may be what limited it.</p>",
        r.generator_limit
    );
    let charts: [(&[Capacity], &str, &str); 2] = [
        (
            &r.rooms,
            "rooms (10 participants, 10 Hz presence)",
            "presence e2e",
        ),
        (&r.stream, "viewers of one stream (chat 20/s)", "chat e2e"),
    ];
    for (caps, x, main) in charts {
        if caps.iter().all(|c| c.steps.is_empty()) {
            continue;
        }
        h.push_str(&xy_chart(
            &format!("{main} p99 vs load"),
            x,
            "ms",
            &curve(caps, |s| s.p99_ms),
            None,
        )?);
        h.push_str(&xy_chart(
            "server CPU vs load (one pinned core)",
            x,
            "% of one core",
            &curve(caps, |s| s.server_cpu),
            None,
        )?);
        h.push_str(&xy_chart(
            "load generator CPU vs load (its own pinned core)",
            x,
            "% of one core",
            &curve(caps, |s| s.generator_cpu),
            None,
        )?);
    }
    h.push_str(&md_to_html(&markdown(r)));
    h.push_str("</body></html>\n");
    Ok(h)
}

pub fn build(dir: &Path, targets: &[String], generator_limit: f64) -> anyhow::Result<Report> {
    let mut r = Report {
        generator_limit,
        ..Default::default()
    };
    for t in targets {
        let rooms = step_files(dir, "rooms", t)?;
        if !rooms.is_empty() {
            r.rooms.push(capacity(t, rooms, generator_limit));
        }
        let stream = step_files(dir, "stream", t)?;
        if !stream.is_empty() {
            r.stream.push(capacity(t, stream, generator_limit));
        }
        let q = dir.join(format!("quiet-{t}.json"));
        if q.exists() {
            r.quiet.push(quiet(t, &load(&q)?));
        }
        let i = dir.join(format!("idle-{t}.json"));
        if i.exists() {
            r.idle.push(idle(t, &load(&i)?));
        }
    }
    Ok(r)
}

pub fn run(args: &CapacityArgs) -> anyhow::Result<()> {
    let r = build(&args.dir, &args.targets, args.generator_limit)?;
    print!("{}", markdown(&r));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("capacity.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&r)?)
        .with_context(|| format!("write {}", out.display()))?;
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| args.dir.join("capacity.html"));
    std::fs::write(&report, html(&r, "Capacity at SLO, one pinned core")?)
        .with_context(|| format!("write {}", report.display()))?;
    eprintln!("capacity: {} and {}", out.display(), report.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(p99: f64, passed: bool, generator: f64) -> Value {
        serde_json::json!({
            "connections": 1000,
            "presence": {"delivery_ratio": 1.0, "sent_per_sec": 10000.0, "target_sent_per_sec": 10000.0,
                         "latency_ms": {"samples": 10, "p50": p99 / 2.0, "p99": p99}},
            "presence_fanout_ms": {"samples": 10, "p99": 3.0},
            "chat": {"delivery_ratio": 1.0, "latency_ms": {"samples": 5, "p99": 4.0}},
            "server": {"cpu_percent_avg": 50.0, "cpu_percent_max": 60.0, "rss_mb_avg": 40.0},
            "harness_cpu_percent": generator,
            "errors": {"total": 0},
            "slo": {"passed": passed, "violations": if passed { vec![] } else { vec!["presence p99 120.0 ms exceeds 100 ms"] }}
        })
    }

    #[test]
    fn capacity_is_the_last_pass_before_the_first_failure() {
        let steps = vec![
            step("rooms", "wagu", 100, &result(60.0, true, 40.0)),
            step("rooms", "wagu", 50, &result(55.0, true, 30.0)),
            step("rooms", "wagu", 150, &result(120.0, false, 60.0)),
        ];
        let c = capacity("wagu", steps, 85.0);
        assert_eq!(c.last_pass.as_ref().map(|s| s.load), Some(100));
        assert_eq!(c.first_fail.as_ref().map(|s| s.load), Some(150));
        assert!(!c.lower_bound);
        assert_eq!(c.last_pass.unwrap().fanout_p99_ms, Some(3.0));

        // A busy generator at the failing step makes it a lower bound.
        let c = capacity(
            "bare",
            vec![
                step("rooms", "bare", 50, &result(30.0, true, 70.0)),
                step("rooms", "bare", 100, &result(300.0, false, 97.0)),
            ],
            85.0,
        );
        assert!(c.lower_bound, "{c:?}");
        assert!(c.why_lower_bound.unwrap().contains("97 %"));
        assert_eq!(c.last_pass.unwrap().fanout_p99_ms, None, "only Wagu stamps");

        // No failure at all: a lower bound too.
        let c = capacity(
            "wagu",
            vec![step("rooms", "wagu", 50, &result(30.0, true, 10.0))],
            85.0,
        );
        assert!(c.lower_bound);
        let md = markdown(&Report {
            generator_limit: 85.0,
            rooms: vec![c],
            ..Default::default()
        });
        assert!(md.contains("≥ 50 (lower bound: no step failed)"), "{md}");
    }

    #[test]
    fn markdown_tables_become_html() {
        let h = md_to_html("### T\n\n| a | b \\| c |\n|---|---|\n| 1 | **2** |\n");
        assert!(h.contains("<h2>T</h2>"));
        assert!(h.contains("<th>b | c</th>"), "{h}");
        assert!(h.contains("<td>2</td>"));
    }
}
