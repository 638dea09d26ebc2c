//! Ratings and outcomes: who won, lost or drew an ended match, and the
//! pairwise Elo update. Pure functions; the store applies them inside the
//! transaction that ends the match.

use std::collections::BTreeMap;

use matchd_protocol::{MatchResult, PlayerId, Seat};

/// Rating every player starts with.
pub const START_RATING: f64 = 1000.0;
/// Elo K-factor of a two-player match (split over the opponents in bigger ones).
pub const ELO_K: f64 = 32.0;

/// A seat's outcome in an ended match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Win,
    Loss,
    Draw,
    /// The match had no contest (abandoned, crashed): no stats.
    NoContest,
}

impl Outcome {
    pub fn label(self) -> Option<&'static str> {
        match self {
            Outcome::Win => Some("win"),
            Outcome::Loss => Some("loss"),
            Outcome::Draw => Some("draw"),
            Outcome::NoContest => None,
        }
    }

    fn score(self) -> f64 {
        match self {
            Outcome::Win => 1.0,
            Outcome::Draw => 0.5,
            Outcome::Loss | Outcome::NoContest => 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatOutcome {
    pub seat: Seat,
    pub player_id: PlayerId,
    pub outcome: Outcome,
}

/// Each player's outcome: the winner's seat wins, every other seat loses; no
/// winner is a draw, unless the match was abandoned or crashed. A player who
/// sat in several seats counts once (the last seat).
pub fn outcomes(result: &MatchResult, players: &[(Seat, PlayerId)]) -> Vec<SeatOutcome> {
    let no_contest = matches!(result.reason.as_str(), "abandoned" | "internal_error");
    let mut by_player: BTreeMap<PlayerId, SeatOutcome> = BTreeMap::new();
    for &(seat, player_id) in players {
        let outcome = match result.winner {
            Some(w) if w == seat => Outcome::Win,
            Some(_) => Outcome::Loss,
            None if no_contest => Outcome::NoContest,
            None => Outcome::Draw,
        };
        by_player.insert(
            player_id,
            SeatOutcome {
                seat,
                player_id,
                outcome,
            },
        );
    }
    let mut out: Vec<SeatOutcome> = by_player.into_values().collect();
    out.sort_by_key(|o| (o.seat, o.player_id));
    out
}

/// New ratings after one match: pairwise Elo, K split over the opponents.
pub fn elo(players: &[(f64, Outcome)]) -> Vec<f64> {
    let n = players.len();
    if n < 2 {
        return players.iter().map(|(r, _)| *r).collect();
    }
    let k = ELO_K / (n - 1) as f64;
    players
        .iter()
        .enumerate()
        .map(|(i, (ri, oi))| {
            let delta: f64 = players
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (rj, oj))| {
                    let expected = 1.0 / (1.0 + 10f64.powf((rj - ri) / 400.0));
                    let actual = match oi.score().partial_cmp(&oj.score()) {
                        Some(std::cmp::Ordering::Greater) => 1.0,
                        Some(std::cmp::Ordering::Less) => 0.0,
                        _ => 0.5,
                    };
                    k * (actual - expected)
                })
                .sum();
            ri + delta
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(winner: Option<Seat>, reason: &str) -> MatchResult {
        MatchResult {
            winner,
            reason: reason.into(),
            scores: vec![],
        }
    }

    #[test]
    fn outcomes_follow_the_result() {
        let players = [(0, 10), (1, 11)];
        let check = |r: MatchResult, want: [Outcome; 2]| {
            let got: Vec<Outcome> = outcomes(&r, &players).iter().map(|o| o.outcome).collect();
            assert_eq!(got, want, "{r:?}");
        };
        check(
            result(Some(0), "base_destroyed"),
            [Outcome::Win, Outcome::Loss],
        );
        check(result(Some(1), "concede"), [Outcome::Loss, Outcome::Win]);
        check(result(None, "time_limit"), [Outcome::Draw, Outcome::Draw]);
        check(
            result(None, "abandoned"),
            [Outcome::NoContest, Outcome::NoContest],
        );
        check(
            result(None, "internal_error"),
            [Outcome::NoContest, Outcome::NoContest],
        );
    }

    #[test]
    fn a_player_in_two_seats_counts_once() {
        let got = outcomes(&result(Some(1), "concede"), &[(0, 7), (1, 8), (2, 7)]);
        assert_eq!(got.len(), 2);
        assert!(got.iter().any(|o| o.player_id == 7 && o.seat == 2));
    }

    #[test]
    fn elo_moves_equal_players_by_half_k() {
        let new = elo(&[(1000.0, Outcome::Win), (1000.0, Outcome::Loss)]);
        assert_eq!(new, vec![1016.0, 984.0]);
        let draw = elo(&[(1000.0, Outcome::Draw), (1000.0, Outcome::Draw)]);
        assert_eq!(draw, vec![1000.0, 1000.0]);
        // The favourite gains less than the underdog would.
        let fav = elo(&[(1400.0, Outcome::Win), (1000.0, Outcome::Loss)]);
        assert!(fav[0] - 1400.0 < 16.0 && fav[0] > 1400.0, "{fav:?}");
        let total: f64 = fav.iter().sum();
        assert!((total - 2400.0).abs() < 1e-9, "zero-sum");
        assert_eq!(elo(&[(1000.0, Outcome::Win)]), vec![1000.0]);
    }
}
