//! The `--report` file: one self-contained HTML page (inline SVG charts drawn with plotters'
//! SVG backend, inline CSS, no script, nothing fetched) with the run's parameters, its key
//! figures, and per-second charts of latency, throughput and the server process.
//!
//! It reads only the [`RunResult`] (so a report can be redrawn from any result), and draws the
//! steady-state window as a shaded band so ramp and warmup are told apart from what the
//! figures describe. Text in the SVG is left to the browser's fonts (plotters' `ttf` feature is
//! off), so label widths are estimates.

use crate::report::{
    Detail, Latency, RECORDS_OPS, RecordsDetail, RoomsDetail, RunResult, Sample, StreamsDetail,
};
use plotters::prelude::*;
use std::fmt::Write as _;

const W: u32 = 900;
const H: u32 = 280;

pub(crate) struct Line {
    pub label: &'static str,
    pub color: RGBColor,
    /// `None` breaks the line (a second with nothing to show).
    pub points: Vec<(f64, Option<f64>)>,
}

fn series(
    t: &[Sample],
    label: &'static str,
    color: RGBColor,
    f: impl Fn(&Sample) -> Option<f64>,
) -> Line {
    Line {
        label,
        color,
        points: t.iter().map(|s| (s.t_secs as f64, f(s))).collect(),
    }
}

/// The seconds covered by the steady-state window, as an x range.
fn window(t: &[Sample]) -> Option<(f64, f64)> {
    let mut m = t
        .iter()
        .filter(|s| s.phase == "measure")
        .map(|s| s.t_secs as f64);
    let first = m.next()?;
    let last = m.next_back().unwrap_or(first);
    // A sample at t covers the second that ends at t.
    Some((first - 1.0, last))
}

