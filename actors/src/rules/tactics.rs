//! `tactics`: two seats deploy cards on their own 5x3 side, then the units
//! fight on their own, one step per tick (100 ms), until a base falls, a
//! player concedes or leaves, or the battle time runs out.
//!
//! Coordinates are always the owner's: x in 0..5, y in 0..3, y = 0 is the
//! front row (facing the enemy), y = 2 the back row. Column x of one side
//! faces column x of the other; between an attacker at (x, y) and an enemy
//! at (x', y') the depth is `y + 1 + y'` and the column offset `x' - x`.
//!
//! Phases: `waiting` (until both seats joined) -> `deploy` (until both are
//! ready or `deploy_ticks` ran out) -> `battle` -> `ended`.
//!
//! All randomness (the hands) comes from the seed given to
//! [`Ruleset::new_game`]; everything else is a function of the actions and
//! ticks, so a game can be replayed exactly.

use bincode::{Decode, Encode};

use super::{
    decode_snapshot, encode_snapshot, unknown_action, unknown_query, Game, Outcome, Rejection,
    Ruleset,
};
use matchd_protocol::{
    Action, CardView, Event, MatchResult, Query, Reply, Seat, SeatView, State, TacticsView,
    UnitView,
};

/// Columns of each side.
pub const WIDTH: i32 = 5;
/// Rows of each side; row 0 is the front.
pub const HEIGHT: i32 = 3;
/// Seats of a match.
pub const SEATS: u8 = 2;
/// Cards dealt to each seat.
pub const HAND_SIZE: usize = 8;

/// The limits of a match. Tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct TacticsConfig {
    /// Hit points of each base at the start.
    pub base_hp: i32,
    /// Length of the deploy phase; the battle starts when it runs out.
    pub deploy_ticks: u32,
    /// Length of the battle; the match ends on `time_limit` when it runs out.
    pub battle_ticks: u32,
    /// During the battle a seat places at most one card per this many ticks.
    pub battle_place_cooldown_ticks: u32,
}

impl Default for TacticsConfig {
    fn default() -> Self {
        Self {
            base_hp: 20,
            deploy_ticks: 300,
            battle_ticks: 1200,
            battle_place_cooldown_ticks: 30,
        }
    }
}

/// The `tactics` ruleset.
#[derive(Debug, Clone, Default)]
pub struct Tactics {
    pub config: TacticsConfig,
}

impl Ruleset for Tactics {
    fn name(&self) -> &'static str {
        "tactics"
    }

    fn max_seats(&self) -> u8 {
        SEATS
    }

    fn tick_ms(&self) -> Option<u64> {
        Some(100)
    }

    fn new_game(&self, seed: u64) -> Box<dyn Game> {
        Box::new(TacticsGame::new(self.config, seed))
    }

    fn restore(&self, bytes: &[u8]) -> Option<Box<dyn Game>> {
        let game: TacticsGame = decode_snapshot(bytes)?;
        Some(Box::new(game))
    }
}

/// The kind of unit a card deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum UnitKind {
    Guard,
    Archer,
    Lancer,
    Mage,
    Wall,
}

impl UnitKind {
    pub const ALL: [UnitKind; 5] = [
        UnitKind::Guard,
        UnitKind::Archer,
        UnitKind::Lancer,
        UnitKind::Mage,
        UnitKind::Wall,
    ];

