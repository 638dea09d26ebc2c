//! A binary frame from a client: decoding never panics or over-allocates,
//! and what decodes encodes and decodes again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matchd_protocol::codec::{decode_bincode, encode_client_bincode};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_bincode(data) {
        let again = decode_bincode(&encode_client_bincode(&msg)).expect("re-encoded frame decodes");
        assert_eq!(again, msg);
    }
});
