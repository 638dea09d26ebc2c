//! The decoders are total: arbitrary bytes and text, and every golden
//! vector with bytes flipped, cut or appended, give a message or an error,
//! never a panic or an allocation beyond the limit. (The cargo-fuzz
//! targets in `actors/protocol/fuzz/` search the same space with coverage
//! guidance; this runs on stable in `cargo test`.)

use matchd_protocol::codec::{
    decode_bincode, decode_json, decode_server_bincode, decode_server_json,
};
use proptest::prelude::*;

fn vectors() -> Vec<(bool, String, Vec<u8>)> {
    let text = include_str!("../golden/vectors.json");
    let file: serde_json::Value = serde_json::from_str(text).expect("vectors parse");
    file["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            let client = v["direction"] == "client";
            let json = v["json"].as_str().expect("json").to_string();
            let hex = v["bincode_hex"].as_str().expect("hex");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (client, json, bytes)
        })
        .collect()
}

fn decode_all(bytes: &[u8]) {
    let _ = decode_bincode(bytes);
    let _ = decode_server_bincode(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = decode_json(text);
        let _ = decode_server_json(text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,256}") {
        let _ = decode_json(&text);
        let _ = decode_server_json(&text);
    }

    #[test]
    fn damaged_vectors_never_panic(
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0u8..4,
    ) {
        let all = vectors();
        let (_, json, bytes) = &all[pick.index(all.len())];
        for original in [bytes.clone(), json.clone().into_bytes()] {
            let mut damaged = original.clone();
            match how {
                0 if !damaged.is_empty() => {
                    let i = at.index(damaged.len());
                    damaged[i] = byte;
                }
                1 => damaged.truncate(at.index(original.len() + 1)),
                2 => damaged.push(byte),
                _ => damaged.insert(at.index(original.len() + 1), byte),
            }
            decode_all(&damaged);
        }
    }
}

#[test]
fn a_hostile_length_prefix_is_refused_without_allocating() {
    // `join` with a ruleset string claiming u64::MAX bytes, and a `state`
    // reply claiming 2^32 cells: refused by the decode limit.
    let mut join = vec![0u8, 0, 1, 253];
    join.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode_bincode(&join).is_err());
    let mut cells = vec![4u8, 1, 0, 253];
    cells.extend_from_slice(&(1u64 << 32).to_le_bytes());
    assert!(decode_server_bincode(&cells).is_err());
}
