//! The copy of a match that failover loads from Redis (a snapshot and the
//! stream's entries), from arbitrary bytes: decoding never panics, and a
//! copy that decodes re-encodes to the same snapshot and batches.
#![no_main]

use fred::types::Value;
use libfuzzer_sys::fuzz_target;
use matchd_actors::cluster::replica::{decode_stored, encode, Batch, MatchSnapshot};
use matchd_actors::rules::decode_snapshot;

fuzz_target!(|data: &[u8]| {
    // The input is split at 0xFF bytes: the snapshot, then stream entries
    // (an id and its bytes, in turn).
    let parts: Vec<&[u8]> = data.split(|b| *b == 0xff).collect();
    let mut values = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 1 {
            values.push(Value::String(String::from_utf8_lossy(p).into_owned().into()));
        } else {
            values.push(Value::Bytes(bytes::Bytes::copy_from_slice(p)));
        }
    }
    if let Ok(Some(stored)) = decode_stored(&values) {
        let snap = encode(&stored.snapshot).expect("a decoded snapshot encodes");
        assert_eq!(decode_snapshot::<MatchSnapshot>(&snap), Some(stored.snapshot.clone()));
        for (_, batch) in &stored.batches {
            let bytes = encode(batch).expect("a decoded batch encodes");
            assert_eq!(decode_snapshot::<Batch>(&bytes).as_ref(), Some(batch));
        }
    }
    // Each decoder alone, on the whole input.
    let _ = decode_snapshot::<MatchSnapshot>(data);
    let _ = decode_snapshot::<Batch>(data);
});
