//! JSON and bincode codecs for the wire enums. The only module that knows how
//! bytes become messages, so the binary format can be swapped in one place.
//!
//! Client bytes are decoded with a byte limit (bincode's default decoder has
//! none and would allocate whatever a hostile length prefix claims) and a
//! binary frame must be consumed entirely.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use std::cell::OnceCell;

use super::{ClientMsg, Reply, ServerMsg};

/// Upper bound on what one decoded binary message may claim to allocate.
pub const BINCODE_LIMIT: usize = 256 * 1024;

type Limited = Configuration<LittleEndian, Varint, Limit<BINCODE_LIMIT>>;

fn config() -> Limited {
    bincode::config::standard().with_limit::<BINCODE_LIMIT>()
}

/// How a connection's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    /// bincode, the current protocol's layout ([`crate::PROTOCOL_VERSION`]).
    Bincode,
    /// bincode, protocol 1's layout of server frames: what a binary client
    /// that did not ask for `?protocol=2` reads (the fields protocol 2
    /// appended are left out). Client frames of both layouts decode.
    BincodeV1,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Bincode | Encoding::BincodeV1 => "bincode",
        }
    }

    /// `json`, or `bincode` (alias `binary`) in the current layout; see
    /// [`Encoding::binary_for`] for a connection's layout.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Encoding::Json),
            "bincode" | "binary" => Some(Encoding::Bincode),
            _ => None,
        }
    }

    /// The bincode layout of server frames for a connection that asked for
    /// protocol `protocol` (1 when it did not say).
    pub fn binary_for(protocol: u32) -> Self {
        if protocol >= 2 {
            Encoding::Bincode
        } else {
            Encoding::BincodeV1
        }
    }

    pub fn is_binary(self) -> bool {
        !matches!(self, Encoding::Json)
    }
}

/// Why a client frame could not be decoded. `code()` is the stable string
/// sent back in the `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("message has no \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("binary frame is not a valid bincode message: {0}")]
    MalformedBinary(String),
    #[error("binary frame has {0} trailing bytes after the message")]
    TrailingBytes(usize),
}

impl DecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::MalformedJson(_) => "malformed_json",
            DecodeError::MissingType => "missing_type",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::InvalidMessage(_) => "invalid_message",
            DecodeError::MalformedBinary(_) | DecodeError::TrailingBytes(_) => "malformed_binary",
        }
    }
}

const CLIENT_TYPES: &[&str] = &["join", "action", "query", "leave", "ping", "resume"];

/// Decodes a text frame.
pub fn decode_json(text: &str) -> Result<ClientMsg, DecodeError> {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(msg),
        Err(e) if e.is_syntax() || e.is_eof() => Err(DecodeError::MalformedJson(e.to_string())),
        // Cold path: look again to tell the client precisely what is wrong.
        Err(e) => Err(classify_json_error(text, e)),
    }
}

fn classify_json_error(text: &str, err: serde_json::Error) -> DecodeError {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return DecodeError::MalformedJson(err.to_string());
    };
    let Some(obj) = value.as_object() else {
        return DecodeError::InvalidMessage("a message must be a JSON object".into());
    };
    match obj.get("type") {
        None => DecodeError::MissingType,
        Some(serde_json::Value::String(t)) if !CLIENT_TYPES.contains(&t.as_str()) => {
            DecodeError::UnknownType(t.clone())
        }
        Some(serde_json::Value::String(_)) => DecodeError::InvalidMessage(err.to_string()),
        Some(_) => DecodeError::InvalidMessage("\"type\" must be a string".into()),
    }
}

/// Decodes a binary frame, in the current layout or protocol 1's (whose
/// `join` lacks the `max_seats` that protocol 2 appended).
pub fn decode_bincode(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    match decode_current(bytes) {
        Ok(msg) => Ok(msg),
        Err(e) => decode_v1_join(bytes).ok_or(e),
    }
}