/// Splits a line at its gaps.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        match y {
            Some(y) if y.is_finite() => out.last_mut().expect("never empty").push((x, y)),
            _ => {
                if !out.last().expect("never empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// One line chart over the run's seconds as an SVG string.
fn chart(
    title: &str,
    y_desc: &str,
    lines: &[Line],
    band: Option<(f64, f64)>,
) -> anyhow::Result<String> {
    xy_chart(title, "seconds since start", y_desc, lines, band)
}

/// One line chart as an SVG string, `x_desc` naming its x axis; `band` shades an x range.
pub(crate) fn xy_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    band: Option<(f64, f64)>,
) -> anyhow::Result<String> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("chart {title:?}: {e}");
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        let y_fmt = |y: &f64| {
            if y_max >= 20.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        };
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&y_fmt)
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| err(&e))?;
        if let Some((a, b)) = band {
            c.draw_series(std::iter::once(Rectangle::new(
                [(a, 0.0), (b, y_max)],
                RGBColor(225, 236, 250).filled(),
            )))
            .map_err(|e| err(&e))?
            .label("measured window")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 16, y + 5)],
                    RGBColor(225, 236, 250).filled(),
                )
            });
        }
        for l in lines {
            let color = l.color;
            for (i, seg) in segments(&l.points).into_iter().enumerate() {
                let drawn = c
                    .draw_series(LineSeries::new(seg, color.stroke_width(2)))
                    .map_err(|e| err(&e))?;
                if i == 0 {
                    drawn.label(l.label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                }
            }
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn lat_row(out: &mut String, name: &str, l: &Latency) {
    if l.samples == 0 {
        let _ = writeln!(
            out,
            "<tr><th>{name}</th><td colspan=6>not measured</td></tr>"
        );
        return;
    }
    let _ = writeln!(
        out,
        "<tr><th>{name}</th><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
        l.p50, l.p90, l.p99, l.p999, l.max, l.samples
    );
}

const BLUE_: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN_: RGBColor = RGBColor(44, 160, 44);
const RED_: RGBColor = RGBColor(214, 39, 40);

/// A delivered flow: its label and its per-second count.
type Received = (&'static str, fn(&Sample) -> u64);

/// What the page says about the scenario's own flow.
struct Words {
    title: String,
    note: String,
    latency_title: &'static str,
    /// The scenario's own delivered flow in the throughput chart, if it has one.
    received: Option<Received>,
    /// What the clients' in and out counters count.
    in_label: &'static str,
    out_label: &'static str,
}

const WS_IN: &str = "WebSocket messages in";
const WS_OUT: &str = "WebSocket messages out";

fn words(r: &RunResult) -> Words {
    match &r.detail {
        Detail::Rooms(d) => Words {
            title: format!(
                "wagu-loadtest rooms · {} × {} on {} ({})",
                d.rooms,
                d.participants,
                r.target.name(),
                r.url
            ),
            note: format!("presence {} Hz, chat {}/min", d.presence_hz, d.chat_per_min),
            latency_title: "End-to-end presence latency, per second (send → friend reads it)",
            received: Some(("friends' presence updates received", |s| {
                s.presence_received
            })),
            in_label: WS_IN,
            out_label: WS_OUT,
        },
        Detail::Streams(d) => Words {
            title: format!(
                "wagu-loadtest streams · {} × (1 + {} viewers) on {} ({})",
                d.streams,
                d.viewers,
                r.target.name(),
                r.url
            ),
            note: format!(
                "chat {}/s per stream from {} chatters",
                d.chat_per_sec, d.chatters
            ),
            latency_title: "End-to-end chat latency, per second (send → every receiver reads it)",
            received: Some(("chat messages delivered", |s| s.chat_received)),
            in_label: WS_IN,
            out_label: WS_OUT,
        },
        Detail::Mixed(m) => Words {
            title: format!(
                "wagu-loadtest mixed · {} rooms × {} + {} streams × (1 + {} viewers) on {} ({})",
                m.rooms.rooms,
                m.rooms.participants,
                m.streams.streams,
                m.streams.viewers,
                r.target.name(),
                r.url
            ),
            note: format!(
                "presence {} Hz; stream chat {}/s per stream from {} chatters",
                m.rooms.presence_hz, m.streams.chat_per_sec, m.streams.chatters
            ),
            latency_title: "End-to-end latency, per second (presence and stream chat together)",
            received: Some(("presence updates and chat messages received", |s| {
                s.presence_received + s.chat_received
            })),
            in_label: WS_IN,
            out_label: WS_OUT,
        },
        Detail::Records(d) => Words {
            title: format!(
                "wagu-loadtest records · {} users, {} workers on {}",
                d.users, d.concurrency, r.url
            ),
            note: format!("write ratio {}, seed {}", d.write_ratio, d.seed),
            latency_title: "Request latency, per second (every operation of the mix)",
            received: None,
            in_label: "HTTP answers",
            out_label: "HTTP requests",
        },
    }
}

/// The whole page.
pub fn render(r: &RunResult) -> anyhow::Result<String> {
    let t = &r.timeline;
    let band = window(t);
    let w = words(r);
    let latency = chart(
        w.latency_title,
        "ms",
        &[
            series(t, "p50", BLUE_, |s| s.latency_p50_ms),
            series(t, "p99", RED_, |s| s.latency_p99_ms),
        ],
        band,
    )?;
    let mut lines = vec![
        series(t, w.in_label, BLUE_, |s| Some(s.messages_in as f64)),
        series(t, w.out_label, ORANGE, |s| Some(s.messages_out as f64)),
    ];
    if let Some((label, received)) = w.received {
        lines.push(series(t, label, GREEN_, |s| Some(received(s) as f64)));
    }
    let throughput = chart(
        "Throughput at the clients, per second",
        if w.received.is_some() {
            "messages / s"
        } else {
            "requests / s"
        },
        &lines,
        band,
    )?;
    let server = if r.server.is_some() {
        Some((
            chart(
                "CPU (100 % = one core)",
                "%",
                &[
                    series(t, "server", RED_, |s| s.server_cpu_percent),
                    series(t, "load generator (this harness)", ORANGE, |s| {
                        s.harness_cpu_percent
                    }),
                ],
                band,
            )?,
            chart(
                "Server resident memory",
                "MB",
                &[series(t, "RSS", BLUE_, |s| s.server_rss_mb)],
                band,
            )?,
        ))
    } else {
        None
    };

    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{}</title>\n<style>\
         body{{font:14px/1.4 system-ui,sans-serif;max-width:{W}px;margin:24px auto;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0 16px}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:right}}\
         th{{text-align:left;background:#f6f6f6}}h1{{font-size:20px}}h2{{font-size:16px;margin-top:24px}}\
         .note{{color:#666}}</style></head><body>\n<h1>{}</h1>\n",
        esc(&w.title),
        esc(&w.title)
    );
    let interrupted = if r.interrupted { " (interrupted)" } else { "" };
    if let Detail::Records(d) = &r.detail {
        let _ = writeln!(
            h,
            "<p class=note>setup: {}/{} users signed up, {} places found, {} posts seeded in {:.1} s · {} · \
             warmup {} s, measured {:.1} s{interrupted}</p>",
            d.users_signed_up,
            d.users,
            d.places_found,
            d.posts_seeded,
            r.ramp_done_secs,
            esc(&w.note),
            r.warmup_secs,
            r.duration_secs,
        );
    } else {
        let _ = writeln!(
            h,
            "<p class=note>{} connections planned, {} joined (all settled {:.1} s into the ramp), {} open at the end · {} · \
             ramp {} s, warmup {} s, measured {:.1} s{interrupted}</p>",
            r.connections,
            r.connections_joined,
            r.ramp_done_secs,
            r.connections_open,
            esc(&w.note),
            r.ramp_secs,
            r.warmup_secs,
            r.duration_secs,
        );
    }
    h.push_str("<h2>Steady state</h2>\n<table>");
    match &r.detail {
        Detail::Rooms(d) => rooms_rows(&mut h, r, d),
        Detail::Streams(d) => streams_rows(&mut h, d),
        Detail::Mixed(m) => {
            rooms_rows(&mut h, r, &m.rooms);
            streams_rows(&mut h, &m.streams);
        }
        Detail::Records(d) => records_rows(&mut h, r, d),
    }
    let _ = write!(
        h,
        "<tr><th>{} / {} at the clients</th><td>{:.0} /s / {:.0} /s</td></tr>\
         <tr><th>errors (whole run)</th><td>{}</td></tr>",
        w.in_label,
        w.out_label,
        r.throughput.messages_in_per_sec,
        r.throughput.messages_out_per_sec,
        r.errors.total
    );
    if let Some(s) = &r.server {
        let _ = write!(
            h,
            "<tr><th>server CPU avg / max (of one core)</th><td>{:.1} % / {:.1} %</td></tr>\
             <tr><th>server RSS before → avg</th><td>{:.1} MB → {:.1} MB</td></tr>",
            s.cpu_percent_avg, s.cpu_percent_max, s.rss_mb_start, s.rss_mb_avg
        );
        if let Some(cpu) = r.harness_cpu_percent {
            let _ = write!(
                h,
                "<tr><th>load generator CPU avg (same machine)</th><td>{cpu:.1} %</td></tr>"
            );
        }
        if let Some(kb) = s.rss_kb_per_connection {
            let _ = write!(
                h,
                "<tr><th>server memory per open connection</th><td>{kb:.1} kB</td></tr>"
            );
        }
    }
    h.push_str("</table>\n<h2>Latency (ms)</h2>\n<table><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>samples</th></tr>\n");
    match &r.detail {
        Detail::Rooms(d) => rooms_latency(&mut h, d),
        Detail::Streams(d) => streams_latency(&mut h, d),
        Detail::Mixed(m) => {
            rooms_latency(&mut h, &m.rooms);
            streams_latency(&mut h, &m.streams);
        }
        Detail::Records(d) => records_latency(&mut h, d),
    }
    let open = if let Detail::Records(_) = &r.detail {
        "sign-up (setup)"
    } else {
        "session open (ramp)"
    };
    lat_row(&mut h, open, &r.join_latency_ms);
    h.push_str("</table>\n<p class=note>The shaded band is the measured window; the tables describe it. Charts show every second of the run.</p>\n");
    for svg in [Some(&latency), Some(&throughput)]
        .into_iter()
        .flatten()
        .chain(server.iter().flat_map(|(a, b)| [a, b]))
    {
        h.push_str("<div>");
        h.push_str(svg);
        h.push_str("</div>\n");
    }
    if !r.slo.violations.is_empty() {
        h.push_str("<h2>SLO broken</h2><ul>");
        for v in &r.slo.violations {
            let _ = write!(h, "<li>{}</li>", esc(v));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn rooms_rows(h: &mut String, r: &RunResult, d: &RoomsDetail) {
    let p = &d.presence;
    let _ = write!(
        h,
        "<tr><th>friends' messages delivered</th><td>{:.0} /s</td></tr>\
                 <tr><th>presence sent (target)</th><td>{:.0} /s ({:.0} /s)</td></tr>\
                 <tr><th>presence updates received · delivery ratio</th><td>{:.0} /s · {:.3}</td></tr>",
        r.delivered_per_sec,
        p.sent_per_sec,
        p.target_sent_per_sec,
        p.received_per_sec,
        p.delivery_ratio,
    );
}

fn streams_rows(h: &mut String, d: &StreamsDetail) {
    let c = &d.chat;
    let _ = write!(
        h,
        "<tr><th>chat sent (target)</th><td>{:.1} /s ({:.1} /s)</td></tr>\
                 <tr><th>chat delivered · delivery ratio</th><td>{:.0} /s · {:.4}</td></tr>\
                 <tr><th>viewer-count events (whole run) · last counts seen by the streamers</th><td>{} · {}</td></tr>",
        c.sent_per_sec,
        c.target_sent_per_sec,
        c.received_per_sec,
        c.delivery_ratio,
        d.viewers_events,
        d.viewer_count_seen,
    );
}

fn records_rows(h: &mut String, r: &RunResult, d: &RecordsDetail) {
    let _ = write!(
        h,
        "<tr><th>requests · successful</th><td>{:.1} /s · {:.1} /s</td></tr>\
         <tr><th>failed requests in the window</th><td>{}</td></tr>\
         <tr><th>workers (closed loop) · write ratio</th><td>{} · {}</td></tr>",
        d.requests_per_sec, r.delivered_per_sec, d.errors_in_window, d.concurrency, d.write_ratio,
    );
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name)
            && o.errors > 0
        {
            let by: Vec<String> = o
                .errors_by
                .iter()
                .map(|(k, n)| format!("{k} × {n}"))
                .collect();
            let _ = write!(
                h,
                "<tr><th>{name} errors</th><td>{}</td></tr>",
                esc(&by.join(", "))
            );
        }
    }
}

fn records_latency(h: &mut String, d: &RecordsDetail) {
    for name in RECORDS_OPS {
        if let Some(o) = d.ops.get(name) {
            let label = format!("{name} ({:.1} /s)", o.per_sec);
            lat_row(h, &label, &o.latency_ms);
        }
    }
    lat_row(h, "all operations", &d.latency_ms);
}

fn rooms_latency(h: &mut String, d: &RoomsDetail) {
    lat_row(h, "presence, end to end", &d.presence.latency_ms);
    if d.presence_fanout_ms.samples > 0 {
        lat_row(h, "presence, server stamp → friend", &d.presence_fanout_ms);
    }
    if let Some(c) = &d.chat {
        lat_row(h, "chat, end to end", &c.latency_ms);
    }
}

fn streams_latency(h: &mut String, d: &StreamsDetail) {
    lat_row(h, "chat, end to end", &d.chat.latency_ms);
    lat_row(h, "chat, server stamp → receiver", &d.chat_fanout_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, phase: &'static str, p99: Option<f64>) -> Sample {
        Sample {
            t_secs: t,
            phase,
            open: 10,
            messages_in: 100 * t,
            messages_out: 50,
            bytes_in: 0,
            bytes_out: 0,
            presence_sent: 40,
            presence_received: 360,
            chat_sent: 0,
            chat_received: 0,
            errors_total: 0,
            latency_p50_ms: p99.map(|p| p / 2.0),
            latency_p99_ms: p99,
            server_cpu_percent: Some(40.0),
            server_rss_mb: Some(30.0),
            harness_cpu_percent: Some(50.0),
        }
    }

    #[test]
    fn gaps_split_lines() {
        let s = segments(&[
            (1.0, Some(1.0)),
            (2.0, None),
            (3.0, Some(2.0)),
            (4.0, Some(3.0)),
        ]);
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 2.0), (4.0, 3.0)]]);
        assert!(segments(&[(1.0, None)]).is_empty());
    }

    #[test]
    fn window_is_the_measure_phase() {
        let t = [
            sample(1, "ramp", None),
            sample(2, "measure", Some(3.0)),
            sample(3, "measure", Some(4.0)),
            sample(4, "stop", None),
        ];
        assert_eq!(window(&t), Some((1.0, 3.0)));
        assert_eq!(window(&t[..1]), None);
    }

    #[test]
    fn charts_are_svg_with_labels() {
        let t: Vec<Sample> = (1..=5)
            .map(|i| sample(i, "measure", Some(i as f64)))
            .collect();
        let svg = chart(
            "Latency & more",
            "ms",
            &[series(&t, "p99", RED_, |s| s.latency_p99_ms)],
            window(&t),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("p99") && svg.contains("measured window"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
