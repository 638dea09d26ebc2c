//! Test-double rulesets: a ruleset whose actions do whatever the test says
//! (panic, block, answer with a huge event), with every other rule inert.

use std::sync::Arc;

use matchd_actors::rules::{Game, Outcome, Rejection, Ruleset};
use matchd_protocol::{Action, Query, Reply, Seat, SeatView, State};

type Apply = dyn Fn(&Action) -> Result<Outcome, Rejection> + Send + Sync;

/// A ruleset named `name` with up to four seats, no tick, no query, whose
/// `apply` is the given closure.
#[derive(Clone)]
pub struct Scripted {
    name: &'static str,
    apply: Arc<Apply>,
}

impl Scripted {
    pub fn new(
        name: &'static str,
        apply: impl Fn(&Action) -> Result<Outcome, Rejection> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            apply: Arc::new(apply),
        }
    }
}

impl Ruleset for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn max_seats(&self) -> u8 {
        4
    }
    fn tick_ms(&self) -> Option<u64> {
        None
    }
    fn new_game(&self, _seed: u64) -> Box<dyn Game> {
        Box::new(ScriptedGame(self.apply.clone()))
    }
}

struct ScriptedGame(Arc<Apply>);

impl Game for ScriptedGame {
    fn seat_joined(&mut self, _: Seat) -> Outcome {
        Outcome::none()
    }
    fn seat_left(&mut self, _: Seat) -> Outcome {
        Outcome::none()
    }
    fn accepts_players(&self) -> bool {
        true
    }
    fn apply(&mut self, _: Seat, action: &Action) -> Result<Outcome, Rejection> {
        (self.0)(action)
    }
    fn tick(&mut self) -> Outcome {
        Outcome::none()
    }
    fn wants_tick(&self) -> bool {
        false
    }
    fn query(&self, _: Seat, _: &Query) -> Result<Reply, Rejection> {
        Err(Rejection::new("unknown_query", "no"))
    }
    fn version(&self) -> u64 {
        0
    }
    fn view(&self, _: Option<Seat>, seats: Vec<SeatView>) -> State {
        State::Sandbox {
            width: 0,
            height: 0,
            cells: vec![],
            seats,
        }
    }
}
