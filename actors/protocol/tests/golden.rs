//! Golden protocol vectors: `actors/protocol/golden/vectors.json` holds, for
//! every sample frame built in [`samples`], the exact JSON text and the exact
//! bincode bytes the Rust encoders produce, so clients written in other
//! languages can test their codecs byte for byte (see PROTOCOL.md).
//!
//! The file is produced from the Rust types. After changing the protocol or
//! the samples, regenerate it and commit the result:
//!
//! ```text
//! MATCHD_BLESS=1 cargo test -p matchd-protocol --test golden
//! ```
//!
//! Without `MATCHD_BLESS` the test checks, for every vector, that encoding
//! the Rust value gives exactly the file's JSON text and bincode bytes, that
//! decoding the file's JSON and bytes gives the Rust value back, and that the
//! file and the samples hold the same vectors. The coverage test fails when
//! a variant of a wire enum has no sample; the `*_variant` functions have no
//! wildcard arm, so a new variant does not compile until they name it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::path::PathBuf;

use bincode::error::{AllowedEnumVariants, DecodeError};
use matchd_protocol::codec::{
    decode_bincode, decode_json, decode_server_bincode, decode_server_json, encode_bincode,
    encode_client_bincode, encode_client_json, encode_json,
};
use matchd_protocol::{
    Action, CardView, ClientMsg, Event, MatchResult, Query, Reply, SeatView, ServerMsg, State,
    TacticsView, UnitView,
};
use serde::{Deserialize, Serialize};

const ABOUT: &str = "matchd wire protocol golden vectors. Each entry is one complete WebSocket \
frame: `direction` is who sends it (client or server), `json` the exact text frame and \
`bincode_hex` the exact binary frame (bincode 2, standard configuration: little endian, \
varint integers) that the Rust encoder produces for the same message. Generated from the \
Rust types by actors/protocol/tests/golden.rs; regenerate with \
`MATCHD_BLESS=1 cargo test -p matchd-protocol --test golden`. Format: PROTOCOL.md.";

/// 2^53 - 1: the largest integer a JavaScript number holds exactly.
const MAX_SAFE_JS: u64 = (1 << 53) - 1;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/vectors.json")
}

/// One wire message, with the direction that picks its codec.
#[derive(Debug, Clone, PartialEq)]
enum Msg {
    Client(ClientMsg),
    Server(ServerMsg),
}

impl Msg {
    fn direction(&self) -> &'static str {
        match self {
            Msg::Client(_) => "client",
            Msg::Server(_) => "server",
        }
    }

    fn encode(&self) -> (String, Vec<u8>) {
        match self {
            Msg::Client(m) => (encode_client_json(m), encode_client_bincode(m)),
            Msg::Server(m) => (encode_json(m), encode_bincode(m)),
        }
    }

    /// Decodes `text` with the codec of this message's direction.
    fn decode_json_like(&self, text: &str) -> Result<Msg, String> {
        let decoded = match self {
            Msg::Client(_) => decode_json(text).map(Msg::Client),
            Msg::Server(_) => decode_server_json(text).map(Msg::Server),
        };
        decoded.map_err(|e| format!("error {}: {e}", e.code()))
    }

    fn decode_bincode_like(&self, bytes: &[u8]) -> Result<Msg, String> {
        let decoded = match self {
            Msg::Client(_) => decode_bincode(bytes).map(Msg::Client),
            Msg::Server(_) => decode_server_bincode(bytes).map(Msg::Server),
        };
        decoded.map_err(|e| format!("error {}: {e}", e.code()))
    }
}

/// The file's layout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldenFile {
    about: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    direction: String,
    json: String,
    bincode_hex: String,
}

fn client(name: &'static str, msg: ClientMsg) -> (&'static str, Msg) {
    (name, Msg::Client(msg))
}

fn server(name: &'static str, msg: ServerMsg) -> (&'static str, Msg) {
    (name, Msg::Server(msg))
}

fn seat_view(seat: u8, player_id: u64, connected: bool) -> SeatView {
    SeatView {
        seat,
        player_id,
        connected,
    }
}

fn event(seq: u64, seat: Option<u8>, event: Event) -> ServerMsg {
    ServerMsg::Event {
        match_id: 7,
        seq,
        seat,
        event,
        client_seq: None,
    }
}

