//! `--plot FILE.svg`: delivered events/s and latency percentiles over time,
//! as two stacked line charts in a plain SVG file.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One second of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub t: f64,
    pub clients: u64,
    pub actions: u64,
    pub delivered: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

const W: f64 = 900.0;
const H: f64 = 260.0;
const PAD: f64 = 50.0;

/// A named, coloured line of (t, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn chart(out: &mut String, top: f64, title: &str, t_max: f64, series: &[Series<'_>]) {
    let y_max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |t: f64| PAD + (W - 2.0 * PAD) * t / t_max.max(1e-9);
    let y = |v: f64| top + H - PAD / 2.0 - (H - PAD) * v / y_max;
    let _ = writeln!(
        out,
        r##"<text x="{PAD}" y="{}" font-size="14" font-family="sans-serif">{title}</text>"##,
        top + 16.0
    );
    let _ = writeln!(
        out,
        r##"<line x1="{PAD}" y1="{b}" x2="{}" y2="{b}" stroke="#888"/><line x1="{PAD}" y1="{}" x2="{PAD}" y2="{b}" stroke="#888"/>"##,
        W - PAD,
        top + PAD / 2.0,
        b = y(0.0)
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = y_max / 1.1 * frac;
        let _ = writeln!(
            out,
            r##"<text x="2" y="{:.1}" font-size="10" font-family="sans-serif">{}</text>"##,
            y(v) + 3.0,
            short(v)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{:.1}" font-size="10" font-family="sans-serif">{:.0} s</text>"##,
        W - PAD - 10.0,
        y(0.0) + 14.0,
        t_max
    );
    for (i, (name, color, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"##,
            path.join(" ")
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" font-size="11" fill="{color}" font-family="sans-serif">{name}</text>"##,
            W - PAD - 180.0 + 60.0 * i as f64,
            top + 16.0
        );
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

/// The whole SVG document.
/// The start of an SVG document of `height` with `title` on top.
fn open(title: &str, height: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}"><rect width="100%" height="100%" fill="white"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{PAD}" y="14" font-size="12" font-family="sans-serif">{}</text>"##,
        title.replace('<', "&lt;")
    );
    out
}

pub fn svg(title: &str, seconds: &[Second]) -> String {
    let t_max = seconds.last().map_or(1.0, |s| s.t);
    let pts = |f: fn(&Second) -> f64| -> Vec<(f64, f64)> {
        seconds.iter().map(|s| (s.t, f(s))).collect()
    };
    let mut out = open(title, 2.0 * H + 30.0);
    chart(
        &mut out,
        20.0,
        "throughput (per second)",
        t_max,
        &[
            ("events", "#1f77b4", pts(|s| s.delivered as f64)),
            ("actions", "#2ca02c", pts(|s| s.actions as f64)),
        ],
    );
    chart(
        &mut out,
        H + 30.0,
        "action latency (ms)",
        t_max,
        &[
            ("p50", "#2ca02c", pts(|s| s.p50_ms)),
            ("p95", "#ff7f0e", pts(|s| s.p95_ms)),
            ("p99", "#d62728", pts(|s| s.p99_ms)),
        ],
    );
    out.push_str("</svg>\n");
    out
}

/// A soak run's samples (`loadtest/scripts/soak.sh` writes them as CSV
/// with a header `t_s,rss_kib,fds,connections,writer_queue,history_lost`):
/// the node's memory, open files and connections, and queue depths over
/// time, as three stacked charts.
pub fn soak_svg(title: &str, header: &[&str], rows: &[Vec<f64>]) -> Result<String, String> {
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("the CSV has no {name} column"))
    };
    let (t, rss, fds, conns, queue) = (
        col("t_s")?,
        col("rss_kib")?,
        col("fds")?,
        col("connections")?,
        col("writer_queue")?,
    );
    let pts = |i: usize, scale: f64| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| Some((*r.get(t)?, *r.get(i)? * scale)))
            .collect()
    };
    let t_max = rows
        .iter()
        .filter_map(|r| r.get(t).copied())
        .fold(1.0, f64::max);
    let mut out = open(title, 3.0 * H + 40.0);
    chart(
        &mut out,
        20.0,
        "node RSS (MiB)",
        t_max,
        &[("rss", "#1f77b4", pts(rss, 1.0 / 1024.0))],
    );
    chart(
        &mut out,
        H + 30.0,
        "open files and WebSocket connections",
        t_max,
        &[
            ("open files", "#ff7f0e", pts(fds, 1.0)),
            ("connections", "#2ca02c", pts(conns, 1.0)),
        ],
    );
    chart(
        &mut out,
        2.0 * H + 40.0,
        "persistence writer queue (records)",
        t_max,
        &[("writer queue", "#d62728", pts(queue, 1.0))],
    );
    out.push_str("</svg>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_both_charts_and_every_series() {
        let seconds: Vec<Second> = (1..=5)
            .map(|i| Second {
                t: i as f64,
                delivered: 1000 * i,
                actions: 250 * i,
                p50_ms: 1.0,
                p95_ms: 2.0,
                p99_ms: 3.0 + i as f64,
                ..Second::default()
            })
            .collect();
        let doc = svg("fanout <test>", &seconds);
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches("<polyline").count(), 5);
        assert!(doc.contains("&lt;test>"));
    }

    #[test]
    fn soak_svg_draws_each_sampled_series() {
        let header = ["t_s", "rss_kib", "fds", "connections", "writer_queue"];
        let rows: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![i as f64 * 10.0, 50_000.0, 300.0, 250.0, 0.0])
            .collect();
        let doc = soak_svg("soak", &header, &rows).expect("svg");
        assert_eq!(doc.matches("<polyline").count(), 4);
        assert!(soak_svg("soak", &["t_s"], &rows).is_err());
    }
}