fn decode_current(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    let (msg, used) = bincode::decode_from_slice::<ClientMsg, _>(bytes, config())
        .map_err(|e| DecodeError::MalformedBinary(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

/// Bincode variant index of [`ClientMsg::Join`].
const JOIN_VARIANT: u8 = 0;

/// Protocol 1's `join`: the fields before `max_seats`.
#[derive(bincode::Decode)]
struct JoinV1 {
    match_id: Option<u64>,
    ruleset: Option<String>,
}

fn decode_v1_join(bytes: &[u8]) -> Option<ClientMsg> {
    let (&JOIN_VARIANT, rest) = bytes.split_first()? else {
        return None;
    };
    let (join, used) = bincode::decode_from_slice::<JoinV1, _>(rest, config()).ok()?;
    (used == rest.len()).then_some(ClientMsg::Join {
        match_id: join.match_id,
        ruleset: join.ruleset,
        max_seats: None,
    })
}

/// Encodes a server message as JSON text.
pub fn encode_json(msg: &ServerMsg) -> String {
    // Serializing these plain data types cannot fail: no maps with non-string
    // keys, no custom Serialize impls.
    serde_json::to_string(msg).unwrap_or_else(|e| {
        log::error!("json encode failed: {e}");
        String::from(r#"{"type":"error","code":"internal","message":"encode failed"}"#)
    })
}

/// Encodes a server message with bincode.
pub fn encode_bincode(msg: &ServerMsg) -> Vec<u8> {
    bincode::encode_to_vec(msg, config()).unwrap_or_else(|e| {
        log::error!("bincode encode failed: {e}");
        Vec::new()
    })
}

/// Encodes a server message in protocol 1's bincode layout: the current
/// encoding without the fields protocol 2 appended, which are always the
/// last of their variant (so they are the frame's last bytes).
pub fn encode_bincode_v1(msg: &ServerMsg) -> Vec<u8> {
    let mut bytes = encode_bincode(msg);
    let tail = v2_tail_len(msg);
    bytes.truncate(bytes.len().saturating_sub(tail));
    bytes
}

/// Encoded length of the fields protocol 2 appended to `msg`'s variant.
fn v2_tail_len(msg: &ServerMsg) -> usize {
    fn opt_u64(v: Option<u64>) -> usize {
        1 + v.map_or(0, varint_len)
    }
    fn opt_u8(v: Option<u8>) -> usize {
        1 + usize::from(v.is_some())
    }
    match msg {
        ServerMsg::Welcome { protocol, .. } => varint_len(u64::from(*protocol)),
        ServerMsg::Event { client_seq, .. } => opt_u64(*client_seq),
        ServerMsg::Ended {
            seat, client_seq, ..
        } => opt_u8(*seat) + opt_u64(*client_seq),
        _ => 0,
    }
}

/// One encoded server frame, cheap to clone: every recipient of an event
/// shares the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Text(bytestring::ByteString),
    Binary(bytes::Bytes),
}

impl Out {
    pub fn len(&self) -> usize {
        match self {
            Out::Text(t) => t.len(),
            Out::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encodes a server message for a connection using `encoding`.
pub fn encode(msg: &ServerMsg, encoding: Encoding) -> Out {
    match encoding {
        Encoding::Json => Out::Text(encode_json(msg).into()),
        Encoding::Bincode => Out::Binary(encode_bincode(msg).into()),
        Encoding::BincodeV1 => Out::Binary(encode_bincode_v1(msg).into()),
    }
}

/// Encodes `msg` at most once per encoding, on first use.
pub struct EncodeOnce<'a> {
    msg: &'a ServerMsg,
    json: Option<Out>,
    bin: Option<Out>,
    bin_v1: Option<Out>,
}

impl<'a> EncodeOnce<'a> {
    pub fn new(msg: &'a ServerMsg) -> Self {
        Self {
            msg,
            json: None,
            bin: None,
            bin_v1: None,
        }
    }

    pub fn get(&mut self, encoding: Encoding) -> Out {
        let slot = match encoding {
            Encoding::Json => &mut self.json,
            Encoding::Bincode => &mut self.bin,
            Encoding::BincodeV1 => &mut self.bin_v1,
        };
        slot.get_or_insert_with(|| encode(self.msg, encoding))
            .clone()
    }
}

/// Bincode variant index of [`ServerMsg::Reply`] (see the compatibility rule
/// in [`super`]: variants are only appended, so it never changes); below
/// 251, so its varint is this one byte.
const REPLY_VARIANT: u8 = 4;

fn varint_len(v: u64) -> usize {
    match v {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// bincode 2's standard varint for a `u64`: one byte below 251, else a tag
/// (251, 252, 253) and the value as u16, u32 or u64 little endian.
fn push_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A query answer whose payload is encoded at most once per encoding and
/// then framed for any `client_seq` without encoding it again. The
/// validation cache stores these, so a hit costs a lookup and a copy.
#[derive(Debug)]
pub struct SharedReply {
    reply: Reply,
    json: OnceCell<String>,
    bin: OnceCell<Vec<u8>>,
}

impl SharedReply {
    pub fn new(reply: Reply) -> Self {
        Self {
            reply,
            json: OnceCell::new(),
            bin: OnceCell::new(),
        }
    }

    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// The `reply` frame answering `client_seq`: byte for byte what
    /// [`encode`] makes of the same `ServerMsg::Reply`.
    pub fn frame(&self, client_seq: u64, encoding: Encoding) -> Out {
        match encoding {
            Encoding::Json => {
                let body = self.json.get_or_init(|| {
                    serde_json::to_string(&self.reply).unwrap_or_else(|e| {
                        log::error!("json encode failed: {e}");
                        String::from("null")
                    })
                });
                const HEAD: &str = r#"{"type":"reply","client_seq":"#;
                const MID: &str = r#","reply":"#;
                let mut seq = itoa::Buffer::new();
                let seq = seq.format(client_seq);
                // Exact capacity: a full buffer becomes `Bytes` without a
                // second allocation.
                let mut text =
                    String::with_capacity(HEAD.len() + seq.len() + MID.len() + body.len() + 1);
                text.push_str(HEAD);
                text.push_str(seq);
                text.push_str(MID);
                text.push_str(body);
                text.push('}');
                Out::Text(text.into())
            }
            // Replies are laid out alike in both protocols.
            Encoding::Bincode | Encoding::BincodeV1 => {
                let body = self.bin.get_or_init(|| {
                    bincode::encode_to_vec(&self.reply, config()).unwrap_or_default()
                });
                let mut bytes = Vec::with_capacity(1 + varint_len(client_seq) + body.len());
                bytes.push(REPLY_VARIANT);
                push_varint(&mut bytes, client_seq);
                bytes.extend_from_slice(body);
                Out::Binary(bytes.into())
            }
        }
    }
}

/// Client-side helpers (used by tests and the load generator).
pub fn encode_client_bincode(msg: &ClientMsg) -> Vec<u8> {
    bincode::encode_to_vec(msg, config()).unwrap_or_default()
}

pub fn encode_client_json(msg: &ClientMsg) -> String {
    serde_json::to_string(msg).unwrap_or_default()
}

pub fn decode_server_json(text: &str) -> Result<ServerMsg, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::InvalidMessage(e.to_string()))
}

pub fn decode_server_bincode(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    let (msg, used) = bincode::decode_from_slice::<ServerMsg, _>(bytes, config())
        .map_err(|e| DecodeError::MalformedBinary(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn check(text: &str, expected: Result<ClientMsg, &str>) {
        let got = decode_json(text);
        match (got, expected) {
            (Ok(m), Ok(e)) => assert_eq!(m, e, "{text}"),
            (Err(err), Err(code)) => assert_eq!(err.code(), code, "{text}: {err}"),
            (got, exp) => panic!("{text}: got {got:?}, expected {exp:?}"),
        }
    }

    #[test]
    fn json_decoding_table() {
        check(
            r#"{"type":"join","match_id":7}"#,
            Ok(ClientMsg::Join {
                match_id: Some(7),
                ruleset: None,
                max_seats: None,
            }),
        );
        check(
            r#"{"type":"join","ruleset":"sandbox"}"#,
            Ok(ClientMsg::Join {
                match_id: None,
                ruleset: Some("sandbox".into()),
                max_seats: None,
            }),
        );
        check(
            r#"{"type":"action","client_seq":3,"action":{"kind":"mark","x":1,"y":2}}"#,
            Ok(ClientMsg::Action {
                client_seq: 3,
                action: Action::Mark { x: 1, y: 2 },
            }),
        );
        check(r#"{"type":"leave"}"#, Ok(ClientMsg::Leave));
        check(
            r#"{"type":"ping","nonce":9,"extra":true}"#,
            Ok(ClientMsg::Ping { nonce: 9 }),
        );
        check("{not json", Err("malformed_json"));
        check("", Err("malformed_json"));
        check("[1,2]", Err("invalid_message"));
        check(r#"{"nonce":1}"#, Err("missing_type"));
        check(r#"{"type":"dance"}"#, Err("unknown_type"));
        check(r#"{"type":7}"#, Err("invalid_message"));
        check(r#"{"type":"ping"}"#, Err("invalid_message"));
        check(
            r#"{"type":"action","client_seq":1,"action":{"kind":"fly"}}"#,
            Err("invalid_message"),
        );
        check(
            r#"{"type":"action","client_seq":-1,"action":{"kind":"ready"}}"#,
            Err("invalid_message"),
        );
    }

    #[test]
    fn bincode_round_trip_and_garbage() {
        let msg = ClientMsg::Action {
            client_seq: 42,
            action: Action::Place {
                card: 3,
                x: 1,
                y: 0,
            },
        };
        let bytes = encode_client_bincode(&msg);
        assert_eq!(decode_bincode(&bytes), Ok(msg));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode_bincode(&trailing).map_err(|e| e.code()),
            Err("malformed_binary")
        );
        assert_eq!(
            decode_bincode(&[0xff; 5]).map_err(|e| e.code()),
            Err("malformed_binary")
        );
        assert_eq!(
            decode_bincode(&[]).map_err(|e| e.code()),
            Err("malformed_binary")
        );
    }

    #[test]
    fn hostile_length_prefix_is_refused_without_allocating() {
        // Variant 0 (join), Some(match_id) absent, Some(ruleset) with a length
        // prefix of u64::MAX (varint 0xff + 8 bytes).
        let mut bytes = vec![0u8, 0u8, 1u8, 0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            decode_bincode(&bytes).map_err(|e| e.code()),
            Err("malformed_binary")
        );
    }

    #[test]
    fn shared_reply_frames_equal_the_plain_encoding() {
        let reply = crate::Reply::Cells {
            cells: vec![[0, 0], [4, 2], [-1, 300]],
        };
        let shared = SharedReply::new(reply.clone());
        for client_seq in [
            0,
            1,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            let msg = ServerMsg::Reply {
                client_seq,
                reply: reply.clone(),
            };
            for enc in [Encoding::Json, Encoding::Bincode] {
                assert_eq!(
                    shared.frame(client_seq, enc),
                    encode(&msg, enc),
                    "{enc:?} {client_seq}"
                );
            }
        }
    }

    #[test]
    fn server_messages_round_trip_in_both_encodings() {
        let msg = ServerMsg::Event {
            match_id: 5,
            seq: 10,
            seat: Some(1),
            event: crate::Event::Marked {
                x: 1,
                y: 2,
                count: 3,
            },
            client_seq: Some(7),
        };
        assert_eq!(decode_server_json(&encode_json(&msg)), Ok(msg.clone()));
        assert_eq!(decode_server_bincode(&encode_bincode(&msg)), Ok(msg));
    }

    /// Protocol 1's server frames up to `ended`, frozen as they were, so a
    /// test can read what an old bincode client reads.
    #[derive(Debug, PartialEq, bincode::Decode, bincode::Encode)]
    enum ServerMsgV1 {
        Welcome {
            player_id: u64,
            node_id: String,
            heartbeat_ms: u64,
        },
        Joined {
            match_id: u64,
            ruleset: String,
            seat: u8,
            seq: u64,
            state: crate::State,
        },
        Event {
            match_id: u64,
            seq: u64,
            seat: Option<u8>,
            event: crate::Event,
        },
        Rejected {
            client_seq: u64,
            code: String,
            message: String,
        },
        Reply {
            client_seq: u64,
            reply: Reply,
        },
        Ended {
            match_id: u64,
            seq: u64,
            result: crate::MatchResult,
        },
    }

    fn read_v1(bytes: &[u8]) -> ServerMsgV1 {
        let (msg, used) =
            bincode::decode_from_slice::<ServerMsgV1, _>(bytes, config()).expect("v1 decodes");
        assert_eq!(used, bytes.len(), "a v1 reader consumes the whole frame");
        msg
    }

    #[test]
    fn protocol_1_bincode_clients_read_the_frames_protocol_2_extended() {
        let marked = crate::Event::Marked {
            x: -3,
            y: 2,
            count: 300,
        };
        let result = crate::MatchResult {
            winner: Some(1),
            reason: "concede".into(),
            scores: vec![20, -1],
        };
        for client_seq in [None, Some(0), Some(250), Some(70_000), Some(u64::MAX)] {
            let event = ServerMsg::Event {
                match_id: 9,
                seq: 1000,
                seat: Some(0),
                event: marked.clone(),
                client_seq,
            };
            assert_eq!(
                read_v1(&encode_bincode_v1(&event)),
                ServerMsgV1::Event {
                    match_id: 9,
                    seq: 1000,
                    seat: Some(0),
                    event: marked.clone(),
                }
            );
            for seat in [None, Some(1)] {
                let ended = ServerMsg::Ended {
                    match_id: 9,
                    seq: 1001,
                    result: result.clone(),
                    seat,
                    client_seq,
                };
                assert_eq!(
                    read_v1(&encode_bincode_v1(&ended)),
                    ServerMsgV1::Ended {
                        match_id: 9,
                        seq: 1001,
                        result: result.clone(),
                    }
                );
            }
        }
        let welcome = ServerMsg::Welcome {
            player_id: 5,
            node_id: "n".into(),
            heartbeat_ms: 1000,
            protocol: crate::PROTOCOL_VERSION,
        };
        assert_eq!(
            read_v1(&encode_bincode_v1(&welcome)),
            ServerMsgV1::Welcome {
                player_id: 5,
                node_id: "n".into(),
                heartbeat_ms: 1000,
            }
        );
        // Frames protocol 2 left alone are the same bytes in both.
        let reply = ServerMsg::Rejected {
            client_seq: 3,
            code: "busy".into(),
            message: "m".into(),
        };
        assert_eq!(encode_bincode_v1(&reply), encode_bincode(&reply));
        // The encoders agree with EncodeOnce and `encode`.
        let mut once = EncodeOnce::new(&welcome);
        assert_eq!(
            once.get(Encoding::BincodeV1),
            Out::Binary(encode_bincode_v1(&welcome).into())
        );
        assert_eq!(
            once.get(Encoding::Bincode),
            Out::Binary(encode_bincode(&welcome).into())
        );
    }

    #[test]
    fn a_protocol_1_join_still_decodes() {
        #[derive(bincode::Encode)]
        enum ClientMsgV1 {
            Join {
                match_id: Option<u64>,
                ruleset: Option<String>,
            },
        }
        for (match_id, ruleset) in [(Some(7), None), (None, Some("tactics".to_string()))] {
            let old = ClientMsgV1::Join {
                match_id,
                ruleset: ruleset.clone(),
            };
            let bytes = bincode::encode_to_vec(&old, config()).expect("encodes");
            assert_eq!(
                decode_bincode(&bytes),
                Ok(ClientMsg::Join {
                    match_id,
                    ruleset,
                    max_seats: None,
                })
            );
        }
        // The current layout, with max_seats.
        let new = ClientMsg::Join {
            match_id: None,
            ruleset: Some("sandbox".into()),
            max_seats: Some(2),
        };
        assert_eq!(decode_bincode(&encode_client_bincode(&new)), Ok(new));
        // A join cut short anywhere else is still malformed.
        assert_eq!(
            decode_bincode(&[JOIN_VARIANT, 1]).map_err(|e| e.code()),
            Err("malformed_binary")
        );
    }
}
