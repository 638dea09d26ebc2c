//! A text frame from a client: decoding never panics, and what decodes
//! encodes and decodes again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matchd_protocol::codec::{decode_json, encode_client_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = decode_json(text) {
        let again = decode_json(&encode_client_json(&msg)).expect("re-encoded frame decodes");
        assert_eq!(again, msg);
    }
});