    /// Name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Guard => "guard",
            UnitKind::Archer => "archer",
            UnitKind::Lancer => "lancer",
            UnitKind::Mage => "mage",
            UnitKind::Wall => "wall",
        }
    }

    /// Hit points when placed.
    pub fn hp(self) -> i32 {
        match self {
            UnitKind::Guard => 14,
            UnitKind::Archer => 6,
            UnitKind::Lancer => 9,
            UnitKind::Mage => 5,
            UnitKind::Wall => 20,
        }
    }

    /// Damage per attack (0: never attacks).
    pub fn damage(self) -> i32 {
        match self {
            UnitKind::Guard => 3,
            UnitKind::Archer => 2,
            UnitKind::Lancer => 4,
            UnitKind::Mage => 5,
            UnitKind::Wall => 0,
        }
    }

    /// Ticks between two attacks.
    pub fn cooldown(self) -> u32 {
        match self {
            UnitKind::Guard => 8,
            UnitKind::Archer => 6,
            UnitKind::Lancer => 10,
            UnitKind::Mage => 15,
            UnitKind::Wall => 0,
        }
    }

    pub fn attacks(self) -> bool {
        self != UnitKind::Wall
    }

    /// Whether an enemy at column offset `offset` and depth `depth` is in range.
    pub fn in_range(self, offset: i32, depth: i32) -> bool {
        match self {
            UnitKind::Guard => offset == 0 && depth <= 2,
            UnitKind::Archer => offset.abs() <= 1,
            UnitKind::Lancer => offset == 0 && depth <= 3,
            UnitKind::Mage => offset.abs() == 1,
            UnitKind::Wall => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
enum Phase {
    Waiting,
    Deploy,
    Battle,
    Ended,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Deploy => "deploy",
            Phase::Battle => "battle",
            Phase::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
struct Card {
    id: u32,
    kind: UnitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
struct Unit {
    id: u32,
    /// Owner, 0 or 1.
    seat: usize,
    kind: UnitKind,
    x: i32,
    y: i32,
    hp: i32,
    /// First battle tick on which it may attack again.
    next_attack: u32,
}

/// splitmix64: tiny, seedable, good enough to deal cards.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        let n = n as u128;
        ((u128::from(self.next_u64()) * n) >> 64) as usize
    }
}

/// One hand: one of each fighting type, four random ones, shuffled.
fn deal(rng: &mut SplitMix64) -> Vec<UnitKind> {
    let mut kinds = vec![
        UnitKind::Guard,
        UnitKind::Archer,
        UnitKind::Lancer,
        UnitKind::Mage,
    ];
    while kinds.len() < HAND_SIZE {
        let pick = rng.below(UnitKind::ALL.len());
        kinds.push(UnitKind::ALL.get(pick).copied().unwrap_or(UnitKind::Wall));
    }
    for i in (1..kinds.len()).rev() {
        let j = rng.below(i + 1);
        kinds.swap(i, j);
    }
    kinds
}

/// `seat` as an index into the per-seat arrays, if it is a seat of this game.
fn seat_index(seat: Seat) -> Option<usize> {
    (seat < SEATS).then_some(usize::from(seat))
}

fn seat_of(index: usize) -> Seat {
    if index == 0 {
        0
    } else {
        1
    }
}

fn wrong_phase(message: impl Into<String>) -> Rejection {
    Rejection::new("wrong_phase", message)
}

/// The state of one `tactics` match.
#[derive(Debug, Clone, Encode, Decode)]
pub struct TacticsGame {
    config: TacticsConfig,
    phase: Phase,
    /// Ticks played in the current phase.
    phase_tick: u32,
    joined: [bool; 2],
    ready: [bool; 2],
    hands: [Vec<Card>; 2],
    /// Living units, in unit-id order.
    units: Vec<Unit>,
    bases: [i32; 2],
    next_unit_id: u32,
    /// Battle tick of each seat's last placement during the battle.
    last_battle_place: [Option<u32>; 2],
    version: u64,
    /// Per seat: grows when that seat's hand or units, or the phase,
    /// change: all that its `valid_cells` answers and hot queries read (a
    /// seat's placement rules look at its own side only).
    board_version: [u64; 2],
}

impl TacticsGame {
    pub fn new(config: TacticsConfig, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let mut hands: [Vec<Card>; 2] = [Vec::new(), Vec::new()];
        let mut id = 1u32;
        for hand in &mut hands {
            for kind in deal(&mut rng) {
                hand.push(Card { id, kind });
                id += 1;
            }
        }
        Self {
            config,
            phase: Phase::Waiting,
            phase_tick: 0,
            joined: [false; 2],
            ready: [false; 2],
            hands,
            units: Vec::new(),
            bases: [config.base_hp; 2],
            next_unit_id: 1,
            last_battle_place: [None; 2],
            version: 0,
            board_version: [0; 2],
        }
    }

    fn bump_both(&mut self) {
        for v in &mut self.board_version {
            *v += 1;
        }
    }

    fn seated(seat: Seat) -> Result<usize, Rejection> {
        seat_index(seat).ok_or_else(|| {
            Rejection::new("not_seated", format!("seat {seat} does not play tactics"))
        })
    }

    fn hand(&self, me: usize) -> &[Card] {
        self.hands.get(me).map_or(&[], Vec::as_slice)
    }

    fn find_card(&self, me: usize, card: u32) -> Result<(usize, UnitKind), Rejection> {
        self.hand(me)
            .iter()
            .enumerate()
            .find(|(_, c)| c.id == card)
            .map(|(slot, c)| (slot, c.kind))
            .ok_or_else(|| {
                Rejection::new("unknown_card", format!("card {card} is not in your hand"))
            })
    }

    fn own_unit_at(&self, me: usize, x: i32, y: i32) -> bool {
        self.units
            .iter()
            .any(|u| u.seat == me && u.x == x && u.y == y)
    }

    /// Board, occupancy and placement-rule checks of a placement.
    fn check_cell(&self, me: usize, kind: UnitKind, x: i32, y: i32) -> Result<(), Rejection> {
        if !(0..WIDTH).contains(&x) || !(0..HEIGHT).contains(&y) {
            return Err(Rejection::new(
                "out_of_board",
                format!("({x}, {y}) is outside your {WIDTH}x{HEIGHT} side"),
            ));
        }
        if self.own_unit_at(me, x, y) {
            return Err(Rejection::new(
                "cell_occupied",
                format!("({x}, {y}) already holds one of your units"),
            ));
        }
        let allowed = match kind {
            UnitKind::Guard => y == 0,
            UnitKind::Archer => y == HEIGHT - 1,
            UnitKind::Mage => y == 1,
            UnitKind::Lancer => self
                .units
                .iter()
                .any(|u| u.seat == me && (u.x - x).abs() + (u.y - y).abs() == 1),
            UnitKind::Wall => !self
                .units
                .iter()
                .any(|u| u.seat == me && u.kind == UnitKind::Wall && u.x == x),
        };
        if allowed {
            return Ok(());
        }
        let rule = match kind {
            UnitKind::Guard => "guard: front row only",
            UnitKind::Archer => "archer: back row only",
            UnitKind::Mage => "mage: middle row only",
            UnitKind::Lancer => "lancer: must touch an ally",
            UnitKind::Wall => "wall: one wall per column",
        };
        Err(Rejection::new("placement_rule", rule))
    }

    fn place(&mut self, seat: Seat, card: u32, x: i32, y: i32) -> Result<Outcome, Rejection> {
        if !matches!(self.phase, Phase::Deploy | Phase::Battle) {
            return Err(wrong_phase(format!(
                "cards are placed in deploy or battle, not in {}",
                self.phase.name()
            )));
        }
        let me = Self::seated(seat)?;
        if self.phase == Phase::Deploy && self.ready.get(me).copied().unwrap_or(false) {
            return Err(Rejection::new(
                "already_ready",
                "you are ready: no more placements until the battle starts",
            ));
        }
        let (slot, kind) = self.find_card(me, card)?;
        self.check_cell(me, kind, x, y)?;
        if self.phase == Phase::Battle {
            if let Some(last) = self.last_battle_place.get(me).copied().flatten() {
                let allowed_at = last.saturating_add(self.config.battle_place_cooldown_ticks);
                if self.phase_tick < allowed_at {
                    let left = allowed_at - self.phase_tick;
                    return Err(Rejection::new(
                        "cooldown",
                        format!("next placement possible in {left} ticks"),
                    ));
                }
            }
        }

        if let Some(hand) = self.hands.get_mut(me) {
            if slot < hand.len() {
                hand.remove(slot);
            }
        }
        if self.phase == Phase::Battle {
            if let Some(last) = self.last_battle_place.get_mut(me) {
                *last = Some(self.phase_tick);
            }
        }
        let unit_id = self.next_unit_id;
        self.next_unit_id = self.next_unit_id.saturating_add(1);
        let hp = kind.hp();
        self.units.push(Unit {
            id: unit_id,
            seat: me,
            kind,
            x,
            y,
            hp,
            next_attack: 0,
        });
        self.version += 1;
        self.board_version[me] += 1;
        Ok(Outcome::event(Event::Placed {
            seat,
            card,
            unit: kind.name().into(),
            unit_id,
            x,
            y,
            hp,
        }))
    }

    fn ready(&mut self, seat: Seat) -> Result<Outcome, Rejection> {
        if self.phase != Phase::Deploy {
            return Err(wrong_phase(format!(
                "ready is only possible in deploy, not in {}",
                self.phase.name()
            )));
        }
        let me = Self::seated(seat)?;
        let Some(flag) = self.ready.get_mut(me) else {
            return Err(Rejection::new("not_seated", "no such seat"));
        };
        if *flag {
            return Err(Rejection::new("already_ready", "you are already ready"));
        }
        *flag = true;
        self.version += 1;
        let mut events = vec![Event::PlayerReady { seat }];
        if self.ready.iter().all(|&r| r) {
            events.push(self.start_battle());
        }
        Ok(Outcome {
            events,
            ended: None,
        })
    }

    fn concede(&mut self, seat: Seat) -> Result<Outcome, Rejection> {
        if !matches!(self.phase, Phase::Deploy | Phase::Battle) {
            return Err(wrong_phase(format!(
                "nothing to concede in {}",
                self.phase.name()
            )));
        }
        let me = Self::seated(seat)?;
        Ok(Outcome {
            events: Vec::new(),
            ended: Some(self.finish(Some(1 - me), "concede")),
        })
    }

    fn start_battle(&mut self) -> Event {
        self.phase = Phase::Battle;
        self.phase_tick = 0;
        self.version += 1;
        self.bump_both();
        Event::Phase {
            phase: Phase::Battle.name().into(),
        }
    }

    fn finish(&mut self, winner: Option<usize>, reason: &str) -> MatchResult {
        self.phase = Phase::Ended;
        self.phase_tick = 0;
        self.version += 1;
        self.bump_both();
        MatchResult {
            winner: winner.map(seat_of),
            reason: reason.into(),
            scores: self.bases.iter().map(|&hp| i64::from(hp)).collect(),
        }
    }

    /// The enemy unit `attacker` hits now: smallest depth, then smallest
    /// |column offset|, then smallest unit id.
    fn pick_target(&self, attacker: &Unit) -> Option<u32> {
        self.units
            .iter()
            .filter(|u| u.seat != attacker.seat)
            .filter_map(|u| {
                let depth = attacker.y + 1 + u.y;
                let offset = u.x - attacker.x;
                attacker
                    .kind
                    .in_range(offset, depth)
                    .then_some((depth, offset.abs(), u.id))
            })
            .min()
            .map(|(_, _, id)| id)
    }

    /// Whether the enemy has no living unit in the attacker's column.
    fn lane_open(&self, attacker: &Unit) -> bool {
        !self
            .units
            .iter()
            .any(|u| u.seat != attacker.seat && u.x == attacker.x)
    }

    fn battle_tick(&mut self) -> Outcome {
        self.phase_tick = self.phase_tick.saturating_add(1);
        self.version += 1;
        let now = self.phase_tick;
        let mut events = Vec::new();
        let order: Vec<u32> = self.units.iter().map(|u| u.id).collect();
        for id in order {
            // Skips units destroyed earlier in this tick.
            let Some(attacker) = self.units.iter().find(|u| u.id == id).copied() else {
                continue;
            };
            if !attacker.kind.attacks() || now < attacker.next_attack {
                continue;
            }
            let enemy = 1 - attacker.seat;
            let damage = attacker.kind.damage();
            if let Some(target_id) = self.pick_target(&attacker) {
                let Some(pos) = self.units.iter().position(|u| u.id == target_id) else {
                    continue;
                };
                let Some(target) = self.units.get_mut(pos) else {
                    continue;
                };
                target.hp = (target.hp - damage).max(0);
                let hp = target.hp;
                events.push(Event::Attacked {
                    unit_id: id,
                    target_seat: seat_of(enemy),
                    target_unit: Some(target_id),
                    damage,
                    hp,
                });
                if hp <= 0 {
                    self.units.remove(pos);
                    self.board_version[enemy] += 1;
                    events.push(Event::Destroyed { unit_id: target_id });
                }
            } else if self.lane_open(&attacker) {
                let Some(base) = self.bases.get_mut(enemy) else {
                    continue;
                };
                *base = (*base - damage).max(0);
                events.push(Event::Attacked {
                    unit_id: id,
                    target_seat: seat_of(enemy),
                    target_unit: None,
                    damage,
                    hp: *base,
                });
            } else {
                // Blocked lane and nothing in range: the unit waits, its
                // cooldown stays elapsed.
                continue;
            }
            if let Some(unit) = self.units.iter_mut().find(|u| u.id == id) {
                unit.next_attack = now.saturating_add(attacker.kind.cooldown());
            }
        }

        let ended = match (self.bases[0] <= 0, self.bases[1] <= 0) {
            (true, true) => Some(self.finish(None, "base_destroyed")),
            (true, false) => Some(self.finish(Some(1), "base_destroyed")),
            (false, true) => Some(self.finish(Some(0), "base_destroyed")),
            (false, false) if now >= self.config.battle_ticks => {
                let winner = match self.bases[0].cmp(&self.bases[1]) {
                    std::cmp::Ordering::Greater => Some(0),
                    std::cmp::Ordering::Less => Some(1),
                    std::cmp::Ordering::Equal => None,
                };
                Some(self.finish(winner, "time_limit"))
            }
            (false, false) => None,
        };
        Outcome { events, ended }
    }

    /// Cells of `me`'s side where `kind` passes the board, occupancy and
    /// placement-rule checks, sorted by y then x.
    fn valid_cells(&self, me: usize, kind: UnitKind) -> Vec<[i32; 2]> {
        let mut cells = Vec::new();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                if self.check_cell(me, kind, x, y).is_ok() {
                    cells.push([x, y]);
                }
            }
        }
        cells
    }
}

impl Game for TacticsGame {
    fn seat_joined(&mut self, seat: Seat) -> Outcome {
        let Some(me) = seat_index(seat) else {
            return Outcome::none();
        };
        if self.phase != Phase::Waiting || self.joined[me] {
            return Outcome::none();
        }
        self.joined[me] = true;
        self.version += 1;
        if self.joined.iter().all(|&j| j) {
            self.phase = Phase::Deploy;
            self.phase_tick = 0;
            self.bump_both();
            return Outcome::event(Event::Phase {
                phase: Phase::Deploy.name().into(),
            });
        }
        Outcome::none()
    }

