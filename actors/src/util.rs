//! Small helpers every layer may use: random ids and Unix time. Imports
//! nothing of the engine.

use std::time::SystemTime;

/// A random id in 1..2^53, exact in every JSON implementation.
pub fn random_id() -> u64 {
    (random_u64() & ((1 << 53) - 1)).max(1)
}

/// Player ids below this belong to verified players (a studio's JWT);
/// anonymous players get ids from `VERIFIED_ID_LIMIT..2^53`. Both stay
/// exact in JSON.
pub const VERIFIED_ID_LIMIT: u64 = 1 << 52;

/// Whether `player` is a verified player's id.
pub fn is_verified_player(player: u64) -> bool {
    player < VERIFIED_ID_LIMIT
}

/// A random anonymous player id, in `VERIFIED_ID_LIMIT..2^53`.
pub fn anonymous_player_id() -> u64 {
    VERIFIED_ID_LIMIT | (random_u64() & (VERIFIED_ID_LIMIT - 1))
}

/// 64 random bits from the operating system, or `None` if it fails: for
/// secrets (session tokens), which must fail closed.
pub fn try_random_u64() -> Option<u64> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).ok()?;
    Some(u64::from_le_bytes(buf))
}

/// 64 random bits from the operating system, for ids, seeds and jitter
/// (never for secrets: see [`try_random_u64`]).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        // The OS source failing is not something a caller can act on; fall
        // back to the clock so ids stay distinct.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return nanos ^ 0x9e37_79b9_7f4a_7c15;
    }
    u64::from_le_bytes(buf)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
