//! Ramps in the style of k6's ramping-vus: `10s:1000,30s:1000,10s:0` means
//! go to 1000 clients over 10 s, hold 30 s, go to 0 over 10 s.

use std::time::Duration;

use crate::args::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stages(pub Vec<Stage>);

impl Stages {
    pub fn parse(s: &str) -> Result<Self, String> {
        let stages = s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let (d, n) = p
                    .split_once(':')
                    .ok_or_else(|| format!("stage {p:?}: expected DURATION:CLIENTS"))?;
                let duration =
                    parse_duration(d).ok_or_else(|| format!("stage {p:?}: bad duration {d:?}"))?;
                let target = n
                    .trim()
                    .parse()
                    .map_err(|_| format!("stage {p:?}: bad client count {n:?}"))?;
                Ok(Stage { duration, target })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if stages.is_empty() {
            return Err("no stages".into());
        }
        Ok(Self(stages))
    }

    /// A single stage: `clients` from the start, for `duration`.
    pub fn flat(clients: usize, duration: Duration) -> Self {
        Self(vec![
            Stage {
                duration: Duration::ZERO,
                target: clients,
            },
            Stage {
                duration,
                target: clients,
            },
        ])
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }

    /// Clients wanted `t` after the start: linear within a stage, from the
    /// previous stage's target (0 before the first).
    pub fn target_at(&self, t: Duration) -> usize {
        let mut from = 0usize;
        let mut start = Duration::ZERO;
        for s in &self.0 {
            let end = start + s.duration;
            if t < end {
                let frac = (t - start).as_secs_f64() / s.duration.as_secs_f64();
                let v = from as f64 + (s.target as f64 - from as f64) * frac;
                return v.round() as usize;
            }
            from = s.target;
            start = end;
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_hold_and_fall() {
        let s = Stages::parse("10s:1000,30s:1000,10s:0").expect("parses");
        assert_eq!(s.total(), Duration::from_secs(50));
        assert_eq!(s.target_at(Duration::ZERO), 0);
        assert_eq!(s.target_at(Duration::from_secs(5)), 500);
        assert_eq!(s.target_at(Duration::from_secs(25)), 1000);
        assert_eq!(s.target_at(Duration::from_secs(45)), 500);
        assert_eq!(s.target_at(Duration::from_secs(60)), 0);
        assert!(Stages::parse("10s").is_err());
        assert!(Stages::parse("xs:10").is_err());
        assert!(Stages::parse("").is_err());
        let f = Stages::flat(8, Duration::from_secs(2));
        assert_eq!(f.target_at(Duration::ZERO), 8);
        assert_eq!(f.target_at(Duration::from_secs(1)), 8);
    }
}