    fn seat_left(&mut self, seat: Seat) -> Outcome {
        let Some(me) = seat_index(seat) else {
            return Outcome::none();
        };
        match self.phase {
            Phase::Waiting => {
                // The engine frees the seat; whoever takes it next joins anew.
                if self.joined[me] {
                    self.joined[me] = false;
                    self.version += 1;
                }
                Outcome::none()
            }
            Phase::Deploy | Phase::Battle => Outcome {
                events: Vec::new(),
                ended: Some(self.finish(Some(1 - me), "forfeit")),
            },
            Phase::Ended => Outcome::none(),
        }
    }

    fn accepts_players(&self) -> bool {
        self.phase == Phase::Waiting
    }

    fn apply(&mut self, seat: Seat, action: &Action) -> Result<Outcome, Rejection> {
        if self.phase == Phase::Ended {
            return Err(wrong_phase("the match has ended"));
        }
        match action {
            &Action::Place { card, x, y } => self.place(seat, card, x, y),
            Action::Ready => self.ready(seat),
            Action::Concede => self.concede(seat),
            other => Err(unknown_action("tactics", other)),
        }
    }

    fn tick(&mut self) -> Outcome {
        match self.phase {
            Phase::Deploy => {
                self.phase_tick = self.phase_tick.saturating_add(1);
                self.version += 1;
                if self.phase_tick >= self.config.deploy_ticks {
                    Outcome::event(self.start_battle())
                } else {
                    Outcome::none()
                }
            }
            Phase::Battle => self.battle_tick(),
            Phase::Waiting | Phase::Ended => Outcome::none(),
        }
    }

    fn wants_tick(&self) -> bool {
        matches!(self.phase, Phase::Deploy | Phase::Battle)
    }

    fn query(&self, seat: Seat, query: &Query) -> Result<Reply, Rejection> {
        match query {
            &Query::ValidCells { card } => {
                let me = seat_index(seat).ok_or_else(|| {
                    Rejection::new("unknown_card", format!("card {card} is not in your hand"))
                })?;
                let (_, kind) = self.find_card(me, card)?;
                Ok(Reply::Cells {
                    cells: self.valid_cells(me, kind),
                })
            }
            Query::State => Ok(Reply::State {
                state: self.view(Some(seat), Vec::new()),
            }),
            #[allow(unreachable_patterns)]
            other => Err(unknown_query("tactics", other)),
        }
    }

    fn version(&self) -> u64 {
        self.version
    }

    fn cache_query(&self, seat: Seat, query: &Query) -> Option<Query> {
        let &Query::ValidCells { card } = query else {
            return None;
        };
        let hand = self.hand(seat_index(seat)?);
        let kind = hand.iter().find(|c| c.id == card)?.kind;
        // The answer depends on the kind only: one key per kind in the hand.
        let first = hand.iter().find(|c| c.kind == kind)?.id;
        Some(Query::ValidCells { card: first })
    }

    fn query_version(&self, seat: Seat) -> u64 {
        seat_index(seat).map_or(0, |me| self.board_version[me])
    }

    fn hot_queries(&self, seat: Seat) -> Vec<Query> {
        let Some(me) = seat_index(seat) else {
            return Vec::new();
        };
        if !matches!(self.phase, Phase::Deploy | Phase::Battle) {
            return Vec::new();
        }
        let hand = self.hand(me);
        hand.iter()
            .enumerate()
            .filter(|(i, c)| !hand[..*i].iter().any(|d| d.kind == c.kind))
            .map(|(_, c)| Query::ValidCells { card: c.id })
            .collect()
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        encode_snapshot(self)
    }

