//! A scripted tactics player with no I/O of its own, shared by the mailbox
//! and WebSocket modes: they feed it what the server said and send what it
//! asks for.
//!
//! In deploy it asks `valid_cells` for a card, places it on one of the
//! cells, and after [`DEPLOY_CARDS`] cards says `ready`; in the battle it
//! places one more card whenever the placement cooldown allows.

use std::time::{Duration, Instant};

/// Cards a bot places during deploy.
pub const DEPLOY_CARDS: usize = 4;
/// A little more than the battle placement cooldown (30 ticks of 100 ms).
pub const BATTLE_PLACE_EVERY: Duration = Duration::from_millis(3100);

/// What the bot wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ask { card: u32 },
    Place { card: u32, x: i32, y: i32 },
    Ready,
}

/// xorshift64: plenty for picking cards, cells and jitter in a load test.
#[derive(Debug, Default, Clone, Copy)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for client number `n` (any seed; never stuck at 0).
    pub fn new(n: u64) -> Self {
        Self((0x9e37_79b9_7f4a_7c15 ^ n.wrapping_mul(0x2545_f491_4f6c_dd1d)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[derive(Debug, Default)]
pub struct TacticsBot {
    hand: Vec<u32>,
    battle: bool,
    ready_sent: bool,
    placed: usize,
    /// The card whose `valid_cells` is being asked.
    asking: Option<u32>,
    /// The card being placed.
    placing: Option<u32>,
    next_battle_place: Option<Instant>,
    rng: XorShift,
}

impl TacticsBot {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: XorShift::new(seed),
            ..Self::default()
        }
    }

    fn random(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// A new match: forget the last one.
    pub fn joined(&mut self, hand: Vec<u32>) {
        *self = Self {
            hand,
            rng: self.rng,
            ..Self::default()
        };
    }

    pub fn in_battle(&self) -> bool {
        self.battle
    }

    pub fn phase(&mut self, phase: &str, now: Instant) {
        self.battle = phase == "battle";
        if self.battle {
            self.next_battle_place = Some(now);
        }
    }

    /// The bot's next request, unless it waits for an answer or has nothing to do.
    pub fn next(&mut self, now: Instant) -> Option<Step> {
        if self.asking.is_some() || self.placing.is_some() || self.hand.is_empty() && self.battle {
            return None;
        }
        let wants_card = if self.battle {
            self.next_battle_place.is_some_and(|t| now >= t)
        } else {
            self.placed < DEPLOY_CARDS && !self.hand.is_empty()
        };
        if wants_card {
            let pick = self.random(self.hand.len());
            let card = self.hand[pick];
            self.asking = Some(card);
            return Some(Step::Ask { card });
        }
        if !self.battle && !self.ready_sent {
            self.ready_sent = true;
            return Some(Step::Ready);
        }
        None
    }

    /// The `valid_cells` answer: a placement, or `None` when the card fits
    /// nowhere now (it is dropped from the plan; call [`Self::next`]).
    pub fn cells(&mut self, cells: &[[i32; 2]]) -> Option<Step> {
        let card = self.asking.take()?;
        if cells.is_empty() {
            self.hand.retain(|&c| c != card);
            return None;
        }
        let pick = self.random(cells.len());
        let [x, y] = cells[pick];
        self.placing = Some(card);
        Some(Step::Place { card, x, y })
    }

    /// The bot's own `placed` event.
    pub fn placed(&mut self, card: u32, now: Instant) {
        self.hand.retain(|&c| c != card);
        self.placed += 1;
        self.placing = None;
        if self.battle {
            self.next_battle_place = Some(now + BATTLE_PLACE_EVERY);
        }
    }

    /// Its ask or placement was refused (or could not be sent).
    pub fn rejected(&mut self, now: Instant) {
        self.asking = None;
        if let Some(card) = self.placing.take() {
            self.hand.retain(|&c| c != card);
        }
        if self.battle {
            self.next_battle_place = Some(now + BATTLE_PLACE_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploys_then_readies_then_places_on_cooldown() {
        let t0 = Instant::now();
        let mut bot = TacticsBot::new(7);
        bot.joined(vec![1, 2, 3, 4, 5, 6]);
        for _ in 0..DEPLOY_CARDS {
            let Some(Step::Ask { card }) = bot.next(t0) else {
                panic!("expected an ask");
            };
            assert_eq!(bot.next(t0), None, "waits for the answer");
            let Some(Step::Place { card: placed, .. }) = bot.cells(&[[0, 0], [1, 0]]) else {
                panic!("expected a placement");
            };
            assert_eq!(placed, card);
            bot.placed(card, t0);
        }
        assert_eq!(bot.next(t0), Some(Step::Ready));
        assert_eq!(bot.next(t0), None);
        bot.phase("battle", t0);
        let Some(Step::Ask { card }) = bot.next(t0) else {
            panic!("battle placement");
        };
        assert_eq!(bot.cells(&[]), None, "no cell: card dropped");
        bot.rejected(t0);
        assert_eq!(bot.next(t0), None, "cooldown");
        assert!(matches!(
            bot.next(t0 + BATTLE_PLACE_EVERY),
            Some(Step::Ask { card: c }) if c != card
        ));
    }
}
