//! The JSON bodies of the HTTP API, from arbitrary bytes: parsing never
//! panics, and the checks the handlers apply after parsing never panic
//! either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matchd::routes::{check_kick_reason, BroadcastBody, CreateMatchBody, EndBody, KickBody};

fuzz_target!(|data: &[u8]| {
    if let Ok(kick) = serde_json::from_slice::<KickBody>(data) {
        let _ = check_kick_reason(kick.reason.as_deref());
    }
    let _ = serde_json::from_slice::<BroadcastBody>(data);
    let _ = serde_json::from_slice::<EndBody>(data);
    let _ = serde_json::from_slice::<CreateMatchBody>(data);
    // Session tokens and JWTs arrive as text, too.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = matchd::identity::looks_like_jwt(text);
        let _ = matchd::sessions::digest(text);
    }
});
