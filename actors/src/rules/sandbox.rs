//! `sandbox`: up to 8 seats on a 5x3 board; `mark` adds one to a cell.
//! No end condition: the engine ends the match once it has been empty for a while.
//! This is the fan-out workload of the benchmarks.

use bincode::{Decode, Encode};

use super::{
    decode_snapshot, encode_snapshot, unknown_action, unknown_query, Game, Outcome, Rejection,
    Ruleset,
};
use matchd_protocol::{Action, Event, Query, Reply, Seat, SeatView, State};

pub const WIDTH: i32 = 5;
pub const HEIGHT: i32 = 3;
pub const MAX_SEATS: u8 = 8;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox;

impl Ruleset for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn max_seats(&self) -> u8 {
        MAX_SEATS
    }

    fn min_seats(&self) -> u8 {
        1
    }

    fn tick_ms(&self) -> Option<u64> {
        None
    }

    fn new_game(&self, _seed: u64) -> Box<dyn Game> {
        Box::new(SandboxGame::default())
    }

    fn restore(&self, bytes: &[u8]) -> Option<Box<dyn Game>> {
        let game: SandboxGame = decode_snapshot(bytes)?;
        Some(Box::new(game))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SandboxGame {
    cells: [u32; (WIDTH * HEIGHT) as usize],
    version: u64,
}

impl Default for SandboxGame {
    fn default() -> Self {
        Self {
            cells: [0; (WIDTH * HEIGHT) as usize],
            version: 0,
        }
    }
}

impl Game for SandboxGame {
    fn seat_joined(&mut self, _seat: Seat) -> Outcome {
        Outcome::none()
    }

    fn seat_left(&mut self, _seat: Seat) -> Outcome {
        Outcome::none()
    }

    fn accepts_players(&self) -> bool {
        true
    }

    fn apply(&mut self, _seat: Seat, action: &Action) -> Result<Outcome, Rejection> {
        let &Action::Mark { x, y } = action else {
            return Err(unknown_action("sandbox", action));
        };
        if !(0..WIDTH).contains(&x) || !(0..HEIGHT).contains(&y) {
            return Err(Rejection::new(
                "out_of_board",
                format!("({x}, {y}) is outside the {WIDTH}x{HEIGHT} board"),
            ));
        }
        let cell = &mut self.cells[(y * WIDTH + x) as usize];
        *cell = cell.saturating_add(1);
        self.version += 1;
        Ok(Outcome::event(Event::Marked { x, y, count: *cell }))
    }

    fn tick(&mut self) -> Outcome {
        Outcome::none()
    }

    fn wants_tick(&self) -> bool {
        false
    }

    fn query(&self, seat: Seat, query: &Query) -> Result<Reply, Rejection> {
        match query {
            Query::State => Ok(Reply::State {
                state: self.view(Some(seat), Vec::new()),
            }),
            other => Err(unknown_query("sandbox", other)),
        }
    }

    fn version(&self) -> u64 {
        self.version
    }

    /// Sandbox caches nothing (`cache_query` is always `None`), so nothing
    /// cached depends on its state: a constant spares the match a
    /// hot-query pass after every mark.
    fn query_version(&self, _seat: Seat) -> u64 {
        0
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        encode_snapshot(self)
    }

    fn view(&self, _seat: Option<Seat>, seats: Vec<SeatView>) -> State {
        State::Sandbox {
            width: WIDTH,
            height: HEIGHT,
            cells: self.cells.to_vec(),
            seats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip() {
        let mut g = SandboxGame::default();
        g.apply(0, &Action::Mark { x: 1, y: 2 }).expect("marked");
        let bytes = g.snapshot().expect("sandbox snapshots");
        let restored = Sandbox.restore(&bytes).expect("restores");
        assert_eq!(restored.snapshot(), Some(bytes.clone()));
        assert_eq!(restored.view(None, Vec::new()), g.view(None, Vec::new()));
        assert!(Sandbox.restore(&bytes[1..]).is_none());
    }

    fn check(game: &mut SandboxGame, action: Action, expected: Result<Event, &str>) {
        let got = game.apply(0, &action);
        match (got, expected) {
            (Ok(out), Ok(ev)) => assert_eq!(out.events, vec![ev]),
            (Err(r), Err(code)) => assert_eq!(r.code, code),
            (got, exp) => panic!("{action:?}: got {got:?}, expected {exp:?}"),
        }
    }

    #[test]
    fn marks_count_up_and_bounds_are_checked() {
        let mut g = SandboxGame::default();
        check(
            &mut g,
            Action::Mark { x: 0, y: 0 },
            Ok(Event::Marked {
                x: 0,
                y: 0,
                count: 1,
            }),
        );
        check(
            &mut g,
            Action::Mark { x: 0, y: 0 },
            Ok(Event::Marked {
                x: 0,
                y: 0,
                count: 2,
            }),
        );
        check(
            &mut g,
            Action::Mark { x: 4, y: 2 },
            Ok(Event::Marked {
                x: 4,
                y: 2,
                count: 1,
            }),
        );
        check(&mut g, Action::Mark { x: 5, y: 0 }, Err("out_of_board"));
        check(&mut g, Action::Mark { x: 0, y: 3 }, Err("out_of_board"));
        check(&mut g, Action::Mark { x: -1, y: 0 }, Err("out_of_board"));
        check(&mut g, Action::Ready, Err("unknown_action"));
        assert_eq!(g.version(), 3);
    }
}
