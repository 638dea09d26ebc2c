//! Pass/fail rules on a report: `--threshold 'p99<20ms'`, `errors<0.1%`,
//! and the comparison with a baseline report (the seeds' regression rule:
//! p95 latency more than 20% worse, or an error rate more than 1.5x, fails).

use serde::{Deserialize, Serialize};

/// The figures thresholds and baselines look at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Errors per action, as a fraction.
    pub error_rate: f64,
    pub delivered_per_s: f64,
    pub actions_per_s: f64,
    pub connect_failures: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub text: String,
    pub metric: String,
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub rule: String,
    pub actual: f64,
    pub passed: bool,
}

const METRICS: &[&str] = &[
    "p50",
    "p95",
    "p99",
    "max",
    "errors",
    "delivered_per_s",
    "actions_per_s",
    "connect_failures",
];

impl Threshold {
    /// `p99<20ms`, `p95<=5ms`, `errors<0.1%`, `delivered_per_s>100000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.replace(' ', "");
        let (pos, op, len) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(sym, op)| t.find(sym).map(|p| (p, *op, sym.len())))
            .ok_or_else(|| format!("threshold {text:?}: expected METRIC<VALUE or METRIC>VALUE"))?;
        let metric = t[..pos].to_string();
        if !METRICS.contains(&metric.as_str()) {
            return Err(format!(
                "threshold {text:?}: unknown metric {metric:?} (one of {})",
                METRICS.join(", ")
            ));
        }
        let raw = &t[pos + len..];
        let (num, scale) = if let Some(n) = raw.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = raw.strip_suffix('s') {
            (n, 1000.0)
        } else if let Some(n) = raw.strip_suffix('%') {
            (n, 0.01)
        } else {
            (raw, 1.0)
        };
        let value = num
            .parse::<f64>()
            .map_err(|_| format!("threshold {text:?}: bad number {raw:?}"))?
            * scale;
        Ok(Self {
            text: text.to_string(),
            metric,
            op,
            value,
        })
    }

    pub fn check(&self, f: &Figures) -> Verdict {
        let actual = match self.metric.as_str() {
            "p50" => f.p50_ms,
            "p95" => f.p95_ms,
            "p99" => f.p99_ms,
            "max" => f.max_ms,
            "errors" => f.error_rate,
            "delivered_per_s" => f.delivered_per_s,
            "actions_per_s" => f.actions_per_s,
            _ => f.connect_failures as f64,
        };
        let passed = match self.op {
            Op::Lt => actual < self.value,
            Op::Le => actual <= self.value,
            Op::Gt => actual > self.value,
            Op::Ge => actual >= self.value,
        };
        Verdict {
            rule: self.text.clone(),
            actual,
            passed,
        }
    }
}

/// This run against a baseline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline_p95_ms: f64,
    pub p95_ms: f64,
    pub baseline_error_rate: f64,
    pub error_rate: f64,
    pub p95_regressed: bool,
    pub errors_regressed: bool,
}

impl Comparison {
    pub fn new(baseline: &Figures, now: &Figures) -> Self {
        let p95_regressed = now.p95_ms > baseline.p95_ms * 1.2;
        // A clean baseline (no errors) tolerates none.
        let errors_regressed = now.error_rate > baseline.error_rate * 1.5;
        Self {
            baseline_p95_ms: baseline.p95_ms,
            p95_ms: now.p95_ms,
            baseline_error_rate: baseline.error_rate,
            error_rate: now.error_rate,
            p95_regressed,
            errors_regressed,
        }
    }

    pub fn passed(&self) -> bool {
        !self.p95_regressed && !self.errors_regressed
    }

    pub fn describe(&self) -> String {
        let mark = |bad| if bad { "REGRESSED" } else { "ok" };
        format!(
            "  p95 {:.3} ms vs baseline {:.3} ms (limit +20%): {}\n  error rate {:.4}% vs baseline {:.4}% (limit 1.5x): {}\n",
            self.p95_ms,
            self.baseline_p95_ms,
            mark(self.p95_regressed),
            self.error_rate * 100.0,
            self.baseline_error_rate * 100.0,
            mark(self.errors_regressed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p95: f64, errors: f64) -> Figures {
        Figures {
            p50_ms: p95 / 2.0,
            p95_ms: p95,
            p99_ms: p95 * 1.5,
            max_ms: p95 * 3.0,
            error_rate: errors,
            delivered_per_s: 50_000.0,
            actions_per_s: 12_500.0,
            connect_failures: 0,
        }
    }

    #[test]
    fn parses_and_checks_thresholds() {
        let f = figures(10.0, 0.0005);
        let check = |t: &str| Threshold::parse(t).expect(t).check(&f).passed;
        assert!(check("p99<20ms"));
        assert!(!check("p99<10ms"));
        assert!(check("p95<=10ms"));
        assert!(check("p95 < 0.02s"));
        assert!(check("errors<0.1%"));
        assert!(!check("errors<0.01%"));
        assert!(check("delivered_per_s>40000"));
        assert!(!check("actions_per_s>=20000"));
        assert!(check("connect_failures<1"));
        assert!(Threshold::parse("latency<5ms").is_err());
        assert!(Threshold::parse("p99=5ms").is_err());
        assert!(Threshold::parse("p99<fast").is_err());
    }

    #[test]
    fn baseline_rule_from_fixed_reports() {
        // Fixed reports as they come out of `--json`.
        let base: Figures = serde_json::from_str(
            r#"{"p50_ms":2.0,"p95_ms":10.0,"p99_ms":15.0,"max_ms":40.0,"error_rate":0.001,
                "delivered_per_s":1000.0,"actions_per_s":250.0,"connect_failures":0}"#,
        )
        .expect("baseline json");
        assert!(Comparison::new(&base, &figures(11.9, 0.0014)).passed());
        let slower = Comparison::new(&base, &figures(12.1, 0.001));
        assert!(slower.p95_regressed && !slower.passed());
        let noisier = Comparison::new(&base, &figures(10.0, 0.0016));
        assert!(noisier.errors_regressed && !noisier.passed());
        let clean = figures(10.0, 0.0);
        assert!(!Comparison::new(&clean, &figures(10.0, 0.0001)).passed());
        assert!(Comparison::new(&clean, &clean).passed());
        assert!(slower.describe().contains("REGRESSED"));
    }
}
