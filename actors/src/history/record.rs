//! The history a match hands to the persistence writer: the [`Record`]s
//! and the [`Persist`] message that carries them. Shared by the match (who
//! sends), the writer, the journal and the SQL store (who read).

use actix::prelude::*;
use bincode::{Decode, Encode};

use matchd_protocol::{Event, MatchId, MatchResult, PlayerId, Seat};

/// Records for the writer, sent by every match in order with `try_send`
/// into its bounded mailbox (a match holds what does not fit yet, see
/// `session/history_out.rs`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persist(pub Vec<Record>);

/// One unit of match history, as buffered, journaled and written.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Record {
    MatchCreated {
        match_id: MatchId,
        ruleset: String,
        node_id: String,
        created_at_ms: u64,
    },
    Event {
        match_id: MatchId,
        seq: u64,
        seat: Option<Seat>,
        at_ms: u64,
        event: Event,
    },
    /// `last_seq` is the seq of the match's last event. `players` is every
    /// (seat, player) that sat in the match, as the match knows it (it keeps
    /// them across a failover in its Redis copy).
    MatchEnded {
        match_id: MatchId,
        ruleset: String,
        node_id: String,
        created_at_ms: u64,
        ended_at_ms: u64,
        last_seq: u64,
        result: MatchResult,
        players: Vec<(Seat, PlayerId)>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::journal;

    #[test]
    fn records_survive_the_journal_codec() {
        let records = vec![
            Record::MatchCreated {
                match_id: 1,
                ruleset: "tactics".into(),
                node_id: "n".into(),
                created_at_ms: 5,
            },
            Record::Event {
                match_id: 1,
                seq: 1,
                seat: None,
                at_ms: 6,
                event: Event::PlayerJoined {
                    seat: 0,
                    player_id: 9,
                },
            },
            Record::MatchEnded {
                match_id: 1,
                ruleset: "tactics".into(),
                node_id: "n".into(),
                created_at_ms: 5,
                ended_at_ms: 7,
                last_seq: 1,
                result: MatchResult {
                    winner: Some(0),
                    reason: "concede".into(),
                    scores: vec![20, 3],
                },
                players: vec![(0, 9)],
            },
        ];
        let entry = journal::encode_entry(&records).expect("encode");
        let back: Vec<Record> =
            journal::decode_payload(&entry[journal::HEADER_BYTES..], 0).expect("decode");
        assert_eq!(back, records);
    }
}