/// An event an action of `seat` caused (protocol 2: with its client_seq).
fn acked(seq: u64, seat: u8, client_seq: u64, event: Event) -> ServerMsg {
    ServerMsg::Event {
        match_id: 7,
        seq,
        seat: Some(seat),
        event,
        client_seq: Some(client_seq),
    }
}

fn sandbox_state() -> State {
    let mut cells = vec![0u32; 15];
    cells[0] = 1;
    cells[7] = 3;
    cells[14] = 300;
    State::Sandbox {
        width: 5,
        height: 3,
        cells,
        seats: vec![seat_view(0, 42, true), seat_view(1, 43, false)],
    }
}

fn tactics_state() -> State {
    State::Tactics(TacticsView {
        phase: "deploy".into(),
        tick: 12,
        you: Some(1),
        hand: vec![
            CardView {
                card: 9,
                unit: "archer".into(),
            },
            CardView {
                card: 14,
                unit: "wall".into(),
            },
        ],
        opponent_hand_size: 7,
        units: vec![
            UnitView {
                unit_id: 1,
                seat: 0,
                unit: "guard".into(),
                x: 2,
                y: 0,
                hp: 14,
            },
            UnitView {
                unit_id: 2,
                seat: 1,
                unit: "mage".into(),
                x: 4,
                y: 1,
                hp: 5,
            },
        ],
        bases: [20, 17],
        ready: [true, false],
        seats: vec![seat_view(0, 42, true), seat_view(1, 43, true)],
    })
}

/// A tactics view without a seat (`you` absent): a spectator's view,
/// before anything was dealt.
fn tactics_state_without_you() -> State {
    State::Tactics(TacticsView {
        phase: "waiting".into(),
        tick: 0,
        you: None,
        hand: Vec::new(),
        opponent_hand_size: 0,
        units: Vec::new(),
        bases: [20, 20],
        ready: [false, false],
        seats: vec![seat_view(0, 42, true)],
    })
}

