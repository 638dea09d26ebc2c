//! What a run measured: latency summaries from HDR histograms, process
//! figures from `/proc`, the human table and the JSON report.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A new latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records `d` in microseconds, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, h.high());
    let _ = h.record(us);
}

/// `count (rate/s)`, as every report table shows a total.
pub fn count_and_rate(count: u64, per_s: f64) -> String {
    format!("{count} ({per_s:.0}/s)")
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// `p50 … p95 … p99 … max … (n=…)`, in milliseconds.
    pub fn describe(&self) -> String {
        format!(
            "p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}  (n={})",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms, self.count
        )
    }

    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Resident memory and CPU time of this process, from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub cpu_seconds: f64,
}

impl ProcSample {
    /// Reads `/proc/<pid>`; zeros where it is not available.
    pub fn of(pid: &str) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after ')'.
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let nums: Vec<u64> = after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
        let ticks = nums.get(11).copied().unwrap_or(0) + nums.get(12).copied().unwrap_or(0);
        Self {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        }
    }

    pub fn this_process() -> Self {
        Self::of("self")
    }
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// One mailbox-mode run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MailboxReport {
    pub mode: String,
    pub workload: String,
    pub params: serde_json::Value,
    pub seconds: f64,
    pub actions: u64,
    pub actions_per_s: f64,
    pub delivered_events: u64,
    pub delivered_per_s: f64,
    /// Action sent by a simulated client to that client receiving its own event.
    pub action_latency: Latency,
    /// Query sent to reply received (tactics).
    pub query_latency: Latency,
    pub queries: u64,
    pub rejected_busy: u64,
    pub rejected_other: u64,
    /// Gaps, duplicates or out-of-order events seen by any client: must be 0.
    pub order_errors: u64,
    /// Frames a client could not decode: must be 0.
    pub decode_errors: u64,
    /// Clients the engine dropped as too slow (the generator fell behind).
    pub kicked: u64,
    pub matches_finished: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_hit_rate: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub peak_rss_kib: u64,
    /// CPU cores this process kept busy on average during the measurement.
    pub cpu_cores_used: f64,
    /// Resident memory sampled once a second during the measurement.
    pub rss_timeline_kib: Vec<u64>,
}

impl MailboxReport {
    pub fn table(&self) -> String {
        let l = &self.action_latency;
        let q = &self.query_latency;
        let mut out = String::new();
        let mut row = |k: &str, v: String| out.push_str(&format!("  {k:<28} {v}\n"));
        row(
            "mode / workload",
            format!("{} / {}", self.mode, self.workload),
        );
        row("parameters", self.params.to_string());
        row("measured", format!("{:.1} s", self.seconds));
        row("actions", count_and_rate(self.actions, self.actions_per_s));
        row(
            "delivered events",
            count_and_rate(self.delivered_events, self.delivered_per_s),
        );
        row("action latency (ms)", l.describe());
        if q.count > 0 {
            row("query latency (ms)", q.describe());
        }
        row(
            "rejected",
            format!("busy {}  other {}", self.rejected_busy, self.rejected_other),
        );
        row(
            "errors",
            format!(
                "order {}  decode {}  clients dropped as slow {}",
                self.order_errors, self.decode_errors, self.kicked
            ),
        );
        if self.matches_finished > 0 {
            row("matches finished", self.matches_finished.to_string());
        }
        row(
            "validation cache",
            format!(
                "hits {}  misses {}  hit rate {:.1}%",
                self.cache_hits,
                self.cache_misses,
                self.cache_hit_rate * 100.0
            ),
        );
        row(
            "memory (RSS)",
            format!(
                "start {} KiB  end {} KiB  peak {} KiB",
                self.rss_start_kib, self.rss_end_kib, self.peak_rss_kib
            ),
        );
        row("cpu", format!("{:.2} cores", self.cpu_cores_used));
        out
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &str, value: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_in_ms() {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 0.5).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 0.99).abs() < 0.01, "{l:?}");
        assert!((l.max_ms - 1.0).abs() < 0.01, "{l:?}");
        assert_eq!(Latency::of(&latency_histogram()), Latency::default());
    }

    #[test]
    fn proc_sample_reads_this_process() {
        let s = ProcSample::this_process();
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib, "{s:?}");
    }
}
