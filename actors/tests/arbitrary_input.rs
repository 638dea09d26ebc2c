//! What a node reads besides the wire protocol is total too: arbitrary
//! bytes as a journal file, as the match copy failover loads from Redis,
//! and as a control message give entries, a copy or an error, never a
//! panic. (The cargo-fuzz targets in `actors/fuzz/` search the same space
//! with coverage guidance; this runs on stable in `cargo test`.)

use fred::types::Value;
use matchd_actors::cluster::control::{ControlKey, ControlMsg};
use matchd_actors::cluster::replica::{decode_stored, encode, Batch, MatchSnapshot, Recorded};
use matchd_actors::history::journal::{encode_entry, Entries};
use matchd_actors::history::record::Record;
use proptest::prelude::*;

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "matchd-arbitrary-{name}-{}-{:x}",
        std::process::id(),
        matchd_actors::util::random_u64()
    ));
    std::fs::write(&path, bytes).expect("temp file");
    path
}

/// A valid journal entry, to be damaged.
fn entry() -> Vec<u8> {
    let records = vec![Record::MatchCreated {
        match_id: 7,
        ruleset: "sandbox".into(),
        node_id: "n".into(),
        created_at_ms: 1,
    }];
    encode_entry(&records).expect("entry")
}

fn snapshot() -> MatchSnapshot {
    MatchSnapshot {
        match_id: 1,
        ruleset: "sandbox".into(),
        seq: 3,
        batch: 1,
        seed: 9,
        created_at_ms: 0,
        players: vec![Some(5), None],
        participants: vec![],
        game: vec![1, 2, 3],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_journal_file_reads_without_panicking(
        noise in proptest::collection::vec(any::<u8>(), 0..2048),
        at in 0usize..4096,
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..8),
    ) {
        // Valid entries around arbitrary noise, with bytes flipped anywhere.
        let mut bytes = entry();
        bytes.extend_from_slice(&noise);
        bytes.extend_from_slice(&entry());
        let cut = at.min(bytes.len());
        bytes.splice(cut..cut, entry());
        let len = bytes.len().max(1);
        for (i, b) in flips {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= b;
            }
        }
        let path = temp_file("journal", &bytes);
        let mut entries = Entries::<Vec<Record>>::open(&path).expect("open");
        let n = entries.by_ref().count();
        prop_assert!(entries.skipped_bytes <= bytes.len() as u64);
        prop_assert!(n <= 4);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn any_redis_copy_decodes_or_is_refused(
        parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..6),
        valid_snapshot in any::<bool>(),
    ) {
        let mut values = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if i == 0 && valid_snapshot {
                values.push(Value::Bytes(encode(&snapshot()).expect("snap").into()));
            } else if i % 2 == 1 {
                values.push(Value::String(String::from_utf8_lossy(p).into_owned().into()));
            } else {
                values.push(Value::Bytes(p.clone().into()));
            }
        }
        let _ = decode_stored(&values);
    }

    #[test]
    fn any_control_message_is_refused_unless_sealed(text in ".{0,300}") {
        let key = ControlKey::new(b"k");
        prop_assert!(key.open(&text, 1_000).is_err());
    }
}

#[test]
fn a_valid_copy_still_decodes() {
    let batch = Batch {
        inputs: vec![],
        events: vec![Recorded {
            seq: 4,
            seat: None,
            event: matchd_protocol::Event::PlayerLeft { seat: 0 },
            client_seq: None,
        }],
        ended: false,
    };
    let values = vec![
        Value::Bytes(encode(&snapshot()).expect("snap").into()),
        Value::String("2-1".into()),
        Value::Bytes(encode(&batch).expect("batch").into()),
    ];
    let stored = decode_stored(&values).expect("decodes").expect("a copy");
    assert_eq!(stored.snapshot, snapshot());
    assert_eq!(stored.batches.len(), 1);
    let sealed = ControlKey::new(b"k").seal(
        &ControlMsg::Broadcast {
            message: "hi".into(),
        },
        5,
    );
    assert!(ControlKey::new(b"k").open(&sealed, 5).is_ok());
}
