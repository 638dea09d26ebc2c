// Node-side tests of the matchd JavaScript client (src/web/matchd.js):
// the codecs against the golden vectors, then the client against real
// matchd nodes (one node; a Redis cluster of nodes) in both encodings, and
// a scripted fake server for the reactions a real node does not produce on
// demand (slow_consumer, a gap, match_moved, match_recovering).
//
//   cd tests/web && npm test        (MATCHD_BIN picks the server binary)

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import nodeHttp from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { WebSocket, WebSocketServer } from "ws";

import {
  MatchdClient,
  MatchdError,
  PROTOCOL_VERSION,
  decodeBincode,
  decodeJson,
  encodeBincode,
  encodeJson,
} from "../../src/web/matchd.js";
import {
  ADMIN_KEY,
  MemoryStorage,
  WAIT_MS,
  createMatch,
  eventually,
  freePort,
  http,
  startCluster,
  startNode,
  stopAll,
} from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = JSON.parse(
  fs.readFileSync(path.join(here, "../../actors/protocol/golden/vectors.json"), "utf8"),
).vectors;

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

/** Asserts that `promise` rejects with a MatchdError of `code`. */
async function rejectsWith(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof MatchdError, `expected a MatchdError, got ${e}`);
    assert.equal(e.code, code, `expected code ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

/** Asserts that `fn` throws a MatchdError of `code`. */
function throwsWith(fn, code) {
  assert.throws(fn, (e) => e instanceof MatchdError && e.code === code);
}

/** Every seq is one more than the one before. */
function assertContiguous(seqs, what) {
  for (let i = 1; i < seqs.length; i++) {
    assert.equal(seqs[i], seqs[i - 1] + 1, `${what}: seq ${seqs[i]} after ${seqs[i - 1]} in ${seqs.join(",")}`);
  }
}

// ---------------------------------------------------------------------------
// Clients under test
// ---------------------------------------------------------------------------

const liveClients = new Set();

/**
 * A MatchdClient with a recording of everything it emits and access to its
 * sockets: `sockets` (every ws it opened), `gate(fn)` rewrites the URL of
 * the next sockets (e.g. to a dead port, to hold a reconnect back), and
 * `raw` (every raw message: { binary }).
 */
function makeClient(base, options = {}) {
  const sockets = [];
  const raw = [];
  let rewrite = null;
  class TrackedWebSocket extends WebSocket {
    constructor(url, ...rest) {
      super(rewrite ? rewrite(url) : url, ...rest);
      sockets.push(this);
      this.on("message", (_data, isBinary) => raw.push({ binary: isBinary }));
    }
  }
  const client = new MatchdClient({
    url: base,
    WebSocket: TrackedWebSocket,
    storage: new MemoryStorage(),
    reconnectMaxMs: 400,
    ...options,
  });
  const rec = { statuses: [], events: [], joined: [], ended: [], left: [], notices: [], errors: [], frames: [] };
  client.on("status", (s) => rec.statuses.push(s));
  client.on("event", (e) => rec.events.push(e));
  client.on("joined", (j) => rec.joined.push(j));
  client.on("ended", (e) => rec.ended.push(e));
  client.on("left", (l) => rec.left.push(l));
  client.on("notice", (n) => rec.notices.push(n));
  client.on("error", (e) => rec.errors.push(e));
  client.on("frame", (f) => rec.frames.push(f));
  liveClients.add(client);
  return {
    client,
    rec,
    sockets,
    raw,
    gate(fn) {
      rewrite = fn;
    },
    seqs: () => rec.events.map((e) => e.seq),
  };
}

function closeClients() {
  for (const c of liveClients) c.close();
  liveClients.clear();
}

/** A fresh sandbox match of `seats` seats on `base` (POST /v1/matches). */
async function newMatch(base, ruleset = "sandbox", seats) {
  const body = seats === undefined ? { ruleset } : { ruleset, max_seats: seats };
  return createMatch(base, body);
}

/** Two connected clients seated in a fresh match; waits until both saw both joins. */
async function pair(base, encoding, { ruleset = "sandbox", options = {} } = {}) {
  const id = await newMatch(base, ruleset, ruleset === "sandbox" ? 2 : undefined);
  const a = makeClient(base, { encoding, ...options });
  const b = makeClient(base, { encoding, ...options });
  await a.client.connect();
  await b.client.connect();
  const ja = await a.client.join(id);
  const jb = await b.client.join(id);
  return { id, a, b, ja, jb };
}

after(async () => {
  closeClients();
  await stopAll();
});

// ---------------------------------------------------------------------------
// Codecs
// ---------------------------------------------------------------------------

describe("golden vectors", () => {
  it("cover both directions", () => {
    assert.ok(VECTORS.some((v) => v.direction === "client"));
    assert.ok(VECTORS.some((v) => v.direction === "server"));
    assert.equal(PROTOCOL_VERSION, 2);
  });

  for (const v of VECTORS) {
    if (v.direction === "client") {
      it(`${v.name}: encodeBincode and encodeJson give the exact bytes and text`, () => {
        const msg = JSON.parse(v.json);
        assert.equal(hex(encodeBincode(msg)), v.bincode_hex);
        assert.equal(encodeJson(msg), v.json);
      });
    } else {
      it(`${v.name}: decodeBincode equals decodeJson`, () => {
        const fromBin = decodeBincode(unhex(v.bincode_hex));
        assert.deepStrictEqual(fromBin, decodeJson(v.json));
        // Every frame type the server sends is one the client knows.
        assert.equal(fromBin.type, JSON.parse(v.json).type);
      });
    }
  }
});

describe("bincode decoder bounds", () => {
  const server = VECTORS.filter((v) => v.direction === "server");

  it("refuses every truncation of every server vector, except the protocol-1 layout", () => {
    // Protocol 2 appended fields to welcome, event and ended; a frame that
    // ends right before them is a protocol-1 frame and decodes with them absent.
    for (const v of server) {
      const full = unhex(v.bincode_hex);
      for (let n = 0; n < full.length; n++) {
        let frame;
        try {
          frame = decodeBincode(full.subarray(0, n));
        } catch (e) {
          assert.ok(e instanceof MatchdError, `${v.name}[..${n}]: ${e}`);
          assert.equal(e.code, "malformed_binary", `${v.name}[..${n}]`);
          continue;
        }
        const expected = decodeJson(v.json);
        if (frame.type === "welcome") expected.protocol = 1;
        if (frame.type === "event") expected.client_seq = null;
        if (frame.type === "ended") Object.assign(expected, { seat: null, client_seq: null });
        assert.deepStrictEqual(frame, expected, `${v.name}[..${n}] decoded as ${JSON.stringify(frame)}`);
      }
    }
  });

  it("reads the protocol-1 layout with the new fields absent", () => {
    assert.deepStrictEqual(decodeBincode(unhex("002a0b6e6f64652d613162326333fbe803")), {
      type: "welcome", player_id: 42, node_id: "node-a1b2c3", heartbeat_ms: 1000, protocol: 1,
    });
    assert.deepStrictEqual(decodeBincode(unhex("0207fbfb0001fb07ff")), {
      type: "event", match_id: 7, seq: 251, seat: 251, event: { kind: "player_ready", seat: 255 }, client_seq: null,
    });
  });

  it("refuses trailing bytes", () => {
    throwsWith(() => decodeBincode(unhex("072a00")), "malformed_binary");
    throwsWith(() => decodeBincode(unhex("0207fbfb0001fb07ff0000")), "malformed_binary");
  });

  it("refuses lengths beyond the frame before reading them", () => {
    // notice claiming a 300-byte message in a 1-byte body
    throwsWith(() => decodeBincode(unhex("0cfb2c0130")), "malformed_binary");
    // notice claiming 2^53-1 bytes
    throwsWith(() => decodeBincode(unhex("0cfdffffffffffff1f00")), "malformed_binary");
    // reply cells claiming 65536 pairs in 2 bytes
    throwsWith(() => decodeBincode(unhex("040700fc000001000000")), "malformed_binary");
    // ended with a scores vector claiming 251 elements
    throwsWith(() => decodeBincode(unhex(`05070c0009${hex(Buffer.from("abandoned"))}fbfb00`)), "malformed_binary");
  });

  it("refuses varint tags wider than the field, 0xfe, 0xff and u64 values beyond 2^53", () => {
    // event marked with count (u32) written as a u64 varint
    throwsWith(() => decodeBincode(unhex("0207050100040402fd2c0100000000000000")), "malformed_binary");
    // pong nonce (u64) with the u128 tag, and with 0xff
    throwsWith(() => decodeBincode(unhex("07fe00000000000000000000000000000000")), "malformed_binary");
    throwsWith(() => decodeBincode(unhex("07ff")), "malformed_binary");
    // pong nonce 2^53 is not exact as a JS number
    throwsWith(() => decodeBincode(unhex("07fd0000000000002000")), "malformed_binary");
    // the longest allowed: 2^53 - 1
    assert.deepStrictEqual(decodeBincode(unhex("07fdffffffffffff1f00")), { type: "pong", nonce: 2 ** 53 - 1 });
  });

  it("refuses bad bool and Option bytes and invalid UTF-8", () => {
    // joined sandbox, one seat with connected = 2
    throwsWith(() => decodeBincode(unhex("01070773616e64626f780003000a060001002a02")), "malformed_binary");
    // redirect whose node_id Option byte is 2
    throwsWith(() => decodeBincode(unhex("0b07017702")), "malformed_binary");
    // notice with a lone continuation byte
    throwsWith(() => decodeBincode(unhex("0c0180")), "malformed_binary");
  });

  it("tells an unknown message (skip it) from an unknown payload variant (unreadable)", () => {
    throwsWith(() => decodeBincode(unhex("0d00")), "unknown_type");
    throwsWith(() => decodeBincode(unhex("fb0001")), "unknown_type");
    // event with Event variant 10
    throwsWith(() => decodeBincode(unhex("020701000a00")), "malformed_binary");
  });

  it("accepts ArrayBuffer, Buffer and typed-array views", () => {
    const bytes = unhex("072a");
    assert.deepStrictEqual(decodeBincode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 2)), { type: "pong", nonce: 42 });
    assert.deepStrictEqual(decodeBincode(Buffer.from("072a", "hex")), { type: "pong", nonce: 42 });
    const padded = new Uint8Array([9, 7, 0x2a, 9]);
    assert.deepStrictEqual(decodeBincode(padded.subarray(1, 3)), { type: "pong", nonce: 42 });
  });
});

describe("encoders", () => {
  it("refuse what the server could not decode", () => {
    const bad = [
      { type: "action", client_seq: 1, action: { kind: "mark", x: 0.5, y: 0 } },
      { type: "action", client_seq: 1, action: { kind: "mark", x: 2 ** 31, y: 0 } },
      { type: "action", client_seq: -1, action: { kind: "ready" } },
      { type: "action", client_seq: 2 ** 53, action: { kind: "ready" } },
      { type: "action", client_seq: 1, action: { kind: "fly" } },
      { type: "action", client_seq: 1 },
      { type: "query", client_seq: 1, query: { kind: "valid_cells", card: -1 } },
      { type: "join", ruleset: "sandbox", max_seats: 256 },
      { type: "join", ruleset: 5 },
      { type: "teleport" },
      null,
    ];
    for (const frame of bad) {
      throwsWith(() => encodeBincode(frame), "invalid_message");
      throwsWith(() => encodeJson(frame), "invalid_message");
    }
  });

  it("write JSON in the server's canonical form (tag first, declaration order, absent Options omitted)", () => {
    assert.equal(
      encodeJson({ action: { y: -1, x: 3, kind: "mark" }, client_seq: 9, type: "action" }),
      '{"type":"action","client_seq":9,"action":{"kind":"mark","x":3,"y":-1}}',
    );
    assert.equal(encodeJson({ type: "join", match_id: null, ruleset: "tactics", max_seats: null }), '{"type":"join","ruleset":"tactics"}');
    assert.equal(hex(encodeBincode({ type: "join", ruleset: "tactics" })), "000001077461637469637300");
  });

  it("decodeJson: absent Options are null, unknown fields and types pass through, bad text is refused", () => {
    assert.deepStrictEqual(decodeJson('{"type":"event","match_id":1,"seq":2,"event":{"kind":"player_left","seat":0},"extra":true}'), {
      type: "event", match_id: 1, seq: 2, seat: null, event: { kind: "player_left", seat: 0 }, client_seq: null, extra: true,
    });
    assert.deepStrictEqual(decodeJson('{"type":"future_thing","x":1}'), { type: "future_thing", x: 1 });
    assert.deepStrictEqual(decodeJson('{"type":"welcome","player_id":1,"node_id":"n","heartbeat_ms":5}').protocol, 1);
    throwsWith(() => decodeJson("{"), "malformed_json");
    throwsWith(() => decodeJson("[1]"), "invalid_message");
    throwsWith(() => decodeJson('{"x":1}'), "missing_type");
  });
});

// ---------------------------------------------------------------------------
// One real node
// ---------------------------------------------------------------------------

describe("one node", () => {
  let node;
  before(async () => {
    // A short client timeout proves the idle ping keeps a live client connected.
    node = await startNode({
      id: "node-web",
      env: { MATCHD_HEARTBEAT_MS: "400", MATCHD_CLIENT_TIMEOUT_MS: "1500" },
    });
  });
  after(closeClients);

  for (const encoding of ["json", "bincode"]) {
    describe(encoding, () => {
      it("connect: anonymous session, welcome of protocol 2, status connecting then connected", async () => {
        const storage = new MemoryStorage();
        const t = makeClient(node.base, { encoding, storage });
        assert.equal(t.client.status, "idle");
        const s = await t.client.session();
        assert.match(s.token, /^[0-9a-f]{32}$/);
        const welcome = await t.client.connect();
        assert.equal(welcome.type, "welcome");
        assert.equal(welcome.protocol, 2);
        assert.equal(welcome.node_id, "node-web");
        assert.equal(welcome.player_id, s.playerId);
        assert.equal(t.client.playerId, s.playerId);
        assert.equal(t.client.token, s.token);
        assert.equal(t.client.status, "connected");
        assert.equal(t.client.url, node.base);
        assert.deepStrictEqual(t.rec.statuses.map((x) => x.status), ["connecting", "connected"]);
        assert.equal(JSON.parse(storage.getItem("matchd:session")).token, s.token);
        // The socket asked for protocol 2 and this encoding.
        const url = new URL(t.sockets[0].url);
        assert.equal(url.searchParams.get("protocol"), "2");
        assert.equal(url.searchParams.get("encoding"), encoding);
        assert.equal(url.pathname, "/v1/ws");
        // connect() again is a no-op.
        assert.equal(await t.client.connect(), welcome);
        assert.equal(t.sockets.length, 1);
        t.client.close();
        assert.equal(t.client.status, "closed");
      });

      it("quick-join with maxSeats fills one match, then opens another; everyone sees player_joined", async () => {
        const seats = encoding === "json" ? 3 : 4; // sizes no other test uses
        const players = [];
        for (let i = 0; i < seats + 1; i++) {
          const t = makeClient(node.base, { encoding });
          await t.client.connect();
          t.joinedFrame = await t.client.quickJoin("sandbox", { maxSeats: seats });
          players.push(t);
        }
        const first = players[0].joinedFrame;
        assert.equal(first.type, "joined");
        assert.equal(first.ruleset, "sandbox");
        assert.equal(first.state.kind, "sandbox");
        for (let i = 0; i < seats; i++) {
          const t = players[i];
          assert.equal(t.joinedFrame.match_id, first.match_id);
          assert.equal(t.joinedFrame.seat, i);
          assert.equal(t.client.matchId, first.match_id);
          assert.equal(t.client.seat, i);
          assert.equal(t.client.status, "in_match");
          assert.deepStrictEqual(t.rec.joined, [t.joinedFrame]);
        }
        const extra = players[seats];
        assert.notEqual(extra.joinedFrame.match_id, first.match_id, "a full match takes nobody");
        assert.equal(extra.joinedFrame.seat, 0);
        // The first player sees every join, with no seat and no client_seq.
        await eventually("player_joined of every seat", () =>
          players[0].rec.events.filter((e) => e.event.kind === "player_joined").length === seats);
        for (const e of players[0].rec.events) {
          assert.equal(e.seat, null);
          assert.equal(e.client_seq, null);
        }
        assertContiguous(players[0].seqs(), "first player");
        for (const t of players) t.client.close();
      });

      it("act() resolves with the event it caused (seat and client_seq), also many at once from two players", async () => {
        const { a, b } = await pair(node.base, encoding);
        const marks = (n) => Array.from({ length: n }, (_, i) => ({ kind: "mark", x: i % 5, y: Math.floor(i / 5) % 3 }));
        const pa = marks(10).map((m) => a.client.act(m));
        const pb = marks(10).map((m) => b.client.act(m));
        const [ra, rb] = await Promise.all([Promise.all(pa), Promise.all(pb)]);
        // Both clients number their actions 1, 2, ...: the seat tells them apart.
        ra.forEach((ev, i) => {
          assert.equal(ev.type, "event");
          assert.equal(ev.seat, a.client.seat);
          assert.equal(ev.client_seq, i + 1);
          assert.equal(ev.event.kind, "marked");
          assert.deepStrictEqual([ev.event.x, ev.event.y], [i % 5, Math.floor(i / 5) % 3]);
        });
        rb.forEach((ev, i) => {
          assert.equal(ev.seat, b.client.seat);
          assert.equal(ev.client_seq, i + 1);
        });
        // Both saw the same stream, gapless, each event once.
        await eventually("both clients at the same seq", () => a.client.lastSeq === b.client.lastSeq && a.client.lastSeq > 0);
        assertContiguous(a.seqs(), "a");
        const bTail = b.rec.events.filter((e) => e.seq > a.rec.events[0].seq - 1);
        assert.deepStrictEqual(
          a.rec.events.filter((e) => e.seq >= bTail[0].seq),
          bTail,
        );
        // The frames were of the chosen encoding.
        assert.ok(a.raw.length > 0 && a.raw.every((m) => m.binary === (encoding === "bincode")));
        a.client.close();
        b.client.close();
      });

      it("rejected actions and queries reject with the server's code; the match goes on", async () => {
        const { a, b } = await pair(node.base, encoding);
        await rejectsWith(a.client.act({ kind: "mark", x: 9, y: 9 }), "out_of_board");
        await rejectsWith(a.client.act({ kind: "mark", x: -1, y: 0 }), "out_of_board");
        await rejectsWith(a.client.act({ kind: "place", card: 1, x: 0, y: 0 }), "unknown_action");
        await rejectsWith(a.client.query({ kind: "valid_cells", card: 1 }), "unknown_query");
        const ev = await a.client.act({ kind: "mark", x: 4, y: 2 });
        assert.deepStrictEqual(ev.event, { kind: "marked", x: 4, y: 2, count: 1 });
        a.client.close();
        b.client.close();
      });

      it("query state answers with the board as this seat sees it", async () => {
        const { a, b } = await pair(node.base, encoding);
        await a.client.act({ kind: "mark", x: 1, y: 2 });
        await b.client.act({ kind: "mark", x: 1, y: 2 });
        const reply = await a.client.query({ kind: "state" });
        assert.equal(reply.kind, "state");
        assert.equal(reply.state.kind, "sandbox");
        assert.equal(reply.state.width, 5);
        assert.equal(reply.state.height, 3);
        assert.equal(reply.state.cells[2 * 5 + 1], 2);
        assert.equal(reply.state.cells.reduce((s, c) => s + c, 0), 2);
        a.client.close();
        b.client.close();
      });

      it("join errors carry the server's code and leave the client usable", async () => {
        const t = makeClient(node.base, { encoding });
        await t.client.connect();
        await rejectsWith(t.client.join(null), "invalid_join");
        await rejectsWith(t.client.quickJoin("chess"), "unknown_ruleset");
        await rejectsWith(t.client.quickJoin("sandbox", { maxSeats: 9 }), "invalid_max_seats");
        await rejectsWith(t.client.quickJoin("sandbox", { maxSeats: 0 }), "invalid_max_seats");
        await rejectsWith(t.client.quickJoin("tactics", { maxSeats: 3 }), "invalid_max_seats");
        await rejectsWith(t.client.join(987654321), "match_not_found");
        await rejectsWith(t.client.quickJoin("sandbox", { maxSeats: 256 }), "invalid_message"); // not a u8: never sent
        assert.equal(t.client.status, "connected");
        const id = await newMatch(node.base, "sandbox", 2);
        const joined = await t.client.join(id);
        assert.equal(joined.match_id, id);
        await rejectsWith(t.client.quickJoin("sandbox"), "already_in_match");
        await rejectsWith(t.client.join(id), "already_in_match");
        assert.equal(t.client.matchId, id);
        assert.equal(t.client.status, "in_match");
        assert.equal(t.sockets.length, 1, "errors do not cost the connection");
        t.client.close();
      });

      it("not_in_match for act, query and leave without a seat; invalid actions are refused before sending", async () => {
        const t = makeClient(node.base, { encoding });
        await rejectsWith(t.client.act({ kind: "mark", x: 0, y: 0 }), "not_connected");
        await t.client.connect();
        await rejectsWith(t.client.act({ kind: "mark", x: 0, y: 0 }), "not_in_match");
        await rejectsWith(t.client.query({ kind: "state" }), "not_in_match");
        await rejectsWith(t.client.leave(), "not_in_match");
        await rejectsWith(t.client.act({ kind: "mark", x: 0.5, y: 0 }), "invalid_message");
        await rejectsWith(t.client.act({ kind: "fly" }), "invalid_message");
        assert.equal(t.rec.errors.length, 0, "answers to calls are not `error` events");
        t.client.close();
        await rejectsWith(t.client.act({ kind: "mark", x: 0, y: 0 }), "closed");
        await rejectsWith(t.client.connect(), "closed");
      });

      it("leave resolves on left; the other player sees player_left", async () => {
        const { id, a, b } = await pair(node.base, encoding);
        const seat = a.client.seat;
        await a.client.leave();
        assert.equal(a.client.matchId, null);
        assert.equal(a.client.status, "connected");
        assert.deepStrictEqual(a.rec.left, [{ type: "left", match_id: id }]);
        assert.equal(a.client._storage.getItem("matchd:match"), null);
        await eventually("player_left at b", () =>
          b.rec.events.some((e) => e.event.kind === "player_left" && e.event.seat === seat));
        a.client.close();
        b.client.close();
      });

      it("pings every heartbeat when idle, so the server's client timeout never fires", async () => {
        const t = makeClient(node.base, { encoding });
        await t.client.connect();
        // The node closes clients silent for 1.5 s; 5 pongs take ~2 s.
        await eventually("five pongs", () => t.rec.frames.filter((f) => f.type === "pong").length >= 5, { timeoutMs: 6000 });
        assert.equal(t.sockets.length, 1);
        assert.equal(t.client.status, "connected");
        t.client.close();
      });

      it("events() yields every event in order and ends on close()", async () => {
        const { a, b } = await pair(node.base, encoding);
        const seen = [];
        const done = (async () => {
          for await (const e of a.client.events()) seen.push(e);
        })();
        for (let i = 0; i < 3; i++) await b.client.act({ kind: "mark", x: i, y: 0 });
        await eventually("three marks through the iterator", () => seen.filter((e) => e.event.kind === "marked").length === 3);
        a.client.close();
        await done;
        assertContiguous(seen.map((e) => e.seq), "iterator");
        assert.deepStrictEqual(seen, a.rec.events.filter((e) => e.seq >= seen[0].seq));
        b.client.close();
      });

      it("a cut socket reconnects and resumes: no event missed or repeated; an action sent meanwhile resolves", async () => {
        const { a, b } = await pair(node.base, encoding);
        await a.client.act({ kind: "mark", x: 0, y: 0 });
        await eventually("b caught up", () => b.client.lastSeq === a.client.lastSeq);
        const before = a.client.lastSeq;
        // Hold the reconnect back (new sockets go to a dead port) while b plays on.
        const dead = await freePort();
        a.gate((url) => url.replace(`:${node.port}/`, `:${dead}/`));
        a.sockets[0].terminate();
        await eventually("a reconnecting", () => a.client.status === "reconnecting");
        const pending = a.client.act({ kind: "mark", x: 3, y: 1 }, { timeoutMs: 10000 });
        for (let i = 0; i < 5; i++) await b.client.act({ kind: "mark", x: i, y: 2 });
        await eventually("a's failed reconnect attempts", () => a.sockets.length >= 2);
        a.gate(null);
        const ev = await pending;
        assert.equal(ev.seat, a.client.seat);
        assert.equal(ev.client_seq, 2);
        assert.deepStrictEqual(ev.event, { kind: "marked", x: 3, y: 1, count: 1 });
        await eventually("a and b at the same seq", () => a.client.lastSeq === b.client.lastSeq);
        assertContiguous(a.seqs(), "a after the cut");
        const missed = a.rec.events.filter((e) => e.seq > before);
        assert.ok(missed.filter((e) => e.event.kind === "marked" && e.seat === b.client.seat).length === 5, "b's marks reached a");
        assert.deepStrictEqual(a.rec.events.filter((e) => e.seq > before), b.rec.events.filter((e) => e.seq > before));
        assert.equal(a.rec.joined.length, 1, "resumed, not a new snapshot");
        const statuses = a.rec.statuses.map((s) => s.status);
        assert.ok(statuses.includes("reconnecting"));
        assert.equal(a.client.status, "in_match");
        assert.equal(a.rec.statuses.at(-1).reason, "resumed");
        a.client.close();
        b.client.close();
      });

      it("a reloaded page (a new client on the same storage) resumes the match; the old one is replaced", async () => {
        const storage = new MemoryStorage();
        const id = await newMatch(node.base, "sandbox", 2);
        const a = makeClient(node.base, { encoding, storage });
        const b = makeClient(node.base, { encoding });
        await a.client.connect();
        await b.client.connect();
        await a.client.join(id);
        await b.client.join(id);
        await a.client.act({ kind: "mark", x: 0, y: 1 });
        await b.client.act({ kind: "mark", x: 1, y: 1 });
        await eventually("a saw b's mark", () => a.client.lastSeq === b.client.lastSeq);
        const stored = JSON.parse(storage.getItem("matchd:match"));
        assert.equal(stored.match_id, id);
        assert.equal(stored.last_seq, a.client.lastSeq);

        const a2 = makeClient(node.base, { encoding, storage });
        await a2.client.connect();
        assert.equal(a2.client.playerId, a.client.playerId);
        assert.equal(a2.client.matchId, id);
        assert.equal(a2.client.seat, a.client.seat);
        assert.equal(a2.client.status, "in_match");
        assert.equal(a2.rec.joined.length, 0, "resumed from the stored seq, no snapshot needed");
        await eventually("the old page is replaced", () => a.client.status === "closed");
        assert.equal(a.rec.statuses.at(-1).reason, "replaced");

        const ev = await a2.client.act({ kind: "mark", x: 2, y: 1 });
        assert.equal(ev.seat, a.client.seat);
        await b.client.act({ kind: "mark", x: 3, y: 1 });
        await eventually("a2 and b at the same seq", () => a2.client.lastSeq === b.client.lastSeq);
        assert.ok(a2.rec.events[0].seq === stored.last_seq + 1, `a2 starts right after the stored seq: ${a2.seqs()}`);
        assertContiguous(a2.seqs(), "a2");
        assert.equal(a.sockets.length, 1, "a replaced client does not reconnect");
        a2.client.close();
        b.client.close();
      });

      it("tactics: valid_cells, place, ready and refusals; concede resolves on ended", async () => {
        const id = await newMatch(node.base, "tactics");
        const a = makeClient(node.base, { encoding });
        const b = makeClient(node.base, { encoding });
        await a.client.connect();
        await b.client.connect();
        const ja = await a.client.join(id);
        assert.equal(ja.state.kind, "tactics");
        assert.equal(ja.state.phase, "waiting");
        assert.equal(ja.state.you, ja.seat);
        await rejectsWith(a.client.act({ kind: "concede" }), "wrong_phase");
        await rejectsWith(a.client.act({ kind: "mark", x: 0, y: 0 }), "unknown_action");
        const jb = await b.client.join(id);
        await eventually("the deploy phase", () => a.rec.events.some((e) => e.event.kind === "phase" && e.event.phase === "deploy"));

        const state = (await a.client.query({ kind: "state" })).state;
        assert.equal(state.phase, "deploy");
        assert.ok(state.hand.length > 0);
        // A card that can be placed now (a lancer needs an ally first).
        let card;
        let cells;
        for (const c of state.hand) {
          cells = await a.client.query({ kind: "valid_cells", card: c.card });
          assert.equal(cells.kind, "cells");
          card = c.card;
          if (cells.cells.length > 0) break;
        }
        assert.ok(cells.cells.length > 0, JSON.stringify(state.hand));
        await rejectsWith(a.client.query({ kind: "valid_cells", card: 99999 }), "unknown_card");
        await rejectsWith(a.client.act({ kind: "place", card: 99999, x: 0, y: 0 }), "unknown_card");
        await rejectsWith(a.client.act({ kind: "place", card, x: 7, y: 0 }), "out_of_board");
        const [x, y] = cells.cells[0];
        const placed = await a.client.act({ kind: "place", card, x, y });
        assert.equal(placed.event.kind, "placed");
        assert.equal(placed.event.seat, ja.seat);
        assert.equal(placed.event.card, card);
        assert.deepStrictEqual([placed.event.x, placed.event.y], [x, y]);
        const ready = await a.client.act({ kind: "ready" });
        assert.deepStrictEqual(ready.event, { kind: "player_ready", seat: ja.seat });
        await rejectsWith(a.client.act({ kind: "ready" }), "already_ready");

        // b concedes: no event, the match ends; the promise resolves with `ended`.
        const ended = await b.client.act({ kind: "concede" });
        assert.equal(ended.type, "ended");
        assert.equal(ended.match_id, id);
        assert.equal(ended.seat, jb.seat);
        assert.equal(ended.client_seq, 1);
        assert.equal(ended.result.reason, "concede");
        assert.equal(ended.result.winner, ja.seat);
        assert.equal(ended.seq, b.client.lastSeq + 1, "ended is one past the last event");
        await eventually("a saw the end", () => a.rec.ended.length === 1);
        assert.deepStrictEqual(a.rec.ended[0], ended);
        for (const t of [a, b]) {
          assert.equal(t.client.matchId, null);
          assert.equal(t.client.status, "connected");
          assert.equal(t.client._storage.getItem("matchd:match"), null);
        }
        await rejectsWith(b.client.act({ kind: "concede" }), "not_in_match");
        a.client.close();
        b.client.close();
      });

      it("operators: notice, the end of a match, and kicked (closed, no reconnect)", async () => {
        const { id, a, b } = await pair(node.base, encoding);
        const msg = `hello ${encoding} — ünïcode`;
        assert.equal((await http("POST", `${node.base}/admin/broadcast`, { key: ADMIN_KEY, body: { message: msg } })).status, 202);
        await eventually("the notice", () => a.rec.notices.length === 1);
        assert.deepStrictEqual(a.rec.notices[0], { type: "notice", message: msg });

        const end = await http("POST", `${node.base}/admin/matches/${id}/end`, { key: ADMIN_KEY, body: { reason: "test_over" } });
        assert.equal(end.status, 202);
        await eventually("ended at both", () => a.rec.ended.length === 1 && b.rec.ended.length === 1);
        assert.equal(a.rec.ended[0].result.reason, "test_over");
        assert.equal(a.rec.ended[0].seat, null);
        assert.equal(a.rec.ended[0].client_seq, null);
        assert.equal(a.client.status, "connected");

        const kick = await http("POST", `${node.base}/admin/kick`, { key: ADMIN_KEY, body: { player_id: b.client.playerId } });
        assert.equal(kick.status, 202);
        await eventually("b closed", () => b.client.status === "closed");
        assert.equal(b.rec.statuses.at(-1).reason, "kicked");
        assert.equal(b.rec.errors.length, 0, "kicked shows as status only");
        // Nothing reconnects: one ping period later there is still one socket.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(b.sockets.length, 1);
        assert.equal(b.client.status, "closed");
        a.client.close();
      });
    });
  }

  it("a token the game gives is used as is; a token the server forgot is replaced by a new session", async () => {
    const first = makeClient(node.base);
    const { token, playerId } = await first.client.session();
    first.client.close();
    const given = makeClient(node.base, { token, storage: null });
    const s = await given.client.session();
    assert.deepStrictEqual(s, { token, playerId });
    await given.client.connect();
    assert.equal(given.client.playerId, playerId);
    given.client.close();

    const bad = makeClient(node.base, { token: "0".repeat(32) });
    await rejectsWith(bad.client.connect(), "unauthorized");
    assert.equal(bad.client.status, "closed");

    const storage = new MemoryStorage();
    storage.setItem("matchd:session", JSON.stringify({ url: node.base, token: "f".repeat(32), player_id: 1 }));
    storage.setItem("matchd:match", JSON.stringify({ token: "f".repeat(32), match_id: 5, seat: 0, last_seq: 3 }));
    const fresh = makeClient(node.base, { storage });
    await fresh.client.connect();
    assert.notEqual(fresh.client.token, "f".repeat(32));
    assert.equal(fresh.client.matchId, null, "the forgotten player's match is not resumed");
    assert.equal(storage.getItem("matchd:match"), null);
    fresh.client.close();
  });

  it("a stored match that ended is forgotten on connect (status connected)", async () => {
    const storage = new MemoryStorage();
    const id = await newMatch(node.base, "sandbox", 2);
    const a = makeClient(node.base, { storage });
    const b = makeClient(node.base);
    await a.client.connect();
    await b.client.connect();
    await a.client.join(id);
    await b.client.join(id);
    a.client.close(); // keeps the stored match
    assert.equal(JSON.parse(storage.getItem("matchd:match")).match_id, id);
    await http("POST", `${node.base}/admin/matches/${id}/end`, { key: ADMIN_KEY, body: {} });
    await eventually("b saw the end", () => b.rec.ended.length === 1);
    const again = makeClient(node.base, { storage });
    await again.client.connect();
    assert.equal(again.client.matchId, null);
    assert.equal(again.client.status, "connected");
    assert.equal(storage.getItem("matchd:match"), null);
    again.client.close();
    b.client.close();
  });

  it("draining: the match goes on; the next join reconnects through the base URL and gets `draining`", async () => {
    // A node of its own: drained with a seated player it stays up (busy).
    const d = await startNode({ id: "node-drain", env: { MATCHD_DRAIN_TIMEOUT_MS: "30000" } });
    const { a, b } = await pair(d.base, "json");
    const c = makeClient(d.base, { encoding: "bincode" });
    await c.client.connect();
    assert.equal((await http("POST", `${d.base}/admin/drain`, { key: ADMIN_KEY })).status, 202);
    await eventually("c heard draining", () => c.rec.statuses.some((s) => s.reason === "draining"));
    assert.equal(c.client.status, "connected");
    await eventually("a heard draining", () => a.rec.statuses.some((s) => s.reason === "draining"));
    assert.equal(a.client.status, "in_match");
    const ev = await a.client.act({ kind: "mark", x: 0, y: 0 });
    assert.equal(ev.event.kind, "marked");
    // The "load balancer" is this same draining node: after a few tries the join fails.
    await rejectsWith(c.client.quickJoin("sandbox"), "draining");
    assert.ok(c.sockets.length >= 2, "the join went back through the base URL");
    for (const t of [a, b, c]) t.client.close();
    await d.kill9();
  });

  it("gives up after reconnectGiveUpMs without a connection; pending calls reject", async () => {
    const g = await startNode({ id: "node-gone" });
    const { a } = await pair(g.base, "json", { options: { reconnectGiveUpMs: 1500 } });
    await g.kill9();
    await eventually("a reconnecting", () => a.client.status === "reconnecting");
    const pending = a.client.act({ kind: "mark", x: 0, y: 0 }, { timeoutMs: 20000 });
    await rejectsWith(pending, "gave_up");
    assert.equal(a.client.status, "closed");
    assert.equal(a.rec.statuses.at(-1).reason, "gave_up");
    assert.ok(a.rec.statuses.some((s) => s.attempt >= 1));
  });
});

// ---------------------------------------------------------------------------
// A cluster: two nodes (then three) on one Redis
// ---------------------------------------------------------------------------

describe("cluster", () => {
  let cluster;
  let a;
  let b;
  let id;
  let p1;
  let p2;
  let c;
  const p1Storage = new MemoryStorage();
  before(async () => {
    cluster = await startCluster({ count: 2 });
    [a, b] = cluster.nodes;
  });
  after(closeClients);

  it("join follows the redirect to the node that runs the match", async () => {
    id = await newMatch(a.base, "sandbox", 2);
    // The base URL is node b (standing in for a load balancer).
    p1 = makeClient(b.base, { encoding: "bincode", reconnectGiveUpMs: 30000, storage: p1Storage });
    p2 = makeClient(b.base, { encoding: "json", reconnectGiveUpMs: 30000 });
    for (const p of [p1, p2]) {
      await p.client.connect();
      assert.equal(p.client.url, b.base);
      const j = await p.client.join(id);
      assert.equal(j.match_id, id);
      assert.equal(p.client.url, a.base, "on the owner now");
      assert.ok(p.rec.statuses.some((s) => s.status === "redirected" && s.reason === "redirect"));
    }
    await p1.client.act({ kind: "mark", x: 0, y: 0 });
    await p2.client.act({ kind: "mark", x: 1, y: 0 });
    await eventually("both at the same seq", () => p1.client.lastSeq === p2.client.lastSeq);
  });

  it("kill -9 of the owner: the clients recover the match on the other node, no event missed or repeated", async () => {
    const before = p1.client.lastSeq;
    await a.kill9();
    await eventually("both resumed on b", () =>
      [p1, p2].every((p) => p.client.status === "in_match" && p.client.url === b.base), { timeoutMs: 30000 });
    assert.ok(p1.rec.statuses.some((s) => s.status === "reconnecting"));
    const e1 = await p1.client.act({ kind: "mark", x: 2, y: 0 });
    const e2 = await p2.client.act({ kind: "mark", x: 3, y: 0 });
    assert.equal(e1.event.kind, "marked");
    assert.equal(e2.event.kind, "marked");
    await eventually("both at the same seq", () => p1.client.lastSeq === p2.client.lastSeq);
    for (const p of [p1, p2]) {
      assertContiguous(p.seqs(), "across the failover");
      assert.ok(p.client.lastSeq > before);
    }
    assert.deepStrictEqual(
      p1.rec.events.filter((e) => e.seq > before),
      p2.rec.events.filter((e) => e.seq > before),
    );
  });

  it("a drain hands the match over (redirect, resume on the peer); a client without a match hears node_stopping", async () => {
    c = await cluster.add("node-c");
    // p3: base URL c, but on node b (joined a match there, then left it).
    const other = await newMatch(b.base, "sandbox", 2);
    const p3 = makeClient(c.base, { encoding: "json" });
    await p3.client.connect();
    await p3.client.join(other);
    assert.equal(p3.client.url, b.base);
    await p3.client.leave();
    const before = p1.client.lastSeq;

    assert.equal((await http("POST", `${b.base}/admin/drain`, { key: ADMIN_KEY })).status, 202);
    await eventually("the match moved to c", () =>
      [p1, p2].every((p) => p.client.status === "in_match" && p.client.url === c.base), { timeoutMs: 30000 });
    assert.ok(p1.rec.statuses.some((s) => s.status === "redirected" && s.reason === "redirect"));
    await p1.client.act({ kind: "mark", x: 4, y: 0 });
    await p2.client.act({ kind: "mark", x: 4, y: 1 });
    await eventually("both at the same seq", () => p1.client.lastSeq === p2.client.lastSeq);
    for (const p of [p1, p2]) assertContiguous(p.seqs(), "across the handover");
    assert.deepStrictEqual(
      p1.rec.events.filter((e) => e.seq > before),
      p2.rec.events.filter((e) => e.seq > before),
    );

    // b stops once its matches are gone; p3 reconnects through its base URL.
    assert.ok(await b.exited(WAIT_MS), "the drained node stopped");
    await eventually("p3 back through c", () => p3.client.status === "connected" && p3.client.url === c.base);
    assert.ok(p3.rec.statuses.some((s) => s.reason === "node_stopping"), JSON.stringify(p3.rec.statuses));
    const j = await p3.client.quickJoin("sandbox", { maxSeats: 6 });
    assert.equal(j.type, "joined");
    p3.client.close();
  });

  it("a reload through a node that does not run the match: resume, redirect, resume on the owner", async () => {
    const d = await cluster.add("node-d");
    const stored = JSON.parse(p1Storage.getItem("matchd:match"));
    assert.equal(stored.match_id, id);
    const again = makeClient(d.base, { encoding: "json", storage: p1Storage });
    // The stored session names node b's URL, not d's: only the same base URL reuses it.
    p1Storage.setItem("matchd:session", JSON.stringify({ ...JSON.parse(p1Storage.getItem("matchd:session")), url: d.base }));
    await again.client.connect();
    assert.equal(again.client.matchId, id);
    assert.equal(again.client.url, c.base, "resumed on the owner");
    assert.ok(again.rec.statuses.some((s) => s.status === "redirected"));
    assert.equal(again.rec.joined.length, 0);
    await eventually("the old client replaced", () => p1.client.status === "closed");
    await p2.client.act({ kind: "mark", x: 0, y: 2 });
    await eventually("same seq", () => again.client.lastSeq === p2.client.lastSeq);
    assertContiguous(again.seqs(), "after the reload");
    assert.equal(again.rec.events[0].seq, stored.last_seq + 1);
    for (const p of [again, p2]) p.client.close();
  });
});

// ---------------------------------------------------------------------------
// A scripted fake server: reactions a real node does not produce on demand
// ---------------------------------------------------------------------------

/** One fake WebSocket connection: JSON frames in and out; pings answered automatically. */
class FakeConn {
  constructor(ws, url) {
    this.ws = ws;
    this.url = new URL(url, "http://fake");
    this.inbox = [];
    this.waiting = null;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === "ping") return this.send({ type: "pong", nonce: frame.nonce });
      this.inbox.push(frame);
      if (this.waiting) this.waiting();
    });
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  welcome() {
    this.send({ type: "welcome", player_id: 7, node_id: "fake", heartbeat_ms: 1000, protocol: 2 });
  }

  /** The next frame the client sends (not a ping). */
  async recv(timeoutMs = WAIT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error("the client sent nothing");
      await new Promise((resolve) => {
        this.waiting = resolve;
        setTimeout(resolve, 50);
      });
      this.waiting = null;
    }
    return this.inbox.shift();
  }
}

/** An HTTP + WebSocket server that runs `script(conn, index)` for each connection. */
async function fakeServer(script) {
  const server = nodeHttp.createServer((req, res) => {
    const url = new URL(req.url, "http://fake");
    res.setHeader("content-type", "application/json");
    if (req.method === "POST" && url.pathname === "/v1/sessions") {
      res.writeHead(201);
      res.end(JSON.stringify({ token: "fake-token", player_id: 7 }));
    } else if (req.method === "GET" && url.pathname === "/v1/sessions/current") {
      res.writeHead(200);
      res.end(JSON.stringify({ player_id: 7, match: null }));
    } else {
      res.writeHead(404);
      res.end("{}");
    }
  });
  const wss = new WebSocketServer({ noServer: true });
  const conns = [];
  const failures = [];
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new FakeConn(ws, req.url);
      conns.push(conn);
      Promise.resolve(script(conn, conns.length - 1)).catch((e) => failures.push(e));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  let closed = false;
  const fake = {
    base: `http://127.0.0.1:${server.address().port}`,
    conns,
    failures,
    async close() {
      if (closed) return;
      closed = true;
      fakes.delete(fake);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  fakes.add(fake);
  return fake;
}

/** Fake servers still open (a failed test's): closed by the suite's `after`. */
const fakes = new Set();

const MATCH = 77;
const sandboxState = { kind: "sandbox", width: 5, height: 3, cells: Array(15).fill(0), seats: [] };
const marked = (seq, extra = {}) => ({
  type: "event", match_id: MATCH, seq, seat: 1, event: { kind: "marked", x: 0, y: 0, count: seq }, ...extra,
});

describe("reactions (scripted server)", () => {
  after(async () => {
    closeClients();
    for (const fake of [...fakes]) await fake.close();
  });

  /** The first connection: welcome, quick-join answered with `joined` at seq 0, then `rest(conn)`. */
  const joinedThen = (rest) => async (conn) => {
    conn.welcome();
    const join = await conn.recv();
    assert.equal(join.type, "join");
    conn.send({ type: "joined", match_id: MATCH, ruleset: "sandbox", seat: 0, seq: 0, state: sandboxState });
    await rest(conn);
  };

  /** Later connections: welcome, expect resume from `lastSeq`, answer resumed and replay `events`. */
  const resumeAnswer = async (conn, lastSeq, events) => {
    conn.welcome();
    const resume = await conn.recv();
    assert.deepStrictEqual(resume, { type: "resume", match_id: MATCH, last_seq: lastSeq });
    conn.send({ type: "resumed", match_id: MATCH, seat: 0, last_seq: lastSeq, seq: lastSeq + events.length });
    for (const e of events) conn.send(e);
  };

  it("slow_consumer: reconnect and resume", async () => {
    const fake = await fakeServer(async (conn, i) => {
      if (i === 0) {
        await joinedThen(async (c) => {
          c.send(marked(1));
          c.send({ type: "error", code: "slow_consumer", message: "too slow" });
          c.ws.close(1008, "too slow");
        })(conn);
      } else {
        await resumeAnswer(conn, 1, [marked(2)]);
      }
    });
    const t = makeClient(fake.base);
    await t.client.connect();
    await t.client.quickJoin("sandbox");
    await eventually("seq 2", () => t.client.lastSeq === 2);
    assert.deepStrictEqual(t.seqs(), [1, 2]);
    assert.ok(t.rec.statuses.some((s) => s.status === "reconnecting" && s.reason === "slow_consumer"), JSON.stringify(t.rec.statuses));
    assert.equal(t.client.status, "in_match");
    assert.equal(t.rec.errors.length, 0);
    assert.deepStrictEqual(fake.failures, []);
    t.client.close();
    await fake.close();
  });

  it("a gap in seq triggers a resume from the last event delivered; duplicates are dropped", async () => {
    const fake = await fakeServer(async (conn, i) => {
      if (i === 0) {
        await joinedThen(async (c) => {
          c.send(marked(1));
          c.send(marked(1)); // a duplicate: dropped
          c.send(marked(3)); // seq 2 is missing
        })(conn);
      } else {
        await resumeAnswer(conn, 1, [marked(2), marked(3)]);
        conn.send(marked(4));
      }
    });
    const t = makeClient(fake.base);
    await t.client.connect();
    await t.client.quickJoin("sandbox");
    await eventually("seq 4", () => t.client.lastSeq === 4);
    assert.deepStrictEqual(t.seqs(), [1, 2, 3, 4]);
    assert.ok(t.rec.statuses.some((s) => s.reason === "gap"));
    assert.deepStrictEqual(fake.failures, []);
    t.client.close();
    await fake.close();
  });

  it("match_moved and node_stopping: resume through the base URL", async () => {
    for (const code of ["match_moved", "node_stopping"]) {
      const fake = await fakeServer(async (conn, i) => {
        if (i === 0) {
          await joinedThen(async (c) => {
            c.send(marked(1));
            c.send({ type: "error", code, message: code });
            if (code === "node_stopping") c.ws.close(1001, "stopping");
          })(conn);
        } else {
          await resumeAnswer(conn, 1, []);
        }
      });
      const t = makeClient(fake.base);
      await t.client.connect();
      await t.client.quickJoin("sandbox");
      await eventually(`resumed after ${code}`, () => fake.conns.length === 2 && t.client.status === "in_match" && t.rec.statuses.some((s) => s.reason === "resumed"));
      assert.ok(t.rec.statuses.some((s) => s.reason === code), JSON.stringify(t.rec.statuses));
      assert.deepStrictEqual(fake.failures, []);
      t.client.close();
      await fake.close();
    }
  });

  it("match_recovering: status recovering, the resume is asked again until it succeeds", async () => {
    let asked = 0;
    const fake = await fakeServer(async (conn, i) => {
      if (i === 0) {
        await joinedThen(async (c) => {
          c.send(marked(1));
          c.ws.terminate();
        })(conn);
        return;
      }
      conn.welcome();
      for (;;) {
        const f = await conn.recv();
        assert.deepStrictEqual(f, { type: "resume", match_id: MATCH, last_seq: 1 });
        if (++asked < 3) {
          conn.send({ type: "error", code: "match_recovering", message: "lease not expired" });
          continue;
        }
        conn.send({ type: "resumed", match_id: MATCH, seat: 0, last_seq: 1, seq: 2 });
        conn.send(marked(2, { client_seq: null }));
        return;
      }
    });
    const t = makeClient(fake.base);
    await t.client.connect();
    await t.client.quickJoin("sandbox");
    await eventually("seq 2", () => t.client.lastSeq === 2);
    assert.equal(asked, 3);
    assert.ok(t.rec.statuses.some((s) => s.status === "recovering" && s.reason === "match_recovering"));
    assert.equal(t.client.status, "in_match");
    assert.deepStrictEqual(fake.failures, []);
    t.client.close();
    await fake.close();
  });

  it("an action in flight when the socket drops is resolved by the replay, not sent twice", async () => {
    const actions = [];
    const fake = await fakeServer(async (conn, i) => {
      if (i === 0) {
        await joinedThen(async (c) => {
          const act = await c.recv();
          actions.push(act);
          c.ws.terminate(); // the event of the action is only in the replay
        })(conn);
        return;
      }
      await resumeAnswer(conn, 0, [
        { type: "event", match_id: MATCH, seq: 1, seat: 0, event: { kind: "marked", x: 2, y: 2, count: 1 }, client_seq: 1 },
      ]);
      // Anything the client sends now would be a second copy.
      const next = await conn.recv(1500).catch(() => null);
      if (next) actions.push(next);
    });
    const t = makeClient(fake.base);
    await t.client.connect();
    await t.client.quickJoin("sandbox");
    const ev = await t.client.act({ kind: "mark", x: 2, y: 2 });
    assert.equal(ev.seq, 1);
    assert.equal(ev.client_seq, 1);
    await eventually("the second connection's wait", () => fake.conns.length === 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(actions.length, 1, `sent once: ${JSON.stringify(actions)}`);
    t.client.close();
    await fake.close();
  });

  it("calls without an answer reject with timeout; late answers change nothing", async () => {
    let release;
    const released = new Promise((resolve) => (release = resolve));
    const fake = await fakeServer(joinedThen(async (c) => {
      const q = await c.recv();
      const act = await c.recv();
      await released; // answer only after both calls timed out
      c.send({ type: "reply", client_seq: q.client_seq, reply: { kind: "state", state: sandboxState } });
      c.send({ type: "event", match_id: MATCH, seq: 1, seat: 0, event: { kind: "marked", x: 0, y: 0, count: 1 }, client_seq: act.client_seq });
      const act2 = await c.recv();
      c.send({ type: "event", match_id: MATCH, seq: 2, seat: 0, event: { kind: "marked", x: 1, y: 0, count: 1 }, client_seq: act2.client_seq });
    }));
    try {
      const t = makeClient(fake.base);
      await t.client.connect();
      await t.client.quickJoin("sandbox");
      await rejectsWith(t.client.query({ kind: "state" }, { timeoutMs: 150 }), "timeout");
      await rejectsWith(t.client.act({ kind: "mark", x: 0, y: 0 }, { timeoutMs: 150 }), "timeout");
      release();
      const ev = await t.client.act({ kind: "mark", x: 1, y: 0 });
      assert.equal(ev.client_seq, 3);
      assert.deepStrictEqual(t.seqs(), [1, 2]);
      assert.equal(t.rec.errors.length, 0);
      assert.deepStrictEqual(fake.failures, []);
      t.client.close();
    } finally {
      await fake.close();
    }
  });

  it("unknown frame types are skipped; undecodable frames are `error` events; replaced closes without reconnecting", async () => {
    const fake = await fakeServer(async (conn) => {
      conn.welcome();
      conn.send({ type: "future_frame", x: 1 });
      conn.ws.send("not json");
      conn.ws.send(Buffer.from("0d00", "hex")); // an unknown bincode message: skipped
      conn.ws.send(Buffer.from("0cfb2c01", "hex")); // a lying length
      conn.send({ type: "notice", message: "still here" });
      conn.send({ type: "error", code: "replaced", message: "another connection took the seat" });
    });
    const t = makeClient(fake.base);
    // The frames may come in one TCP read with the welcome: connect() then fails with `replaced`.
    await t.client.connect().catch((e) => assert.equal(e.code, "replaced"));
    await eventually("closed", () => t.client.status === "closed");
    assert.deepStrictEqual(t.rec.notices, [{ type: "notice", message: "still here" }]);
    assert.deepStrictEqual(t.rec.errors.map((e) => e.code), ["malformed_json", "malformed_binary"]);
    assert.equal(t.rec.statuses.at(-1).reason, "replaced");
    assert.equal(fake.conns.length, 1);
    await fake.close();
  });
});
