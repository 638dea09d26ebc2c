//! A binary frame from a server, as a Rust client decodes it: never panics
//! or over-allocates, and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matchd_protocol::codec::{decode_server_bincode, encode_bincode};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_server_bincode(data) {
        let again = decode_server_bincode(&encode_bincode(&msg)).expect("re-encoded frame decodes");
        assert_eq!(again, msg);
    }
});