    fn view(&self, seat: Option<Seat>, seats: Vec<SeatView>) -> State {
        let me = seat.and_then(seat_index);
        let hand = me
            .map(|i| {
                self.hand(i)
                    .iter()
                    .map(|c| CardView {
                        card: c.id,
                        unit: c.kind.name().into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let opponent_hand_size = me
            .map(|i| u32::try_from(self.hand(1 - i).len()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        let units = self
            .units
            .iter()
            .map(|u| UnitView {
                unit_id: u.id,
                seat: seat_of(u.seat),
                unit: u.kind.name().into(),
                x: u.x,
                y: u.y,
                hp: u.hp,
            })
            .collect();
        State::Tactics(TacticsView {
            phase: self.phase.name().into(),
            tick: self.phase_tick,
            you: seat,
            hand,
            opponent_hand_size,
            units,
            bases: self.bases,
            ready: self.ready,
            seats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::UnitKind::{Archer, Guard, Lancer, Mage, Wall};
    use super::*;

    fn phase(phase: &str) -> Event {
        Event::Phase {
            phase: phase.into(),
        }
    }

    /// A game in deploy: both seats joined.
    fn deploy_with(config: TacticsConfig, seed: u64) -> TacticsGame {
        let mut g = TacticsGame::new(config, seed);
        assert_eq!(g.seat_joined(0), Outcome::none());
        assert_eq!(g.seat_joined(1), Outcome::event(phase("deploy")));
        g
    }

    fn deploy() -> TacticsGame {
        deploy_with(TacticsConfig::default(), 7)
    }

    #[test]
    fn a_restored_snapshot_plays_on_exactly_like_the_original() {
        let mut g = deploy();
        place(&mut g, 0, Guard, 1, 0).1.expect("placed");
        place(&mut g, 1, Archer, 2, 2).1.expect("placed");
        start_battle(&mut g);
        for _ in 0..3 {
            g.tick();
        }
        let bytes = g.snapshot().expect("tactics snapshots");
        let mut restored = Tactics::default().restore(&bytes).expect("restores");
        assert_eq!(restored.version(), g.version());
        for seat in [Some(0), Some(1), None] {
            assert_eq!(restored.view(seat, Vec::new()), g.view(seat, Vec::new()));
        }
        // Same inputs, same outputs: failover replays inputs on a snapshot.
        for _ in 0..40 {
            assert_eq!(restored.tick(), g.tick());
        }
        assert_eq!(restored.snapshot(), g.snapshot());
        assert!(Tactics::default()
            .restore(&bytes[..bytes.len() - 1])
            .is_none());
        assert!(Tactics::default().restore(b"not a snapshot").is_none());
    }

    /// Both seats ready: the battle starts.
    fn start_battle(g: &mut TacticsGame) {
        check(
            g,
            0,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 0 }]),
        );
        check(
            g,
            1,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 1 }, phase("battle")]),
        );
        assert_eq!(g.phase, Phase::Battle);
    }

    /// Puts a card of `kind` in `seat`'s hand and returns its id.
    fn give(g: &mut TacticsGame, seat: usize, kind: UnitKind) -> u32 {
        let id = g
            .hands
            .iter()
            .flatten()
            .map(|c| c.id)
            .max()
            .unwrap_or(0)
            .max(100)
            + 1;
        g.hands[seat].push(Card { id, kind });
        id
    }

    /// Gives `seat` a card of `kind` and tries to place it.
    fn place(
        g: &mut TacticsGame,
        seat: Seat,
        kind: UnitKind,
        x: i32,
        y: i32,
    ) -> (u32, Result<Outcome, Rejection>) {
        let card = give(g, usize::from(seat), kind);
        (card, g.apply(seat, &Action::Place { card, x, y }))
    }

    /// Puts a unit on the board without any rule check; returns its id.
    fn spawn(g: &mut TacticsGame, seat: usize, kind: UnitKind, x: i32, y: i32) -> u32 {
        let id = g.next_unit_id;
        g.next_unit_id += 1;
        g.units.push(Unit {
            id,
            seat,
            kind,
            x,
            y,
            hp: kind.hp(),
            next_attack: 0,
        });
        id
    }

    fn check(
        g: &mut TacticsGame,
        seat: Seat,
        action: Action,
        expected: Result<Vec<Event>, &str>,
    ) -> Option<MatchResult> {
        let got = g.apply(seat, &action);
        match (got, expected) {
            (Ok(out), Ok(events)) => {
                assert_eq!(out.events, events, "{action:?}");
                out.ended
            }
            (Err(r), Err(code)) => {
                assert_eq!(r.code, code, "{action:?}: {}", r.message);
                None
            }
            (got, exp) => panic!("seat {seat} {action:?}: got {got:?}, expected {exp:?}"),
        }
    }

    fn tactics_view(g: &TacticsGame, seat: Option<Seat>) -> TacticsView {
        match g.view(seat, Vec::new()) {
            State::Tactics(v) => v,
            other => panic!("not a tactics view: {other:?}"),
        }
    }

    fn result(winner: Option<Seat>, reason: &str, scores: [i64; 2]) -> Option<MatchResult> {
        Some(MatchResult {
            winner,
            reason: reason.into(),
            scores: scores.to_vec(),
        })
    }

    fn hit_unit(unit_id: u32, target_seat: Seat, target: u32, damage: i32, hp: i32) -> Event {
        Event::Attacked {
            unit_id,
            target_seat,
            target_unit: Some(target),
            damage,
            hp,
        }
    }

    fn hit_base(unit_id: u32, target_seat: Seat, damage: i32, hp: i32) -> Event {
        Event::Attacked {
            unit_id,
            target_seat,
            target_unit: None,
            damage,
            hp,
        }
    }

    #[test]
    fn ruleset_basics() {
        let r = Tactics::default();
        assert_eq!(r.name(), "tactics");
        assert_eq!(r.max_seats(), 2);
        assert_eq!(r.tick_ms(), Some(100));
        assert_eq!(r.config, TacticsConfig::default());
        assert_eq!(r.config.base_hp, 20);
        assert_eq!(r.config.deploy_ticks, 300);
        assert_eq!(r.config.battle_ticks, 1200);
        assert_eq!(r.config.battle_place_cooldown_ticks, 30);
        let boxed = r.new_game(5);
        let concrete = TacticsGame::new(TacticsConfig::default(), 5);
        assert_eq!(
            boxed.view(Some(0), Vec::new()),
            concrete.view(Some(0), Vec::new())
        );
        assert!(boxed.accepts_players());
        assert!(!boxed.wants_tick());
    }

    #[test]
    fn unit_stats_and_ranges() {
        // kind, name, hp, damage, cooldown
        let stats = [
            (Guard, "guard", 14, 3, 8),
            (Archer, "archer", 6, 2, 6),
            (Lancer, "lancer", 9, 4, 10),
            (Mage, "mage", 5, 5, 15),
            (Wall, "wall", 20, 0, 0),
        ];
        for (kind, name, hp, damage, cooldown) in stats {
            assert_eq!(
                (kind.name(), kind.hp(), kind.damage(), kind.cooldown()),
                (name, hp, damage, cooldown)
            );
        }
        // kind, offset, depth, in range
        let ranges = [
            (Guard, 0, 1, true),
            (Guard, 0, 2, true),
            (Guard, 0, 3, false),
            (Guard, 1, 1, false),
            (Archer, 0, 5, true),
            (Archer, -1, 5, true),
            (Archer, 1, 1, true),
            (Archer, 2, 1, false),
            (Lancer, 0, 3, true),
            (Lancer, 0, 4, false),
            (Lancer, -1, 1, false),
            (Mage, 0, 1, false),
            (Mage, 1, 5, true),
            (Mage, -1, 2, true),
            (Mage, 2, 2, false),
            (Wall, 0, 1, false),
        ];
        for (kind, offset, depth, expected) in ranges {
            assert_eq!(
                kind.in_range(offset, depth),
                expected,
                "{kind:?} offset {offset} depth {depth}"
            );
        }
    }

    /// Units put on the board before a case: (seat, kind, x, y).
    type Units = &'static [(usize, UnitKind, i32, i32)];

    #[test]
    fn placement_rules() {
        type Case = (Units, UnitKind, i32, i32, Result<(), &'static str>);
        // units already on the board, then seat 0 places kind at (x, y)
        let cases: &[Case] = &[
            (&[], Guard, 2, 0, Ok(())),
            (&[], Guard, 2, 1, Err("placement_rule")),
            (&[], Guard, 2, 2, Err("placement_rule")),
            (&[], Archer, 0, 2, Ok(())),
            (&[], Archer, 0, 1, Err("placement_rule")),
            (&[], Archer, 0, 0, Err("placement_rule")),
            (&[], Mage, 4, 1, Ok(())),
            (&[], Mage, 4, 0, Err("placement_rule")),
            (&[], Mage, 4, 2, Err("placement_rule")),
            (&[], Lancer, 1, 1, Err("placement_rule")),
            (&[(0, Guard, 1, 0)], Lancer, 1, 1, Ok(())),
            (&[(0, Guard, 1, 0)], Lancer, 2, 0, Ok(())),
            (&[(0, Guard, 1, 0)], Lancer, 0, 0, Ok(())),
            (&[(0, Archer, 1, 2)], Lancer, 1, 1, Ok(())),
            (&[(0, Wall, 3, 1)], Lancer, 3, 0, Ok(())),
            (&[(0, Guard, 1, 0)], Lancer, 2, 1, Err("placement_rule")),
            (&[(0, Guard, 1, 0)], Lancer, 3, 0, Err("placement_rule")),
            (&[(0, Guard, 1, 0)], Lancer, 1, 2, Err("placement_rule")),
            (&[(1, Guard, 1, 0)], Lancer, 1, 1, Err("placement_rule")),
            (&[(1, Guard, 1, 0)], Lancer, 2, 0, Err("placement_rule")),
            (&[], Wall, 0, 0, Ok(())),
            (&[], Wall, 3, 1, Ok(())),
            (&[], Wall, 4, 2, Ok(())),
            (&[(0, Wall, 2, 0)], Wall, 2, 2, Err("placement_rule")),
            (&[(0, Wall, 2, 0)], Wall, 3, 2, Ok(())),
            (&[(0, Guard, 2, 0)], Wall, 2, 1, Ok(())),
            (&[(1, Wall, 2, 0)], Wall, 2, 1, Ok(())),
            (&[(1, Guard, 2, 0)], Guard, 2, 0, Ok(())),
            (&[(0, Guard, 2, 0)], Guard, 2, 0, Err("cell_occupied")),
            (&[(0, Archer, 1, 2)], Guard, 1, 2, Err("cell_occupied")),
            (&[(0, Wall, 1, 1)], Wall, 1, 1, Err("cell_occupied")),
            (&[], Guard, 5, 0, Err("out_of_board")),
            (&[], Guard, -1, 0, Err("out_of_board")),
            (&[], Guard, 0, -1, Err("out_of_board")),
            (&[], Archer, 0, 3, Err("out_of_board")),
            (&[], Wall, i32::MAX, i32::MIN, Err("out_of_board")),
            (&[], Mage, 0, 5, Err("out_of_board")),
        ];
        for &(setup, kind, x, y, expected) in cases {
            let mut g = deploy();
            for &(seat, kind, x, y) in setup {
                spawn(&mut g, seat, kind, x, y);
            }
            let unit_id = g.next_unit_id;
            let hand_before = g.hands[0].len();
            let (card, got) = place(&mut g, 0, kind, x, y);
            let case = format!("{setup:?} then {kind:?} at ({x}, {y})");
            match (got, expected) {
                (Ok(out), Ok(())) => {
                    let placed = Event::Placed {
                        seat: 0,
                        card,
                        unit: kind.name().into(),
                        unit_id,
                        x,
                        y,
                        hp: kind.hp(),
                    };
                    assert_eq!(out, Outcome::event(placed), "{case}");
                    assert_eq!(g.hands[0].len(), hand_before, "{case}: card left the hand");
                    assert!(!g.hands[0].iter().any(|c| c.id == card), "{case}");
                }
                (Err(r), Err(code)) => {
                    assert_eq!(r.code, code, "{case}: {}", r.message);
                    if code == "placement_rule" {
                        assert!(r.message.starts_with(kind.name()), "{case}: {}", r.message);
                    }
                    assert_eq!(g.hands[0].len(), hand_before + 1, "{case}: card kept");
                }
                (got, exp) => panic!("{case}: got {got:?}, expected {exp:?}"),
            }
        }
    }

    #[test]
    fn placement_rule_messages() {
        let cases = [
            (Guard, 0, 1, "guard: front row only"),
            (Archer, 0, 0, "archer: back row only"),
            (Mage, 0, 0, "mage: middle row only"),
            (Lancer, 0, 0, "lancer: must touch an ally"),
        ];
        for (kind, x, y, message) in cases {
            let mut g = deploy();
            let (_, got) = place(&mut g, 0, kind, x, y);
            assert_eq!(got, Err(Rejection::new("placement_rule", message)));
        }
        let mut g = deploy();
        spawn(&mut g, 0, Wall, 0, 0);
        let (_, got) = place(&mut g, 0, Wall, 0, 1);
        assert_eq!(
            got,
            Err(Rejection::new(
                "placement_rule",
                "wall: one wall per column"
            ))
        );
    }

    #[test]
    fn rejection_codes() {
        let mut g = TacticsGame::new(TacticsConfig::default(), 3);
        // waiting
        check(
            &mut g,
            0,
            Action::Place {
                card: 1,
                x: 0,
                y: 0,
            },
            Err("wrong_phase"),
        );
        check(&mut g, 0, Action::Ready, Err("wrong_phase"));
        check(&mut g, 0, Action::Concede, Err("wrong_phase"));
        check(
            &mut g,
            0,
            Action::Mark { x: 0, y: 0 },
            Err("unknown_action"),
        );
        g.seat_joined(0);
        g.seat_joined(1);

        // deploy: cards that are not in the hand
        check(
            &mut g,
            0,
            Action::Mark { x: 0, y: 0 },
            Err("unknown_action"),
        );
        for card in [0, 9, 16, 17, u32::MAX] {
            check(
                &mut g,
                0,
                Action::Place { card, x: 0, y: 0 },
                Err("unknown_card"),
            );
        }
        check(
            &mut g,
            1,
            Action::Place {
                card: 1,
                x: 0,
                y: 0,
            },
            Err("unknown_card"),
        );
        check(
            &mut g,
            1,
            Action::Place {
                card: 8,
                x: 0,
                y: 0,
            },
            Err("unknown_card"),
        );
        // order: unknown_card before out_of_board
        check(
            &mut g,
            0,
            Action::Place {
                card: 9,
                x: 9,
                y: 9,
            },
            Err("unknown_card"),
        );
        // out_of_board before cell_occupied before placement_rule
        let guard = give(&mut g, 0, Guard);
        check(
            &mut g,
            0,
            Action::Place {
                card: guard,
                x: 2,
                y: 9,
            },
            Err("out_of_board"),
        );
        spawn(&mut g, 0, Archer, 2, 2);
        check(
            &mut g,
            0,
            Action::Place {
                card: guard,
                x: 2,
                y: 2,
            },
            Err("cell_occupied"),
        );
        check(
            &mut g,
            0,
            Action::Place {
                card: guard,
                x: 2,
                y: 1,
            },
            Err("placement_rule"),
        );
        let placed = g.apply(
            0,
            &Action::Place {
                card: guard,
                x: 2,
                y: 0,
            },
        );
        assert!(placed.is_ok(), "{placed:?}");
        // an already played card
        check(
            &mut g,
            0,
            Action::Place {
                card: guard,
                x: 3,
                y: 0,
            },
            Err("unknown_card"),
        );

        // ready, twice, then no placement
        check(
            &mut g,
            0,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 0 }]),
        );
        check(&mut g, 0, Action::Ready, Err("already_ready"));
        let wall = give(&mut g, 0, Wall);
        check(
            &mut g,
            0,
            Action::Place {
                card: wall,
                x: 0,
                y: 0,
            },
            Err("already_ready"),
        );
        // the other seat still places
        let wall1 = give(&mut g, 1, Wall);
        let placed = g.apply(
            1,
            &Action::Place {
                card: wall1,
                x: 0,
                y: 0,
            },
        );
        assert!(placed.is_ok(), "{placed:?}");

        // battle
        check(
            &mut g,
            1,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 1 }, phase("battle")]),
        );
        check(&mut g, 0, Action::Ready, Err("wrong_phase"));
        check(&mut g, 1, Action::Ready, Err("wrong_phase"));
        check(
            &mut g,
            0,
            Action::Mark { x: 1, y: 1 },
            Err("unknown_action"),
        );
        // after ready a player places again in battle
        let placed = g.apply(
            0,
            &Action::Place {
                card: wall,
                x: 0,
                y: 0,
            },
        );
        assert!(placed.is_ok(), "{placed:?}");
        // placement_rule is checked before the cooldown
        let mage = give(&mut g, 0, Mage);
        check(
            &mut g,
            0,
            Action::Place {
                card: mage,
                x: 1,
                y: 0,
            },
            Err("placement_rule"),
        );
        check(
            &mut g,
            0,
            Action::Place {
                card: mage,
                x: 1,
                y: 1,
            },
            Err("cooldown"),
        );

        // ended
        let ended = check(&mut g, 0, Action::Concede, Ok(vec![]));
        assert_eq!(ended, result(Some(1), "concede", [20, 20]));
        for action in [
            Action::Place {
                card: mage,
                x: 1,
                y: 1,
            },
            Action::Ready,
            Action::Concede,
            Action::Mark { x: 0, y: 0 },
        ] {
            let got = g.apply(0, &action);
            assert_eq!(
                got,
                Err(Rejection::new("wrong_phase", "the match has ended"))
            );
        }
    }

    #[test]
    fn seats_outside_the_game_are_refused_without_panic() {
        let mut g = deploy();
        for seat in [2, 7, Seat::MAX] {
            check(
                &mut g,
                seat,
                Action::Place {
                    card: 1,
                    x: 0,
                    y: 0,
                },
                Err("not_seated"),
            );
            check(&mut g, seat, Action::Ready, Err("not_seated"));
            check(&mut g, seat, Action::Concede, Err("not_seated"));
            assert_eq!(g.seat_joined(seat), Outcome::none());
            assert_eq!(g.seat_left(seat), Outcome::none());
            let q = g.query(seat, &Query::ValidCells { card: 1 });
            assert_eq!(q.map_err(|r| r.code), Err("unknown_card"));
            let view = tactics_view(&g, Some(seat));
            assert!(view.hand.is_empty());
            assert_eq!(view.opponent_hand_size, 0);
        }
        assert_eq!(g.phase, Phase::Deploy);
    }

    #[test]
    fn joining_starts_deploy_and_leaving_in_waiting_frees_the_seat() {
        let mut g = TacticsGame::new(TacticsConfig::default(), 1);
        assert!(g.accepts_players());
        assert!(!g.wants_tick());
        assert_eq!(g.tick(), Outcome::none());
        assert_eq!(g.seat_joined(0), Outcome::none());
        assert_eq!(g.seat_joined(0), Outcome::none());
        assert_eq!(g.seat_left(0), Outcome::none());
        assert_eq!(g.seat_joined(1), Outcome::none());
        assert_eq!(g.phase, Phase::Waiting);
        assert!(g.accepts_players());
        assert_eq!(g.seat_joined(0), Outcome::event(phase("deploy")));
        assert!(!g.accepts_players());
        assert!(g.wants_tick());
        assert_eq!(tactics_view(&g, Some(0)).phase, "deploy");
    }

    #[test]
    fn both_ready_starts_the_battle() {
        let mut g = deploy();
        g.tick();
        g.tick();
        assert_eq!(tactics_view(&g, Some(0)).tick, 2);
        check(
            &mut g,
            1,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 1 }]),
        );
        assert_eq!(tactics_view(&g, Some(0)).ready, [false, true]);
        assert_eq!(g.phase, Phase::Deploy);
        check(
            &mut g,
            0,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 0 }, phase("battle")]),
        );
        let view = tactics_view(&g, Some(0));
        assert_eq!(view.phase, "battle");
        assert_eq!(view.tick, 0);
        assert_eq!(view.ready, [true, true]);
        assert!(g.wants_tick());
        assert!(!g.accepts_players());
    }

    #[test]
    fn deploy_time_limit_starts_the_battle() {
        let config = TacticsConfig {
            deploy_ticks: 3,
            ..TacticsConfig::default()
        };
        let mut g = deploy_with(config, 9);
        check(
            &mut g,
            0,
            Action::Ready,
            Ok(vec![Event::PlayerReady { seat: 0 }]),
        );
        assert_eq!(g.tick(), Outcome::none());
        assert_eq!(g.tick(), Outcome::none());
        assert_eq!(g.phase, Phase::Deploy);
        assert_eq!(g.tick(), Outcome::event(phase("battle")));
        assert_eq!(g.phase, Phase::Battle);
        assert_eq!(tactics_view(&g, None).tick, 0);
        // the seat that was ready may place now; ready is over
        let (_, placed) = place(&mut g, 0, Wall, 0, 0);
        assert!(placed.is_ok(), "{placed:?}");
        check(&mut g, 1, Action::Ready, Err("wrong_phase"));
        // the full default limit
        let mut g = deploy();
        for _ in 1..300 {
            assert_eq!(g.tick(), Outcome::none());
        }
        assert_eq!(g.tick(), Outcome::event(phase("battle")));
    }

    #[test]
    fn battle_placement_cooldown() {
        let mut g = deploy();
        // deploy placements are unlimited
        for x in 0..3 {
            let (_, placed) = place(&mut g, 0, Wall, x, 2);
            assert!(placed.is_ok(), "{placed:?}");
        }
        start_battle(&mut g);
        g.tick();
        let (_, placed) = place(&mut g, 0, Wall, 3, 0);
        assert!(
            placed.is_ok(),
            "the first battle placement is allowed at once"
        );
        let (card, refused) = place(&mut g, 0, Wall, 4, 0);
        let refused = refused.err();
        assert_eq!(refused.as_ref().map(|r| r.code), Some("cooldown"));
        assert!(refused.is_some_and(|r| r.message.contains("30 ticks")));
        // the other seat has its own cooldown
        let (_, placed) = place(&mut g, 1, Wall, 4, 0);
        assert!(placed.is_ok(), "{placed:?}");
        for _ in 0..29 {
            g.tick();
        }
        let refused = g.apply(0, &Action::Place { card, x: 4, y: 0 }).err();
        assert_eq!(refused.as_ref().map(|r| r.code), Some("cooldown"));
        assert!(refused.is_some_and(|r| r.message.contains("1 ticks")));
        g.tick();
        let placed = g.apply(0, &Action::Place { card, x: 4, y: 0 });
        assert!(placed.is_ok(), "{placed:?}");
        let (_, refused) = place(&mut g, 0, Guard, 0, 0);
        assert_eq!(refused.map_err(|r| r.code), Err("cooldown"));
    }

    #[derive(Debug, Clone, Copy)]
    enum Hit {
        /// The enemy unit at this index of the case's list.
        Unit(usize),
        Base,
        Nothing,
    }

    #[test]
    fn targeting() {
        type Enemies = &'static [(UnitKind, i32, i32)];
        // seat 0 attacker (unit 1), seat 1 units (walls never answer), expected first hit
        let cases: &[(UnitKind, i32, i32, Enemies, Hit)] = &[
            // nearest depth first
            (Archer, 2, 2, &[(Wall, 2, 2), (Wall, 1, 1)], Hit::Unit(1)),
            (Archer, 2, 2, &[(Wall, 3, 2), (Wall, 2, 0)], Hit::Unit(1)),
            // same depth: smallest |column offset|
            (Archer, 2, 2, &[(Wall, 1, 1), (Wall, 2, 1)], Hit::Unit(1)),
            (
                Archer,
                2,
                2,
                &[(Wall, 3, 0), (Wall, 2, 0), (Wall, 1, 0)],
                Hit::Unit(1),
            ),
            // same depth and offset: smallest unit id
            (Archer, 2, 2, &[(Wall, 3, 0), (Wall, 1, 0)], Hit::Unit(0)),
            (Archer, 2, 2, &[(Wall, 1, 0), (Wall, 3, 0)], Hit::Unit(0)),
            (Mage, 2, 1, &[(Wall, 3, 1), (Wall, 1, 1)], Hit::Unit(0)),
            // depth beats offset and id
            (Mage, 2, 1, &[(Wall, 1, 2), (Wall, 3, 0)], Hit::Unit(1)),
            // ranges
            (Guard, 2, 0, &[(Wall, 2, 1)], Hit::Unit(0)),
            (Lancer, 0, 0, &[(Wall, 0, 2)], Hit::Unit(0)),
            (Archer, 0, 2, &[(Wall, 1, 2)], Hit::Unit(0)),
            (Archer, 0, 2, &[(Wall, 0, 2), (Wall, 1, 0)], Hit::Unit(1)),
            // out of range, lane blocked: nothing
            (Guard, 2, 0, &[(Wall, 2, 2)], Hit::Nothing),
            (Lancer, 0, 1, &[(Wall, 0, 2)], Hit::Nothing),
            (Mage, 2, 1, &[(Wall, 2, 0)], Hit::Nothing),
            (
                Mage,
                2,
                1,
                &[(Wall, 2, 0), (Wall, 0, 0), (Wall, 4, 0)],
                Hit::Nothing,
            ),
            // out of range, open lane: the base
            (Guard, 2, 0, &[], Hit::Base),
            (Guard, 2, 0, &[(Wall, 1, 0), (Wall, 3, 0)], Hit::Base),
            (Lancer, 1, 2, &[(Wall, 0, 0)], Hit::Base),
            (Archer, 0, 2, &[(Wall, 4, 0)], Hit::Base),
            (Mage, 2, 1, &[], Hit::Base),
            // in range beats an open lane
            (Mage, 2, 1, &[(Wall, 3, 2)], Hit::Unit(0)),
            (Mage, 2, 1, &[(Wall, 2, 0), (Wall, 3, 2)], Hit::Unit(1)),
            // walls never attack
            (Wall, 2, 0, &[], Hit::Nothing),
            (Wall, 2, 0, &[(Wall, 2, 0)], Hit::Nothing),
        ];
        for &(kind, x, y, enemies, expected) in cases {
            let mut g = deploy();
            let attacker = spawn(&mut g, 0, kind, x, y);
            let ids: Vec<u32> = enemies
                .iter()
                .map(|&(k, ex, ey)| spawn(&mut g, 1, k, ex, ey))
                .collect();
            start_battle(&mut g);
            let out = g.tick();
            let damage = kind.damage();
            let events = match expected {
                Hit::Unit(i) => vec![hit_unit(attacker, 1, ids[i], damage, 20 - damage)],
                Hit::Base => vec![hit_base(attacker, 1, damage, 20 - damage)],
                Hit::Nothing => vec![],
            };
            let case = format!("{kind:?} at ({x}, {y}) vs {enemies:?}");
            assert_eq!(out.events, events, "{case}");
            assert_eq!(out.ended, None, "{case}");
        }
    }

    #[test]
    fn attack_cooldowns() {
        // attacker (seat 0), target wall (seat 1), expected attack ticks within 20
        type Case = (UnitKind, i32, i32, i32, i32, &'static [u32]);
        let cases: &[Case] = &[
            (Guard, 2, 0, 2, 0, &[1, 9, 17]),
            (Archer, 2, 2, 1, 2, &[1, 7, 13, 19]),
            (Lancer, 2, 1, 2, 1, &[1, 11]),
            (Mage, 2, 1, 3, 0, &[1, 16]),
        ];
        for &(kind, x, y, tx, ty, expected) in cases {
            let mut g = deploy();
            let attacker = spawn(&mut g, 0, kind, x, y);
            let target = spawn(&mut g, 1, Wall, tx, ty);
            start_battle(&mut g);
            let mut hits = Vec::new();
            let mut hp = 20;
            for t in 1..=20 {
                let out = g.tick();
                if !out.events.is_empty() {
                    hp -= kind.damage();
                    assert_eq!(
                        out.events,
                        vec![hit_unit(attacker, 1, target, kind.damage(), hp)]
                    );
                    hits.push(t);
                }
            }
            assert_eq!(hits, expected, "{kind:?}");
        }
    }

    #[test]
    fn units_placed_in_battle_attack_on_the_next_tick_and_blocked_units_keep_their_turn() {
        let mut g = deploy();
        let wall = spawn(&mut g, 1, Wall, 2, 2);
        let guard = spawn(&mut g, 0, Guard, 2, 0);
        start_battle(&mut g);
        // the guard cannot reach the wall (depth 3) and its lane is blocked
        for _ in 0..5 {
            assert_eq!(g.tick().events, vec![]);
        }
        let (_, placed) = place(&mut g, 0, Archer, 1, 2);
        let archer = match placed {
            Ok(Outcome { events, .. }) => match events.as_slice() {
                [Event::Placed { unit_id, .. }] => *unit_id,
                other => panic!("{other:?}"),
            },
            Err(r) => panic!("{r:?}"),
        };
        assert_eq!(g.tick().events, vec![hit_unit(archer, 1, wall, 2, 18)]);
        // a guard placed in the wall's column later reaches it at once
        let (_, placed) = place(&mut g, 1, Guard, 2, 0);
        let enemy_guard = match placed {
            Ok(Outcome { events, .. }) => match events.as_slice() {
                [Event::Placed { unit_id, .. }] => *unit_id,
                other => panic!("{other:?}"),
            },
            Err(r) => panic!("{r:?}"),
        };
        assert_eq!(
            g.tick().events,
            vec![
                hit_unit(guard, 1, enemy_guard, 3, 11),
                hit_unit(enemy_guard, 0, guard, 3, 11),
            ]
        );
    }

    #[test]
    fn destroyed_units_are_removed_at_once() {
        let mut g = deploy();
        let a1 = spawn(&mut g, 0, Archer, 1, 2);
        let a2 = spawn(&mut g, 0, Archer, 2, 2);
        let wall = spawn(&mut g, 1, Wall, 1, 0);
        g.units[2].hp = 2;
        start_battle(&mut g);
        let out = g.tick();
        assert_eq!(
            out.events,
            vec![
                hit_unit(a1, 1, wall, 2, 0),
                Event::Destroyed { unit_id: wall },
                // the wall is gone: archer 2 sees nothing in range, lane 2 is open
                hit_base(a2, 1, 2, 18),
            ]
        );
        let view = tactics_view(&g, Some(1));
        assert_eq!(
            view.units.iter().map(|u| u.unit_id).collect::<Vec<_>>(),
            vec![a1, a2]
        );
        assert_eq!(view.bases, [20, 18]);
        // the cell and the column are free again for seat 1's walls
        let (_, placed) = place(&mut g, 1, Wall, 1, 0);
        assert!(placed.is_ok(), "{placed:?}");
    }

    #[test]
    fn a_destroyed_base_ends_the_match() {
        let mut g = deploy();
        let guard = spawn(&mut g, 0, Guard, 0, 0);
        g.bases[1] = 3;
        start_battle(&mut g);
        let out = g.tick();
        assert_eq!(out.events, vec![hit_base(guard, 1, 3, 0)]);
        assert_eq!(out.ended, result(Some(0), "base_destroyed", [20, 0]));
        assert!(!g.wants_tick());
        assert_eq!(g.tick(), Outcome::none());
        assert_eq!(tactics_view(&g, None).phase, "ended");
        check(&mut g, 0, Action::Concede, Err("wrong_phase"));
        assert_eq!(g.seat_left(1), Outcome::none());

        // overkill leaves the base at 0
        let mut g = deploy();
        let mage = spawn(&mut g, 1, Mage, 3, 1);
        g.bases[0] = 2;
        start_battle(&mut g);
        let out = g.tick();
        assert_eq!(out.events, vec![hit_base(mage, 0, 5, 0)]);
        assert_eq!(out.ended, result(Some(1), "base_destroyed", [0, 20]));
    }

    #[test]
    fn both_bases_falling_in_one_tick_is_a_draw() {
        let mut g = deploy();
        let g0 = spawn(&mut g, 0, Guard, 0, 0);
        let g1 = spawn(&mut g, 1, Guard, 1, 0);
        g.bases = [3, 3];
        start_battle(&mut g);
        let out = g.tick();
        assert_eq!(
            out.events,
            vec![hit_base(g0, 1, 3, 0), hit_base(g1, 0, 3, 0)]
        );
        assert_eq!(out.ended, result(None, "base_destroyed", [0, 0]));
    }

    #[test]
    fn time_limit() {
        let config = TacticsConfig {
            battle_ticks: 5,
            ..TacticsConfig::default()
        };
        // (units, expected result)
        let cases: &[(Units, Option<MatchResult>)] = &[
            (&[], result(None, "time_limit", [20, 20])),
            (&[(0, Guard, 0, 0)], result(Some(0), "time_limit", [20, 17])),
            (
                &[(1, Lancer, 4, 2)],
                result(Some(1), "time_limit", [16, 20]),
            ),
            (
                &[(0, Guard, 0, 0), (1, Guard, 4, 0)],
                result(None, "time_limit", [17, 17]),
            ),
        ];
        for (units, expected) in cases {
            let mut g = deploy_with(config, 11);
            for &(seat, kind, x, y) in *units {
                spawn(&mut g, seat, kind, x, y);
            }
            start_battle(&mut g);
            for t in 1..5 {
                assert_eq!(g.tick().ended, None, "tick {t}");
            }
            assert_eq!(&g.tick().ended, expected, "{units:?}");
            assert!(!g.wants_tick());
        }
        // the full default limit
        let mut g = deploy();
        start_battle(&mut g);
        for _ in 1..1200 {
            assert_eq!(g.tick(), Outcome::none());
        }
        assert_eq!(g.tick().ended, result(None, "time_limit", [20, 20]));
    }

    #[test]
    fn concede_and_forfeit() {
        // concede in deploy
        let mut g = deploy();
        let ended = check(&mut g, 1, Action::Concede, Ok(vec![]));
        assert_eq!(ended, result(Some(0), "concede", [20, 20]));
        assert!(!g.wants_tick());
        assert!(!g.accepts_players());

        // concede in battle keeps the base scores
        let mut g = deploy();
        spawn(&mut g, 1, Guard, 0, 0);
        start_battle(&mut g);
        g.tick();
        let ended = check(&mut g, 0, Action::Concede, Ok(vec![]));
        assert_eq!(ended, result(Some(1), "concede", [17, 20]));

        // leaving in deploy or battle forfeits
        let mut g = deploy();
        let out = g.seat_left(0);
        assert_eq!(out.events, vec![]);
        assert_eq!(out.ended, result(Some(1), "forfeit", [20, 20]));
        assert_eq!(g.seat_left(1), Outcome::none());

        let mut g = deploy();
        start_battle(&mut g);
        assert_eq!(g.seat_left(1).ended, result(Some(0), "forfeit", [20, 20]));
        check(&mut g, 0, Action::Ready, Err("wrong_phase"));

        // leaving while waiting ends nothing
        let mut g = TacticsGame::new(TacticsConfig::default(), 0);
        g.seat_joined(0);
        assert_eq!(g.seat_left(0), Outcome::none());
        assert_eq!(g.seat_left(1), Outcome::none());
        assert!(g.accepts_players());
    }

    fn hand_kinds(g: &TacticsGame) -> [Vec<UnitKind>; 2] {
        g.hands.clone().map(|h| h.iter().map(|c| c.kind).collect())
    }

    #[test]
    fn hands_are_dealt_from_the_seed() {
        for seed in [0, 1, 42, u64::MAX] {
            let a = TacticsGame::new(TacticsConfig::default(), seed);
            let b = TacticsGame::new(TacticsConfig::default(), seed);
            assert_eq!(a.hands, b.hands, "seed {seed}");
            for (seat, hand) in a.hands.iter().enumerate() {
                let ids: Vec<u32> = hand.iter().map(|c| c.id).collect();
                let first = seat as u32 * 8 + 1;
                assert_eq!(ids, (first..first + 8).collect::<Vec<_>>());
                for kind in [Guard, Archer, Lancer, Mage] {
                    assert!(hand.iter().any(|c| c.kind == kind), "seed {seed}: {hand:?}");
                }
            }
        }
        let mut distinct = std::collections::HashSet::new();
        for seed in 0..100 {
            distinct.insert(hand_kinds(&TacticsGame::new(
                TacticsConfig::default(),
                seed,
            )));
        }
        assert!(
            distinct.len() >= 90,
            "only {} distinct deals",
            distinct.len()
        );
        // the extra cards cover every type over many seeds, walls included
        let walls = (0..100)
            .filter(|&seed| {
                hand_kinds(&TacticsGame::new(TacticsConfig::default(), seed))[0].contains(&Wall)
            })
            .count();
        assert!(walls > 20, "{walls}");
    }

    #[test]
    fn views_and_queries() {
        let mut g = deploy();
        let seats = vec![SeatView {
            seat: 0,
            player_id: 77,
            connected: true,
        }];
        let v0 = tactics_view(&g, Some(0));
        assert_eq!(v0.phase, "deploy");
        assert_eq!(v0.you, Some(0));
        assert_eq!(
            v0.hand.iter().map(|c| c.card).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        assert_eq!(v0.opponent_hand_size, 8);
        assert_eq!(v0.bases, [20, 20]);
        let v1 = tactics_view(&g, Some(1));
        assert_eq!(
            v1.hand.iter().map(|c| c.card).collect::<Vec<_>>(),
            (9..=16).collect::<Vec<_>>()
        );
        assert_eq!(v1.hand[0].unit, g.hands[1][0].kind.name());

        // place seat 1's guard, then a seat 0 unit
        let guard = g.hands[1].iter().find(|c| c.kind == Guard).map(|c| c.id);
        let guard = guard.unwrap_or_default();
        let placed = g.apply(
            1,
            &Action::Place {
                card: guard,
                x: 4,
                y: 0,
            },
        );
        assert!(placed.is_ok(), "{placed:?}");
        let archer = g.hands[0].iter().find(|c| c.kind == Archer).map(|c| c.id);
        let archer = archer.unwrap_or_default();
        let placed = g.apply(
            0,
            &Action::Place {
                card: archer,
                x: 0,
                y: 2,
            },
        );
        assert!(placed.is_ok(), "{placed:?}");

        let State::Tactics(neutral) = g.view(None, seats.clone()) else {
            panic!("not tactics");
        };
        assert_eq!(neutral.you, None);
        assert!(neutral.hand.is_empty());
        assert_eq!(neutral.opponent_hand_size, 0);
        assert_eq!(neutral.seats, seats);
        assert_eq!(
            neutral.units,
            vec![
                UnitView {
                    unit_id: 1,
                    seat: 1,
                    unit: "guard".into(),
                    x: 4,
                    y: 0,
                    hp: 14
                },
                UnitView {
                    unit_id: 2,
                    seat: 0,
                    unit: "archer".into(),
                    x: 0,
                    y: 2,
                    hp: 6
                },
            ]
        );
        let v0 = tactics_view(&g, Some(0));
        assert_eq!(v0.hand.len(), 7);
        assert_eq!(v0.opponent_hand_size, 7);
        assert!(!v0.hand.iter().any(|c| c.card == archer));

        assert_eq!(
            g.query(0, &Query::State),
            Ok(Reply::State {
                state: g.view(Some(0), Vec::new())
            })
        );
        assert_eq!(g.cache_query(7, &Query::ValidCells { card: 1 }), None);
        assert_eq!(g.cache_query(0, &Query::State), None);

        let wall = give(&mut g, 0, Wall);
        assert_eq!(
            g.query(0, &Query::ValidCells { card: wall }),
            Ok(Reply::Cells {
                cells: (0..3)
                    .flat_map(|y| (0..5).map(move |x| [x, y]))
                    .filter(|&c| c != [0, 2])
                    .collect()
            })
        );
        let mage = give(&mut g, 0, Mage);
        assert_eq!(
            g.query(0, &Query::ValidCells { card: mage }),
            Ok(Reply::Cells {
                cells: (0..5).map(|x| [x, 1]).collect()
            })
        );
        let lancer = give(&mut g, 0, Lancer);
        assert_eq!(
            g.query(0, &Query::ValidCells { card: lancer }),
            Ok(Reply::Cells {
                cells: vec![[0, 1], [1, 2]]
            })
        );
        for (seat, card) in [(0, archer), (0, 9), (1, 1), (0, 0), (0, u32::MAX)] {
            let got = g.query(seat, &Query::ValidCells { card });
            assert_eq!(
                got.map_err(|r| r.code),
                Err("unknown_card"),
                "{seat} {card}"
            );
        }
    }

    /// Every cell where `place` succeeds on a clone of `g`.
    fn brute_force_cells(g: &TacticsGame, seat: Seat, card: u32) -> Vec<[i32; 2]> {
        let mut cells = Vec::new();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let mut copy = g.clone();
                if copy.apply(seat, &Action::Place { card, x, y }).is_ok() {
                    cells.push([x, y]);
                }
            }
        }
        cells
    }

    #[test]
    fn cache_keys_are_per_kind_and_query_versions_per_seat() {
        let mut g = deploy();
        let a = give(&mut g, 0, Archer);
        let b = give(&mut g, 0, Archer);
        let first = g.hands[0]
            .iter()
            .find(|c| c.kind == Archer)
            .map(|c| c.id)
            .expect("an archer");
        let key = |g: &TacticsGame, seat, card| g.cache_query(seat, &Query::ValidCells { card });
        assert_eq!(key(&g, 0, a), Some(Query::ValidCells { card: first }));
        assert_eq!(key(&g, 0, b), key(&g, 0, a));
        assert_eq!(key(&g, 1, a), None, "not in that hand");
        let hot = g.hot_queries(0);
        let kinds: Vec<UnitKind> = hot
            .iter()
            .map(|q| match q {
                Query::ValidCells { card } => {
                    g.hands[0]
                        .iter()
                        .find(|c| c.id == *card)
                        .expect("in hand")
                        .kind
                }
                Query::State => panic!("state is not hot"),
            })
            .collect();
        let mut distinct = kinds.clone();
        distinct.dedup();
        assert_eq!(kinds.len(), distinct.len(), "one hot query per kind");
        assert!(g.hot_queries(5).is_empty());

        let (v0, v1) = (g.query_version(0), g.query_version(1));
        let _ = place(&mut g, 0, Guard, 2, 0);
        assert!(g.query_version(0) > v0, "own placement");
        assert_eq!(g.query_version(1), v1, "the other side is untouched");
    }

    #[test]
    fn valid_cells_match_brute_force() {
        for seed in 0..60u64 {
            let mut g = deploy_with(TacticsConfig::default(), seed);
            let mut rng = SplitMix64(seed ^ 0xDEAD_BEEF);
            // extra cards so that the board fills up
            for seat in 0..2 {
                for _ in 0..6 {
                    let kind = UnitKind::ALL[rng.below(5)];
                    give(&mut g, seat, kind);
                }
            }
            for step in 0..40 {
                let seat = (step % 2) as Seat;
                let me = usize::from(seat);
                let mut options = Vec::new();
                for card in g.hands[me].clone() {
                    let reply = g.query(seat, &Query::ValidCells { card: card.id });
                    let Ok(Reply::Cells { cells }) = reply else {
                        panic!("{reply:?}");
                    };
                    assert_eq!(
                        cells,
                        brute_force_cells(&g, seat, card.id),
                        "seed {seed} step {step} {card:?}"
                    );
                    for cell in cells {
                        options.push((card.id, cell));
                    }
                }
                if options.is_empty() {
                    continue;
                }
                let (card, [x, y]) = options[rng.below(options.len())];
                let placed = g.apply(seat, &Action::Place { card, x, y });
                assert!(placed.is_ok(), "{placed:?}");
            }
        }
    }

    #[test]
    fn version_grows_on_every_change() {
        let mut g = TacticsGame::new(TacticsConfig::default(), 5);
        let mut last = g.version();
        let grew = |g: &TacticsGame, last: &mut u64, changed: bool, what: &str| {
            if changed {
                assert!(g.version() > *last, "{what}: version did not grow");
            } else {
                assert_eq!(g.version(), *last, "{what}: version changed");
            }
            *last = g.version();
        };
        g.tick();
        grew(&g, &mut last, false, "tick while waiting");
        g.seat_joined(0);
        grew(&g, &mut last, true, "join");
        g.seat_joined(0);
        grew(&g, &mut last, false, "join again");
        g.seat_left(0);
        grew(&g, &mut last, true, "leave while waiting");
        g.seat_joined(0);
        grew(&g, &mut last, true, "join");
        g.seat_joined(1);
        grew(&g, &mut last, true, "second join");
        g.tick();
        grew(&g, &mut last, true, "deploy tick");
        let _ = g.apply(
            0,
            &Action::Place {
                card: 9,
                x: 0,
                y: 0,
            },
        );
        grew(&g, &mut last, false, "rejected place");
        let _ = g.query(0, &Query::ValidCells { card: 1 });
        let _ = g.query(0, &Query::State);
        let _ = g.view(Some(0), Vec::new());
        grew(&g, &mut last, false, "queries");
        let card = give(&mut g, 0, Guard);
        last = g.version();
        let _ = g.apply(0, &Action::Place { card, x: 0, y: 0 });
        grew(&g, &mut last, true, "place");
        let card = give(&mut g, 1, Guard);
        last = g.version();
        let _ = g.apply(1, &Action::Place { card, x: 0, y: 0 });
        grew(&g, &mut last, true, "place");
        let _ = g.apply(0, &Action::Ready);
        grew(&g, &mut last, true, "ready");
        let _ = g.apply(0, &Action::Ready);
        grew(&g, &mut last, false, "ready again");
        let _ = g.apply(1, &Action::Ready);
        grew(&g, &mut last, true, "both ready");
        for _ in 0..20 {
            g.tick();
            grew(&g, &mut last, true, "battle tick");
        }
        let _ = g.apply(1, &Action::Concede);
        grew(&g, &mut last, true, "concede");
        g.tick();
        let _ = g.apply(1, &Action::Concede);
        g.seat_left(0);
        grew(&g, &mut last, false, "after the end");
    }

    #[test]
    fn random_games_never_panic_and_always_end() {
        let config = TacticsConfig::default();
        let limit = config.deploy_ticks + config.battle_ticks + 10;
        let mut reasons = std::collections::BTreeMap::<String, u32>::new();
        for game in 0..200u64 {
            let seed = game.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ game;
            let mut rng = SplitMix64(seed ^ 0x5EED);
            let mut g = TacticsGame::new(config, seed);
            let mut ended: Option<MatchResult> = None;
            let mut ticks = 0u32;
            // a quarter of the games may concede or leave, a quarter never
            // places a unit (so they run into the time limit)
            let quitter = game % 4 == 0;
            let passive = game % 4 == 1;
            let note = |out: &Outcome, ended: &mut Option<MatchResult>| {
                if let Some(r) = &out.ended {
                    assert!(ended.is_none(), "ended twice");
                    *ended = Some(r.clone());
                }
            };
            while !(g.joined[0] && g.joined[1]) {
                let seat = rng.below(3) as Seat;
                let out = if rng.below(4) == 0 {
                    g.seat_left(seat)
                } else {
                    g.seat_joined(seat)
                };
                note(&out, &mut ended);
            }
            assert_eq!(g.phase, Phase::Deploy);
            while ended.is_none() {
                assert!(
                    ticks <= limit,
                    "game {game} still running after {ticks} ticks"
                );
                let before = g.version();
                let seat = match rng.below(20) {
                    0 => 2,
                    1 => Seat::MAX,
                    n => (n % 2) as Seat,
                };
                let roll = rng.below(1000);
                if roll < 300 && !passive {
                    let card = if rng.below(2) == 0 {
                        g.hands
                            .get(usize::from(seat))
                            .and_then(|h| h.get(rng.below(h.len().max(1))))
                            .map_or(0, |c| c.id)
                    } else {
                        match rng.below(4) {
                            0 => u32::MAX,
                            _ => rng.below(20) as u32,
                        }
                    };
                    let x = rng.below(9) as i32 - 2;
                    let y = rng.below(7) as i32 - 2;
                    let (x, y) = match rng.below(30) {
                        0 => (i32::MIN, i32::MAX),
                        _ => (x, y),
                    };
                    let got = g.apply(seat, &Action::Place { card, x, y });
                    if let Ok(out) = &got {
                        assert!(g.version() > before);
                        note(out, &mut ended);
                    }
                } else if roll < 320 {
                    if let Ok(out) = g.apply(seat, &Action::Ready) {
                        assert!(g.version() > before);
                        note(&out, &mut ended);
                    }
                } else if roll < 322 && quitter {
                    if let Ok(out) = g.apply(seat, &Action::Concede) {
                        note(&out, &mut ended);
                    }
                } else if roll < 323 && quitter {
                    let out = g.seat_left(seat);
                    note(&out, &mut ended);
                } else if roll < 360 {
                    let card = rng.below(20) as u32;
                    let _ = g.query(seat, &Query::ValidCells { card });
                    let _ = g.query(seat, &Query::State);
                    let _ = g.apply(seat, &Action::Mark { x: 0, y: 0 });
                    assert_eq!(g.version(), before, "queries change nothing");
                } else {
                    let out = g.tick();
                    ticks += 1;
                    note(&out, &mut ended);
                }
                assert!(g.version() >= before);
                // invariants
                assert!(g.bases.iter().all(|&b| (0..=config.base_hp).contains(&b)));
                assert!(g.units.len() <= 2 * WIDTH as usize * HEIGHT as usize);
                assert!(g.units.windows(2).all(|w| w[0].id < w[1].id));
                for u in &g.units {
                    assert!(u.hp > 0 && u.hp <= u.kind.hp(), "{u:?}");
                    assert!((0..WIDTH).contains(&u.x) && (0..HEIGHT).contains(&u.y));
                    let same_cell = g
                        .units
                        .iter()
                        .filter(|o| o.seat == u.seat && o.x == u.x && o.y == u.y)
                        .count();
                    assert_eq!(same_cell, 1, "{u:?}");
                }
                let total_cards: usize = g.hands.iter().map(Vec::len).sum();
                assert!(total_cards + g.units.len() <= 2 * HAND_SIZE);
            }
            assert!(!g.wants_tick());
            assert!(!g.accepts_players());
            assert_eq!(tactics_view(&g, Some(0)).phase, "ended");
            let before = g.version();
            assert_eq!(g.tick(), Outcome::none());
            assert!(g.apply(0, &Action::Ready).is_err());
            assert_eq!(g.version(), before);
            if let Some(r) = ended {
                assert_eq!(r.scores, vec![i64::from(g.bases[0]), i64::from(g.bases[1])]);
                *reasons.entry(r.reason).or_default() += 1;
            }
        }
        // the random play reaches every kind of ending
        eprintln!("endings: {reasons:?}");
        for reason in ["concede", "forfeit", "base_destroyed", "time_limit"] {
            assert!(reasons.contains_key(reason), "{reason}: {reasons:?}");
        }
    }
}