/// Every golden vector: a unique name and the full frame it encodes. The
/// file lists them in this order.
fn samples() -> Vec<(&'static str, Msg)> {
    let ready_at = |client_seq: u64| ClientMsg::Action {
        client_seq,
        action: Action::Ready,
    };
    vec![
        // ---- client -> server ----
        client(
            "client_join_match_id",
            ClientMsg::Join {
                match_id: Some(7),
                ruleset: None,
                max_seats: None,
            },
        ),
        client(
            "client_join_ruleset",
            ClientMsg::Join {
                match_id: None,
                ruleset: Some("tactics".into()),
                max_seats: None,
            },
        ),
        client(
            "client_join_ruleset_max_seats",
            ClientMsg::Join {
                match_id: None,
                ruleset: Some("sandbox".into()),
                max_seats: Some(2),
            },
        ),
        client(
            "client_action_mark",
            ClientMsg::Action {
                client_seq: 1,
                action: Action::Mark { x: 2, y: 1 },
            },
        ),
        client(
            "client_action_mark_negative_coordinates",
            ClientMsg::Action {
                client_seq: 2,
                action: Action::Mark { x: -1, y: -300 },
            },
        ),
        client(
            "client_action_mark_i32_extremes",
            ClientMsg::Action {
                client_seq: 3,
                action: Action::Mark {
                    x: i32::MIN,
                    y: i32::MAX,
                },
            },
        ),
        client(
            "client_action_place",
            ClientMsg::Action {
                client_seq: 4,
                action: Action::Place {
                    card: 3,
                    x: 4,
                    y: 0,
                },
            },
        ),
        client("client_action_ready", ready_at(5)),
        client(
            "client_action_concede",
            ClientMsg::Action {
                client_seq: 6,
                action: Action::Concede,
            },
        ),
        client("client_action_client_seq_0", ready_at(0)),
        client("client_action_client_seq_250", ready_at(250)),
        client("client_action_client_seq_251", ready_at(251)),
        client("client_action_client_seq_65535", ready_at(65_535)),
        client("client_action_client_seq_65536", ready_at(65_536)),
        client(
            "client_action_client_seq_4294967295",
            ready_at(u64::from(u32::MAX)),
        ),
        client(
            "client_action_client_seq_4294967296",
            ready_at(u64::from(u32::MAX) + 1),
        ),
        client(
            "client_action_client_seq_9007199254740991",
            ready_at(MAX_SAFE_JS),
        ),
        client(
            "client_query_valid_cells",
            ClientMsg::Query {
                client_seq: 7,
                query: Query::ValidCells { card: 3 },
            },
        ),
        client(
            "client_query_state",
            ClientMsg::Query {
                client_seq: 8,
                query: Query::State,
            },
        ),
        client("client_leave", ClientMsg::Leave),
        client("client_ping", ClientMsg::Ping { nonce: 42 }),
        client(
            "client_resume",
            ClientMsg::Resume {
                match_id: 7,
                last_seq: 12,
            },
        ),
        client(
            "client_resume_large_ids",
            ClientMsg::Resume {
                match_id: MAX_SAFE_JS,
                last_seq: 1_000_000,
            },
        ),
        // ---- server -> client ----
        server(
            "server_welcome",
            ServerMsg::Welcome {
                player_id: 42,
                node_id: "node-a1b2c3".into(),
                heartbeat_ms: 1000,
                protocol: 2,
            },
        ),
        server(
            "server_joined_sandbox",
            ServerMsg::Joined {
                match_id: 7,
                ruleset: "sandbox".into(),
                seat: 0,
                seq: 3,
                state: sandbox_state(),
            },
        ),
        server(
            "server_joined_tactics",
            ServerMsg::Joined {
                match_id: 8,
                ruleset: "tactics".into(),
                seat: 1,
                seq: 40,
                state: tactics_state(),
            },
        ),
        server(
            "server_event_player_joined",
            event(
                1,
                None,
                Event::PlayerJoined {
                    seat: 0,
                    player_id: 42,
                },
            ),
        ),
        server(
            "server_event_player_left",
            event(2, None, Event::PlayerLeft { seat: 1 }),
        ),
        server(
            "server_event_player_disconnected",
            event(3, None, Event::PlayerDisconnected { seat: 1 }),
        ),
        server(
            "server_event_player_reconnected",
            event(4, None, Event::PlayerReconnected { seat: 1 }),
        ),
        server(
            "server_event_marked",
            event(
                5,
                Some(0),
                Event::Marked {
                    x: 2,
                    y: 1,
                    count: 300,
                },
            ),
        ),
        server(
            "server_event_phase",
            event(
                6,
                None,
                Event::Phase {
                    phase: "battle".into(),
                },
            ),
        ),
        server(
            "server_event_placed",
            event(
                7,
                Some(1),
                Event::Placed {
                    seat: 1,
                    card: 9,
                    unit: "archer".into(),
                    unit_id: 3,
                    x: 0,
                    y: 2,
                    hp: 6,
                },
            ),
        ),
        server(
            "server_event_player_ready",
            event(8, Some(0), Event::PlayerReady { seat: 0 }),
        ),
        server(
            "server_event_attacked_unit",
            event(
                9,
                None,
                Event::Attacked {
                    unit_id: 3,
                    target_seat: 0,
                    target_unit: Some(1),
                    damage: 2,
                    hp: 12,
                },
            ),
        ),
        server(
            "server_event_attacked_base",
            event(
                10,
                None,
                Event::Attacked {
                    unit_id: 1,
                    target_seat: 1,
                    target_unit: None,
                    damage: 3,
                    hp: -1,
                },
            ),
        ),
        server(
            "server_event_destroyed",
            event(11, None, Event::Destroyed { unit_id: 2 }),
        ),
        server(
            "server_event_u8_seats_251_and_255_are_raw_bytes",
            event(251, Some(251), Event::PlayerReady { seat: 255 }),
        ),
        server(
            "server_rejected",
            ServerMsg::Rejected {
                client_seq: 2,
                code: "out_of_board".into(),
                message: "(9, 9) is outside the 5x3 board".into(),
            },
        ),
        server(
            "server_reply_cells",
            ServerMsg::Reply {
                client_seq: 7,
                reply: Reply::Cells {
                    cells: vec![[0, 0], [4, 2], [-1, 300]],
                },
            },
        ),
        server(
            "server_reply_cells_empty",
            ServerMsg::Reply {
                client_seq: 65_536,
                reply: Reply::Cells { cells: Vec::new() },
            },
        ),
        server(
            "server_reply_state_sandbox",
            ServerMsg::Reply {
                client_seq: 8,
                reply: Reply::State {
                    state: sandbox_state(),
                },
            },
        ),
        server(
            "server_reply_state_tactics_without_you",
            ServerMsg::Reply {
                client_seq: 9,
                reply: Reply::State {
                    state: tactics_state_without_you(),
                },
            },
        ),
        server(
            "server_ended_winner",
            ServerMsg::Ended {
                match_id: 8,
                seq: 120,
                result: MatchResult {
                    winner: Some(0),
                    reason: "base_destroyed".into(),
                    scores: vec![20, 0],
                },
                seat: None,
                client_seq: None,
            },
        ),
        server(
            "server_ended_draw",
            ServerMsg::Ended {
                match_id: 8,
                seq: 1300,
                result: MatchResult {
                    winner: None,
                    reason: "time_limit".into(),
                    scores: vec![17, 17],
                },
                seat: None,
                client_seq: None,
            },
        ),
        server(
            "server_ended_abandoned_no_scores",
            ServerMsg::Ended {
                match_id: 7,
                seq: 12,
                result: MatchResult {
                    winner: None,
                    reason: "abandoned".into(),
                    scores: Vec::new(),
                },
                seat: None,
                client_seq: None,
            },
        ),
        server(
            "server_ended_by_an_action",
            ServerMsg::Ended {
                match_id: 8,
                seq: 40,
                result: MatchResult {
                    winner: Some(1),
                    reason: "concede".into(),
                    scores: vec![20, 18],
                },
                seat: Some(0),
                client_seq: Some(12),
            },
        ),
        server(
            "server_event_with_client_seq",
            acked(
                5,
                1,
                3,
                Event::Marked {
                    x: 2,
                    y: 1,
                    count: 1,
                },
            ),
        ),
        server(
            "server_event_client_seq_varint_65536",
            acked(6, 0, 65_536, Event::PlayerReady { seat: 0 }),
        ),
        server(
            "server_error",
            ServerMsg::Error {
                code: "invalid_join".into(),
                message: "give exactly one of match_id or ruleset".into(),
            },
        ),
        server("server_pong", ServerMsg::Pong { nonce: 42 }),
        server("server_left", ServerMsg::Left { match_id: 7 }),
        server(
            "server_resumed",
            ServerMsg::Resumed {
                match_id: 7,
                seat: 1,
                last_seq: 12,
                seq: 15,
            },
        ),
        server(
            "server_draining",
            ServerMsg::Draining {
                retry_after_ms: 1000,
            },
        ),
        server(
            "server_redirect_with_node_id",
            ServerMsg::Redirect {
                match_id: 7,
                url: "ws://10.0.0.2:8080/v1/ws".into(),
                node_id: Some("node-b".into()),
            },
        ),
        server(
            "server_redirect_without_node_id",
            ServerMsg::Redirect {
                match_id: 7,
                url: "ws://10.0.0.2:8080/v1/ws".into(),
                node_id: None,
            },
        ),
        server(
            "server_notice",
            ServerMsg::Notice {
                message: "Maintenance at 02:00 UTC \u{2014} \"back soon\"\nMerci, \u{e9}quipe"
                    .into(),
            },
        ),
        server(
            "server_notice_300_bytes",
            ServerMsg::Notice {
                message: "0123456789".repeat(30),
            },
        ),
    ]
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex only, as the file promises.
fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    if hex.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", hex.len()));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("{:?} is not a lowercase hex digit", char::from(c))),
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Ok((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

fn vector_of(name: &str, msg: &Msg) -> Vector {
    let (json, bytes) = msg.encode();
    Vector {
        name: name.into(),
        direction: msg.direction().into(),
        json,
        bincode_hex: to_hex(&bytes),
    }
}

/// The file's text exactly as blessing writes it.
fn render(samples: &[(&'static str, Msg)]) -> String {
    let file = GoldenFile {
        about: ABOUT.into(),
        vectors: samples.iter().map(|(n, m)| vector_of(n, m)).collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).expect("the golden file serializes");
    text.push('\n');
    text
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Checks one vector of the file against its Rust sample; returns what is wrong.
fn check_vector(v: &Vector, msg: &Msg) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |what: &str, expected: &dyn Debug, got: &dyn Debug| {
        problems.push(format!(
            "vector `{}`: {what}\n    expected: {expected:?}\n    got:      {got:?}",
            v.name
        ));
    };
    if v.direction != msg.direction() {
        fail("direction (file vs sample)", &msg.direction(), &v.direction);
    }
    let (json, bytes) = msg.encode();
    // (a) Rust encoding == file.
    if json != v.json {
        fail(
            "JSON encoding of the Rust value differs from the file (expected: file, got: encoder)",
            &v.json,
            &json,
        );
    }
    let hex = to_hex(&bytes);
    if hex != v.bincode_hex {
        let at = from_hex(&v.bincode_hex)
            .map(|file| first_difference(&file, &bytes))
            .unwrap_or(0);
        fail(
            &format!(
                "bincode encoding of the Rust value differs from the file from byte {at} \
                 (expected: file, got: encoder)"
            ),
            &v.bincode_hex,
            &hex,
        );
    }
    // (b) file JSON decodes to the Rust value.
    let what = "decoding the file's JSON (expected: the Rust sample, got: decoder)";
    match msg.decode_json_like(&v.json) {
        Ok(decoded) if decoded == *msg => {}
        Ok(decoded) => fail(what, msg, &decoded),
        Err(e) => fail(what, msg, &e),
    }
    // (c) file bytes decode to the Rust value.
    let what = "decoding the file's bincode bytes (expected: the Rust sample, got: decoder)";
    match from_hex(&v.bincode_hex) {
        Err(e) => fail("bincode_hex is not lowercase hex", &"lowercase hex", &e),
        Ok(file_bytes) => match msg.decode_bincode_like(&file_bytes) {
            Ok(decoded) if decoded == *msg => {}
            Ok(decoded) => fail(what, msg, &decoded),
            Err(e) => fail(what, msg, &e),
        },
    }
    problems
}

fn check_against(text: &str, samples: &[(&'static str, Msg)]) -> Vec<String> {
    let file: GoldenFile = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => return vec![format!("golden file does not parse: {e}")],
    };
    let mut problems = Vec::new();
    // (d) same set of names on both sides, each name once.
    let mut sample_names = HashSet::new();
    for (name, _) in samples {
        if !sample_names.insert(*name) {
            problems.push(format!("sample name `{name}` is used twice in samples()"));
        }
    }
    let mut by_name: BTreeMap<&str, &Vector> = BTreeMap::new();
    for v in &file.vectors {
        if by_name.insert(v.name.as_str(), v).is_some() {
            problems.push(format!("vector `{}` appears twice in the file", v.name));
        }
    }
    for (name, msg) in samples {
        match by_name.get(name) {
            Some(v) => problems.extend(check_vector(v, msg)),
            None => problems.push(format!(
                "vector `{name}`: produced by samples() but missing from the file\n    \
                 expected: {:?}\n    got:      nothing",
                vector_of(name, msg)
            )),
        }
    }
    for v in &file.vectors {
        if !sample_names.contains(v.name.as_str()) {
            problems.push(format!(
                "vector `{}`: in the file but samples() does not produce it",
                v.name
            ));
        }
    }
    // Order, `about` and layout: the file is exactly what blessing writes.
    if problems.is_empty() {
        let expected = render(samples);
        if text != expected {
            let at = first_difference(text.as_bytes(), expected.as_bytes());
            let line = text[..at.min(text.len())].matches('\n').count() + 1;
            problems.push(format!(
                "the file's vectors match, but its text is not what blessing writes \
                 (order, `about` or layout; first difference on line {line})"
            ));
        }
    }
    problems
}

#[test]
fn golden_vectors() {
    let samples = samples();
    let path = golden_path();
    if std::env::var_os("MATCHD_BLESS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the golden directory");
        }
        std::fs::write(&path, render(&samples)).expect("write the golden file");
        eprintln!("wrote {} vectors to {}", samples.len(), path.display());
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\n(create it with MATCHD_BLESS=1 cargo test -p matchd-protocol --test golden)",
            path.display()
        )
    });
    let problems = check_against(&text, &samples);
    assert!(
        problems.is_empty(),
        "{} problem(s) with {}:\n\n{}\n\nIf the protocol change is intended, regenerate the file with\n    \
         MATCHD_BLESS=1 cargo test -p matchd-protocol --test golden\nand review its diff.",
        problems.len(),
        path.display(),
        problems.join("\n\n")
    );
}

// ---- coverage ----
//
// Each function maps a value to its (bincode variant index, JSON tag). No
// wildcard arm: a new variant fails to compile until it is listed here.

fn client_variant(m: &ClientMsg) -> (u32, &'static str) {
    match m {
        ClientMsg::Join { .. } => (0, "join"),
        ClientMsg::Action { .. } => (1, "action"),
        ClientMsg::Query { .. } => (2, "query"),
        ClientMsg::Leave => (3, "leave"),
        ClientMsg::Ping { .. } => (4, "ping"),
        ClientMsg::Resume { .. } => (5, "resume"),
    }
}

fn server_variant(m: &ServerMsg) -> (u32, &'static str) {
    match m {
        ServerMsg::Welcome { .. } => (0, "welcome"),
        ServerMsg::Joined { .. } => (1, "joined"),
        ServerMsg::Event { .. } => (2, "event"),
        ServerMsg::Rejected { .. } => (3, "rejected"),
        ServerMsg::Reply { .. } => (4, "reply"),
        ServerMsg::Ended { .. } => (5, "ended"),
        ServerMsg::Error { .. } => (6, "error"),
        ServerMsg::Pong { .. } => (7, "pong"),
        ServerMsg::Left { .. } => (8, "left"),
        ServerMsg::Resumed { .. } => (9, "resumed"),
        ServerMsg::Draining { .. } => (10, "draining"),
        ServerMsg::Redirect { .. } => (11, "redirect"),
        ServerMsg::Notice { .. } => (12, "notice"),
    }
}

fn action_variant(a: &Action) -> (u32, &'static str) {
    match a {
        Action::Mark { .. } => (0, "mark"),
        Action::Place { .. } => (1, "place"),
        Action::Ready => (2, "ready"),
        Action::Concede => (3, "concede"),
    }
}

fn query_variant(q: &Query) -> (u32, &'static str) {
    match q {
        Query::ValidCells { .. } => (0, "valid_cells"),
        Query::State => (1, "state"),
    }
}

fn reply_variant(r: &Reply) -> (u32, &'static str) {
    match r {
        Reply::Cells { .. } => (0, "cells"),
        Reply::State { .. } => (1, "state"),
    }
}

fn event_variant(e: &Event) -> (u32, &'static str) {
    match e {
        Event::PlayerJoined { .. } => (0, "player_joined"),
        Event::PlayerLeft { .. } => (1, "player_left"),
        Event::PlayerDisconnected { .. } => (2, "player_disconnected"),
        Event::PlayerReconnected { .. } => (3, "player_reconnected"),
        Event::Marked { .. } => (4, "marked"),
        Event::Phase { .. } => (5, "phase"),
        Event::Placed { .. } => (6, "placed"),
        Event::PlayerReady { .. } => (7, "player_ready"),
        Event::Attacked { .. } => (8, "attacked"),
        Event::Destroyed { .. } => (9, "destroyed"),
    }
}

fn state_variant(s: &State) -> (u32, &'static str) {
    match s {
        State::Sandbox { .. } => (0, "sandbox"),
        State::Tactics(_) => (1, "tactics"),
    }
}

/// How many variants bincode's derive gives `T`, read from the error it
/// returns for an impossible variant index (u32::MAX).
fn variant_count<T: bincode::Decode<()> + Debug>() -> u32 {
    let bytes = [252, 0xff, 0xff, 0xff, 0xff];
    match bincode::decode_from_slice::<T, _>(&bytes, bincode::config::standard()) {
        Err(DecodeError::UnexpectedVariant {
            allowed: &AllowedEnumVariants::Range { min: 0, max },
            ..
        }) => max + 1,
        other => panic!(
            "expected bincode to refuse variant index u32::MAX of {} with a 0..=max range, got {other:?}",
            std::any::type_name::<T>()
        ),
    }
}

/// Every sample's enum values, by enum: the variant (index, tag) the
/// `*_variant` function claims, checked against the real encodings: the
/// bincode variant index is the value's leading varint, the tag is its JSON
/// `type` (messages) or `kind` (payloads).
#[derive(Default)]
struct Coverage {
    seen: BTreeMap<&'static str, BTreeSet<u32>>,
    problems: Vec<String>,
}

impl Coverage {
    fn note<T: Serialize + bincode::Encode + Debug>(
        &mut self,
        sample: &str,
        enum_name: &'static str,
        tag_key: &str,
        value: &T,
        (index, tag): (u32, &'static str),
    ) {
        self.seen.entry(enum_name).or_default().insert(index);
        let bytes =
            bincode::encode_to_vec(value, bincode::config::standard()).expect("wire values encode");
        let leading = bincode::decode_from_slice::<u32, _>(&bytes, bincode::config::standard())
            .map(|(i, _)| i)
            .map_err(|e| e.to_string());
        if leading != Ok(index) {
            self.problems.push(format!(
                "sample `{sample}`: {enum_name} variant index\n    expected: {index} (from {enum_name} mapping)\n    got:      {leading:?} (from bincode)"
            ));
        }
        let json = serde_json::to_value(value).expect("wire values serialize");
        let json_tag = json.get(tag_key).and_then(|t| t.as_str());
        if json_tag != Some(tag) {
            self.problems.push(format!(
                "sample `{sample}`: {enum_name} JSON `{tag_key}`\n    expected: {tag:?} (from the mapping)\n    got:      {json_tag:?} (from serde)"
            ));
        }
    }

    fn state(&mut self, sample: &str, s: &State) {
        self.note(sample, "State", "kind", s, state_variant(s));
    }

    fn sample(&mut self, name: &str, msg: &Msg) {
        match msg {
            Msg::Client(m) => {
                self.note(name, "ClientMsg", "type", m, client_variant(m));
                match m {
                    ClientMsg::Action { action, .. } => {
                        self.note(name, "Action", "kind", action, action_variant(action))
                    }
                    ClientMsg::Query { query, .. } => {
                        self.note(name, "Query", "kind", query, query_variant(query))
                    }
                    ClientMsg::Join { .. }
                    | ClientMsg::Leave
                    | ClientMsg::Ping { .. }
                    | ClientMsg::Resume { .. } => {}
                }
            }
            Msg::Server(m) => {
                self.note(name, "ServerMsg", "type", m, server_variant(m));
                match m {
                    ServerMsg::Joined { state, .. } => self.state(name, state),
                    ServerMsg::Event { event, .. } => {
                        self.note(name, "Event", "kind", event, event_variant(event))
                    }
                    ServerMsg::Reply { reply, .. } => {
                        self.note(name, "Reply", "kind", reply, reply_variant(reply));
                        if let Reply::State { state } = reply {
                            self.state(name, state);
                        }
                    }
                    ServerMsg::Welcome { .. }
                    | ServerMsg::Rejected { .. }
                    | ServerMsg::Ended { .. }
                    | ServerMsg::Error { .. }
                    | ServerMsg::Pong { .. }
                    | ServerMsg::Left { .. }
                    | ServerMsg::Resumed { .. }
                    | ServerMsg::Draining { .. }
                    | ServerMsg::Redirect { .. }
                    | ServerMsg::Notice { .. } => {}
                }
            }
        }
    }
}

#[test]
fn samples_cover_every_variant() {
    let mut cov = Coverage::default();
    for (name, msg) in samples() {
        cov.sample(name, &msg);
    }
    let counts = [
        ("ClientMsg", variant_count::<ClientMsg>()),
        ("ServerMsg", variant_count::<ServerMsg>()),
        ("Action", variant_count::<Action>()),
        ("Query", variant_count::<Query>()),
        ("Reply", variant_count::<Reply>()),
        ("Event", variant_count::<Event>()),
        ("State", variant_count::<State>()),
    ];
    let mut problems = cov.problems;
    for (enum_name, count) in counts {
        let seen = cov.seen.remove(enum_name).unwrap_or_default();
        let all: BTreeSet<u32> = (0..count).collect();
        if seen != all {
            let missing: Vec<u32> = all.difference(&seen).copied().collect();
            problems.push(format!(
                "{enum_name} has {count} variants; no sample of variant index(es) {missing:?}\n    \
                 expected: {all:?}\n    got:      {seen:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "coverage problems:\n\n{}\n\nAdd samples in samples() (tests/golden.rs) and bless.",
        problems.join("\n\n")
    );
}

/// The cases where JSON differs by an `Option`, and the varint edges,
/// stay in the samples.
#[test]
fn samples_cover_optional_fields_and_varint_edges() {
    let samples = samples();
    let clients = || {
        samples.iter().filter_map(|(_, m)| match m {
            Msg::Client(c) => Some(c),
            Msg::Server(_) => None,
        })
    };
    let servers = || {
        samples.iter().filter_map(|(_, m)| match m {
            Msg::Server(s) => Some(s),
            Msg::Client(_) => None,
        })
    };
    let tactics_you = |s: &ServerMsg| match s {
        ServerMsg::Joined {
            state: State::Tactics(v),
            ..
        }
        | ServerMsg::Reply {
            reply: Reply::State {
                state: State::Tactics(v),
            },
            ..
        } => Some(v.you.is_some()),
        _ => None,
    };
    let cases: Vec<(&str, bool)> = vec![
        (
            "join with match_id only",
            clients().any(|c| {
                matches!(
                    c,
                    ClientMsg::Join {
                        match_id: Some(_),
                        ruleset: None,
                        ..
                    }
                )
            }),
        ),
        (
            "join with ruleset only",
            clients().any(|c| {
                matches!(
                    c,
                    ClientMsg::Join {
                        match_id: None,
                        ruleset: Some(_),
                        ..
                    }
                )
            }),
        ),
        (
            "join with max_seats",
            clients().any(|c| {
                matches!(
                    c,
                    ClientMsg::Join {
                        max_seats: Some(_),
                        ..
                    }
                )
            }),
        ),
        (
            "event with client_seq",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Event {
                        client_seq: Some(_),
                        ..
                    }
                )
            }),
        ),
        (
            "ended by an action",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Ended {
                        client_seq: Some(_),
                        ..
                    }
                )
            }),
        ),
        (
            "event with seat",
            servers().any(|s| matches!(s, ServerMsg::Event { seat: Some(_), .. })),
        ),
        (
            "event without seat",
            servers().any(|s| matches!(s, ServerMsg::Event { seat: None, .. })),
        ),
        (
            "attacked with target_unit",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Event {
                        event: Event::Attacked {
                            target_unit: Some(_),
                            ..
                        },
                        ..
                    }
                )
            }),
        ),
        (
            "attacked without target_unit",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Event {
                        event: Event::Attacked {
                            target_unit: None,
                            ..
                        },
                        ..
                    }
                )
            }),
        ),
        (
            "redirect with node_id",
            servers().any(|s| matches!(s, ServerMsg::Redirect { node_id: Some(_), .. })),
        ),
        (
            "redirect without node_id",
            servers().any(|s| matches!(s, ServerMsg::Redirect { node_id: None, .. })),
        ),
        (
            "tactics view with you",
            servers().any(|s| tactics_you(s) == Some(true)),
        ),
        (
            "tactics view without you",
            servers().any(|s| tactics_you(s) == Some(false)),
        ),
        (
            "result with winner",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Ended {
                        result: MatchResult {
                            winner: Some(_),
                            ..
                        },
                        ..
                    }
                )
            }),
        ),
        (
            "result without winner",
            servers().any(|s| {
                matches!(
                    s,
                    ServerMsg::Ended {
                        result: MatchResult { winner: None, .. },
                        ..
                    }
                )
            }),
        ),
        (
            "negative coordinate (zigzag)",
            clients().any(|c| {
                matches!(c, ClientMsg::Action { action: Action::Mark { x, y }, .. } if *x < 0 || *y < 0)
            }),
        ),
    ];
    let mut problems: Vec<String> = cases
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(case, _)| format!("no sample has: {case}"))
        .collect();
    let seqs: BTreeSet<u64> = clients()
        .filter_map(|c| match c {
            ClientMsg::Action { client_seq, .. } | ClientMsg::Query { client_seq, .. } => {
                Some(*client_seq)
            }
            _ => None,
        })
        .collect();
    let edges = [
        250,
        251,
        65_535,
        65_536,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        MAX_SAFE_JS,
    ];
    for edge in edges {
        if !seqs.contains(&edge) {
            problems.push(format!("no client sample has client_seq {edge}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn hex_helpers_round_trip() {
    let bytes = [0u8, 1, 0x7f, 0xab, 0xff];
    assert_eq!(to_hex(&bytes), "00017fabff");
    assert_eq!(from_hex("00017fabff"), Ok(bytes.to_vec()));
    assert!(from_hex("0A").is_err());
    assert!(from_hex("abc").is_err());
}
