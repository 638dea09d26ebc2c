// matchd JavaScript client: one ES module, no dependencies, no build step.
// Served by every node at /client/matchd.js; the API is declared in
// matchd.d.ts and the wire protocol is described in PROTOCOL.md (protocol 2).
//
// Layout of this file:
//   1. MatchdError and small helpers
//   2. The codecs: JSON (canonical client frames, normalised server frames)
//      and bincode 2 (written from PROTOCOL.md, "Binary encoding"), both
//      driven by one schema of the protocol's types
//   3. MatchdClient: sessions, the socket, join/resume, calls, reconnects
//
// Works in browsers and in Node.js (pass the `ws` package's WebSocket class
// on Node 20, whose global WebSocket is missing).

/** The protocol version this library speaks (sent as `?protocol=` on connect). */
export const PROTOCOL_VERSION = 2;

// ---------------------------------------------------------------------------
// 1. Errors and helpers
// ---------------------------------------------------------------------------

/**
 * A refusal from the server (`rejected` or `error`, with the server's code),
 * or a client-side failure: `timeout`, `socket_closed`, `closed`,
 * `not_connected`, `gave_up`, `invalid_message` (a frame this library cannot
 * encode), `malformed_json` / `malformed_binary` (a server frame it cannot
 * decode).
 */
export class MatchdError extends Error {
  /**
   * @param {string} code stable machine-readable code
   * @param {string} message text for people
   */
  constructor(code, message) {
    super(message || code);
    this.name = "MatchdError";
    this.code = code;
  }
}

const invalid = (message) => new MatchdError("invalid_message", message);
const malformed = (message) => new MatchdError("malformed_binary", message);

/** Largest integer a JS number holds exactly: every u64 on the wire stays below it. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_32 = 2 ** 32;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------
// 2. Codecs
// ---------------------------------------------------------------------------

/** Appends bincode bytes to a growing buffer. */
class Writer {
  constructor() {
    this.buf = new Uint8Array(64);
    this.len = 0;
  }

  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b) {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  bytes(src) {
    this.reserve(src.length);
    this.buf.set(src, this.len);
    this.len += src.length;
  }

  /** `n` bytes of `v` (a number below 2^32), little endian. */
  le(v, n) {
    for (let i = 0; i < n; i++) this.byte(Math.floor(v / 2 ** (8 * i)) & 0xff);
  }

  /** Unsigned varint of a number (0 ..= 2^53 - 1) or a bigint (0 ..= 2^64 - 1), shortest form. */
  varint(v) {
    if (typeof v === "bigint") {
      if (v <= BigInt(MAX_SAFE)) return this.varint(Number(v));
      this.byte(0xfd);
      for (let i = 0n; i < 8n; i++) this.byte(Number((v >> (8n * i)) & 0xffn));
      return;
    }
    if (v <= 250) {
      this.byte(v);
    } else if (v <= 0xffff) {
      this.byte(0xfb);
      this.le(v, 2);
    } else if (v < TWO_32) {
      this.byte(0xfc);
      this.le(v, 4);
    } else {
      this.byte(0xfd);
      this.le(v % TWO_32, 4);
      this.le(Math.floor(v / TWO_32), 4);
    }
  }

  finish() {
    return this.buf.slice(0, this.len);
  }
}

/** Reads bincode bytes; every read is bounded by the frame. */
class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.b = bytes;
    this.p = 0;
  }

  left() {
    return this.b.length - this.p;
  }

  byte() {
    if (this.p >= this.b.length) throw malformed("unexpected end of frame");
    return this.b[this.p++];
  }

  /** `n` (2 or 4) bytes little endian as a number. */
  le(n) {
    if (this.left() < n) throw malformed("unexpected end of frame");
    let v = 0;
    for (let i = 0; i < n; i++) v += this.b[this.p++] * 2 ** (8 * i);
    return v;
  }

  /**
   * Unsigned varint of an integer type `width` bytes wide (2, 4 or 8). A
   * tag wider than the type, 0xfe (u128) and 0xff are refused, as matchd
   * refuses them; so is a u64 at or beyond 2^53 (not exact as a number).
   */
  uvarint(width) {
    const tag = this.byte();
    if (tag <= 250) return tag;
    if (tag === 0xfb) return this.le(2);
    if (tag === 0xfc && width >= 4) return this.le(4);
    if (tag === 0xfd && width >= 8) {
      const lo = this.le(4);
      const hi = this.le(4);
      if (hi > 0x1fffff) throw malformed("integer beyond 2^53 - 1");
      return hi * TWO_32 + lo;
    }
    throw malformed(`varint tag 0x${tag.toString(16)} is invalid for a ${width * 8}-bit integer`);
  }

  /** u64 varint as a bigint (any value), for the zigzag of i64. */
  uvarintBig() {
    const tag = this.b[this.p];
    if (tag !== 0xfd) return BigInt(this.uvarint(8));
    this.p++;
    const lo = this.le(4);
    const hi = this.le(4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}

// --- the schema: one object per wire type, with four operations ---
//   enc(w, v, path, proto)  bincode-encode v (validating it)
//   dec(r)                  bincode-decode
//   json(v, path)           validate v and return its canonical JSON value
//   norm(v)                 normalise a decoded JSON value (absent Option -> null)
// `path` only names the value in error messages.

function checkInt(v, min, max, path, what) {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(`${path}: expected ${what}, got ${JSON.stringify(v)}`);
  }
  return v;
}

const identity = (v) => v;

/** Unsigned varint integer types. */
function unsigned(max, width, what) {
  return {
    enc(w, v, path) {
      w.varint(checkInt(v, 0, max, path, what));
    },
    dec: (r) => r.uvarint(width),
    json: (v, path) => checkInt(v, 0, max, path, what),
    norm: identity,
  };
}

const U32 = unsigned(0xffffffff, 4, "u32");
const U64 = unsigned(MAX_SAFE, 8, "u64 below 2^53");

/** u8: one raw byte, never a varint. */
const U8 = {
  enc(w, v, path) {
    w.byte(checkInt(v, 0, 255, path, "u8"));
  },
  dec: (r) => r.byte(),
  json: (v, path) => checkInt(v, 0, 255, path, "u8"),
  norm: identity,
};

/** i32: zigzag, then the u32 varint. */
const I32 = {
  enc(w, v, path) {
    checkInt(v, -(2 ** 31), 2 ** 31 - 1, path, "i32");
    w.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  },
  dec(r) {
    const z = r.uvarint(4);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  },
  json: (v, path) => checkInt(v, -(2 ** 31), 2 ** 31 - 1, path, "i32"),
  norm: identity,
};

/** i64: zigzag (computed on bigints, exact), then the u64 varint. */
const I64 = {
  enc(w, v, path) {
    checkInt(v, -MAX_SAFE, MAX_SAFE, path, "i64 within ±(2^53 - 1)");
    const n = BigInt(v);
    w.varint(n >= 0n ? n << 1n : (-n << 1n) - 1n);
  },
  dec(r) {
    const z = r.uvarintBig();
    const n = Number((z >> 1n) ^ -(z & 1n));
    if (!Number.isSafeInteger(n)) throw malformed("integer beyond ±(2^53 - 1)");
    return n;
  },
  json: (v, path) => checkInt(v, -MAX_SAFE, MAX_SAFE, path, "i64 within ±(2^53 - 1)"),
  norm: identity,
};

const BOOL = {
  enc(w, v, path) {
    if (typeof v !== "boolean") throw invalid(`${path}: expected a boolean`);
    w.byte(v ? 1 : 0);
  },
  dec(r) {
    const b = r.byte();
    if (b > 1) throw malformed(`bool byte ${b}`);
    return b === 1;
  },
  json(v, path) {
    if (typeof v !== "boolean") throw invalid(`${path}: expected a boolean`);
    return v;
  },
  norm: identity,
};

/** String: byte length (varint), then UTF-8. */
const STR = {
  enc(w, v, path) {
    if (typeof v !== "string") throw invalid(`${path}: expected a string`);
    const bytes = utf8Encoder.encode(v);
    w.varint(bytes.length);
    w.bytes(bytes);
  },
  dec(r) {
    const n = r.uvarint(8);
    if (n > r.left()) throw malformed(`string of ${n} bytes in a frame with ${r.left()} left`);
    const bytes = r.b.subarray(r.p, r.p + n);
    r.p += n;
    try {
      return utf8Decoder.decode(bytes);
    } catch {
      throw malformed("string is not valid UTF-8");
    }
  },
  json(v, path) {
    if (typeof v !== "string") throw invalid(`${path}: expected a string`);
    return v;
  },
  norm: identity,
};

/** Option<T>: 00, or 01 then T. In JSON: null (or, in what we send, omitted). */
function opt(t) {
  return {
    optional: true,
    enc(w, v, path) {
      if (v === null || v === undefined) {
        w.byte(0);
      } else {
        w.byte(1);
        t.enc(w, v, path);
      }
    },
    dec(r) {
      const b = r.byte();
      if (b === 0) return null;
      if (b === 1) return t.dec(r);
      throw malformed(`Option byte ${b}`);
    },
    json: (v, path) => (v === null || v === undefined ? null : t.json(v, path)),
    norm: (v) => (v === null || v === undefined ? null : t.norm(v)),
  };
}

/** Vec<T>: element count (varint), then the elements. */
function vec(t) {
  return {
    enc(w, v, path) {
      if (!Array.isArray(v)) throw invalid(`${path}: expected an array`);
      w.varint(v.length);
      v.forEach((x, i) => t.enc(w, x, `${path}[${i}]`));
    },
    dec(r) {
      const n = r.uvarint(8);
      // Every element takes at least one byte: a count beyond the frame is a lie.
      if (n > r.left()) throw malformed(`vector of ${n} elements in a frame with ${r.left()} bytes left`);
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = t.dec(r);
      return out;
    },
    json(v, path) {
      if (!Array.isArray(v)) throw invalid(`${path}: expected an array`);
      return v.map((x, i) => t.json(x, `${path}[${i}]`));
    },
    norm: (v) => (Array.isArray(v) ? v.map((x) => t.norm(x)) : v),
  };
}

/** [T; N]: the N elements, no length. */
function fixed(t, n) {
  const check = (v, path) => {
    if (!Array.isArray(v) || v.length !== n) throw invalid(`${path}: expected an array of ${n}`);
  };
  return {
    enc(w, v, path) {
      check(v, path);
      v.forEach((x, i) => t.enc(w, x, `${path}[${i}]`));
    },
    dec(r) {
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = t.dec(r);
      return out;
    },
    json(v, path) {
      check(v, path);
      return v.map((x, i) => t.json(x, `${path}[${i}]`));
    },
    norm: (v) => (Array.isArray(v) ? v.map((x) => t.norm(x)) : v),
  };
}

/**
 * Field list of a struct or enum variant: `[name, type, extra?]`, in wire
 * order. `extra.since` marks a field appended to a top-level message in
 * that protocol version: a frame that ends right before it (a protocol-1
 * server) decodes it as `extra.absent`, and encoding for an older protocol
 * leaves it out.
 */
class Fields {
  constructor(list) {
    this.list = list.map(([name, type, extra = {}]) => ({ name, type, ...extra }));
  }

  enc(w, v, path, proto) {
    if (v === null || typeof v !== "object") throw invalid(`${path}: expected an object`);
    for (const f of this.list) {
      if (f.since && proto < f.since) {
        if (v[f.name] !== null && v[f.name] !== undefined) {
          throw invalid(`${path}.${f.name} needs protocol ${f.since}; the server speaks ${proto}`);
        }
        continue;
      }
      f.type.enc(w, v[f.name], `${path}.${f.name}`, proto);
    }
  }

  /**
   * A frame that ends exactly where a protocol version's appended fields
   * begin is that older version's layout: those fields (and any later
   * ones) are absent. A frame that ends inside such a group is malformed.
   */
  decInto(r, out) {
    let older = false;
    this.list.forEach((f, i) => {
      const startsVersion = f.since && f.since !== (i > 0 ? this.list[i - 1].since : undefined);
      if (startsVersion && r.left() === 0) older = true;
      out[f.name] = older ? (f.absent ?? null) : f.type.dec(r);
    });
    return out;
  }

  /** Canonical JSON of what a client sends: declaration order, absent Options omitted. */
  jsonInto(v, out, path) {
    if (v === null || typeof v !== "object") throw invalid(`${path}: expected an object`);
    for (const f of this.list) {
      const x = f.type.json(v[f.name], `${path}.${f.name}`);
      if (x !== null && x !== undefined) out[f.name] = x;
    }
    return out;
  }

  /** A decoded JSON object with absent Options as null; unknown fields are kept. */
  norm(v) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const out = { ...v };
    for (const f of this.list) {
      if (f.name in v) out[f.name] = f.type.norm(v[f.name]);
      else if (f.since) out[f.name] = f.absent ?? null;
      else if (f.type.optional) out[f.name] = null;
    }
    return out;
  }
}

function struct(list) {
  const fields = new Fields(list);
  return {
    enc: (w, v, path, proto) => fields.enc(w, v, path, proto),
    dec: (r) => fields.decInto(r, {}),
    json: (v, path) => fields.jsonInto(v, {}, path),
    norm: (v) => fields.norm(v),
  };
}

/**
 * A tagged enum: JSON objects tagged by `tag` ("type" or "kind"); in
 * bincode the variant index (u32 varint, declaration order) then the
 * variant's fields. `variants` is `[[name, fieldList], ...]` in index order.
 */
function union(tag, variants) {
  const list = variants.map(([name, fields], index) => ({ name, index, fields: new Fields(fields) }));
  const byName = new Map(list.map((v) => [v.name, v]));
  const find = (v, path) => {
    const variant = v !== null && typeof v === "object" ? byName.get(v[tag]) : undefined;
    if (!variant) throw invalid(`${path}.${tag}: unknown ${JSON.stringify(v && v[tag])}`);
    return variant;
  };
  return {
    enc(w, v, path, proto) {
      const variant = find(v, path);
      w.varint(variant.index);
      variant.fields.enc(w, v, path, proto);
    },
    dec(r, top = false) {
      const index = r.uvarint(4);
      const variant = list[index];
      if (!variant) {
        // A new top-level message can be skipped whole; a new nested
        // variant shifts what follows, so that frame cannot be read.
        if (top) throw new MatchdError("unknown_type", `unknown message variant ${index}`);
        throw malformed(`unknown ${tag} variant ${index}`);
      }
      return variant.fields.decInto(r, { [tag]: variant.name });
    },
    json(v, path) {
      const variant = find(v, path);
      return variant.fields.jsonInto(v, { [tag]: variant.name }, path);
    },
    norm(v) {
      const variant = v !== null && typeof v === "object" ? byName.get(v[tag]) : undefined;
      return variant ? variant.fields.norm(v) : v; // unknown kinds pass through as they are
    },
  };
}

// --- the protocol (PROTOCOL.md, "Client → server", "Server → client", "Payloads") ---

const SINCE_2 = { since: 2 };

const SEAT_VIEW = struct([["seat", U8], ["player_id", U64], ["connected", BOOL]]);
const CARD_VIEW = struct([["card", U32], ["unit", STR]]);
const UNIT_VIEW = struct([
  ["unit_id", U32], ["seat", U8], ["unit", STR], ["x", I32], ["y", I32], ["hp", I32],
]);

const ACTION = union("kind", [
  ["mark", [["x", I32], ["y", I32]]],
  ["place", [["card", U32], ["x", I32], ["y", I32]]],
  ["ready", []],
  ["concede", []],
]);

const QUERY = union("kind", [
  ["valid_cells", [["card", U32]]],
  ["state", []],
]);

/** State::Tactics(TacticsView): variant 1 followed directly by the view's fields. */
const STATE = union("kind", [
  ["sandbox", [["width", I32], ["height", I32], ["cells", vec(U32)], ["seats", vec(SEAT_VIEW)]]],
  ["tactics", [
    ["phase", STR], ["tick", U32], ["you", opt(U8)], ["hand", vec(CARD_VIEW)],
    ["opponent_hand_size", U32], ["units", vec(UNIT_VIEW)], ["bases", fixed(I32, 2)],
    ["ready", fixed(BOOL, 2)], ["seats", vec(SEAT_VIEW)],
  ]],
]);

const REPLY = union("kind", [
  ["cells", [["cells", vec(fixed(I32, 2))]]],
  ["state", [["state", STATE]]],
]);

const EVENT = union("kind", [
  ["player_joined", [["seat", U8], ["player_id", U64]]],
  ["player_left", [["seat", U8]]],
  ["player_disconnected", [["seat", U8]]],
  ["player_reconnected", [["seat", U8]]],
  ["marked", [["x", I32], ["y", I32], ["count", U32]]],
  ["phase", [["phase", STR]]],
  ["placed", [["seat", U8], ["card", U32], ["unit", STR], ["unit_id", U32], ["x", I32], ["y", I32], ["hp", I32]]],
  ["player_ready", [["seat", U8]]],
  ["attacked", [["unit_id", U32], ["target_seat", U8], ["target_unit", opt(U32)], ["damage", I32], ["hp", I32]]],
  ["destroyed", [["unit_id", U32]]],
]);

const RESULT = struct([["winner", opt(U8)], ["reason", STR], ["scores", vec(I64)]]);

const CLIENT_MSG = union("type", [
  ["join", [["match_id", opt(U64)], ["ruleset", opt(STR)], ["max_seats", opt(U8), SINCE_2]]],
  ["action", [["client_seq", U64], ["action", ACTION]]],
  ["query", [["client_seq", U64], ["query", QUERY]]],
  ["leave", []],
  ["ping", [["nonce", U64]]],
  ["resume", [["match_id", U64], ["last_seq", U64]]],
]);

const SERVER_MSG = union("type", [
  ["welcome", [["player_id", U64], ["node_id", STR], ["heartbeat_ms", U64], ["protocol", U32, { since: 2, absent: 1 }]]],
  ["joined", [["match_id", U64], ["ruleset", STR], ["seat", U8], ["seq", U64], ["state", STATE]]],
  ["event", [["match_id", U64], ["seq", U64], ["seat", opt(U8)], ["event", EVENT], ["client_seq", opt(U64), SINCE_2]]],
  ["rejected", [["client_seq", U64], ["code", STR], ["message", STR]]],
  ["reply", [["client_seq", U64], ["reply", REPLY]]],
  ["ended", [["match_id", U64], ["seq", U64], ["result", RESULT], ["seat", opt(U8), SINCE_2], ["client_seq", opt(U64), SINCE_2]]],
  ["error", [["code", STR], ["message", STR]]],
  ["pong", [["nonce", U64]]],
  ["left", [["match_id", U64]]],
  ["resumed", [["match_id", U64], ["seat", U8], ["last_seq", U64], ["seq", U64]]],
  ["draining", [["retry_after_ms", U64]]],
  ["redirect", [["match_id", U64], ["url", STR], ["node_id", opt(STR)]]],
  ["notice", [["message", STR]]],
]);

/**
 * A client frame as JSON text, exactly as the Rust encoder would write it:
 * compact, the tag first, fields in declaration order, absent Options
 * omitted. Throws MatchdError("invalid_message") for a frame it cannot send.
 */
export function encodeJson(frame) {
  return JSON.stringify(CLIENT_MSG.json(frame, "frame"));
}

/**
 * A server text frame. Absent Options become `null` (the same shape as
 * decodeBincode gives); fields this version does not know are kept; a frame
 * of an unknown `type` is returned as parsed (the client skips it).
 */
export function decodeJson(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new MatchdError("malformed_json", `frame is not valid JSON: ${e.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new MatchdError("invalid_message", "a frame must be a JSON object");
  }
  if (typeof value.type !== "string") throw new MatchdError("missing_type", 'frame has no "type"');
  return SERVER_MSG.norm(value);
}

/** A client frame in bincode for a server of protocol `proto` (2 unless it said otherwise in `welcome`). */
function encodeBincodeFor(frame, proto) {
  const w = new Writer();
  CLIENT_MSG.enc(w, frame, "frame", proto);
  return w.finish();
}

/** A client frame as a bincode 2 binary frame (protocol-2 layout). */
export function encodeBincode(frame) {
  return encodeBincodeFor(frame, PROTOCOL_VERSION);
}

/**
 * A server binary frame (protocol-2 layout; a protocol-1 frame, which lacks
 * the appended fields, decodes with them absent). Bounded: no length may
 * claim more than the frame holds, and the frame must be consumed entirely.
 * Throws MatchdError: `malformed_binary`, or `unknown_type` for a message
 * variant this version does not know (skip the frame).
 */
export function decodeBincode(bytes) {
  const r = new Reader(asBytes(bytes));
  const frame = SERVER_MSG.dec(r, true);
  if (r.left() !== 0) throw malformed(`${r.left()} trailing bytes after the message`);
  return frame;
}

/** A Uint8Array view of what a WebSocket delivers (ArrayBuffer, Buffer, any typed array). */
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    // ws "fragments" mode: concatenate.
    const parts = data.map(asBytes);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  throw malformed(`cannot read a binary frame of type ${Object.prototype.toString.call(data)}`);
}

// ---------------------------------------------------------------------------
// 3. The client
// ---------------------------------------------------------------------------

/** `error` codes the server sends on its own (not answers to a frame); seen by the game as status only. */
const SERVER_INITIATED = new Set([
  "replaced", "kicked", "slow_consumer", "match_moved", "match_stopped", "node_stopping", "match_gone",
]);
/** Answers to `resume` after which the stored match is forgotten. */
const FORGET_MATCH = new Set(["not_a_member", "match_not_found", "match_ended", "match_unrecoverable"]);
/** Answers to `resume` that mean "ask again shortly". */
const RETRY_RESUME = new Set(["match_recovering", "redis_unavailable"]);

const MAX_REDIRECTS = 8;
const JOIN_RETRIES = 3;
const DRAIN_RETRY_DEFAULT_MS = 1000;
/** `rejected busy` (a full match mailbox): resend after 50-100 ms, this many times. */
const BUSY_RETRIES = 3;
/** Join answers that mean "the node is overloaded": try again after a second. */
const RETRY_JOIN = new Set(["engine_unavailable", "match_busy"]);
const RETRY_JOIN_MS = 1000;

const isJoinAnswer = (f) =>
  f.type === "joined" || f.type === "redirect" || (f.type === "error" && !SERVER_INITIATED.has(f.code));
const isResumeAnswer = (f) => f.type === "resumed" || isJoinAnswer(f);

/** Errors after which reconnecting cannot help (the game's own token refused). */
const FATAL = new WeakSet();

/** A redirect to follow while (re)connecting. */
class Redirect {
  constructor(url) {
    this.url = url;
  }
}

/** `ws(s)://host/…/v1/ws` of an `http(s)://host/…` base URL (relative to the page in a browser). */
function wsEndpoint(base) {
  const u = new URL(base, globalThis.location ? globalThis.location.href : undefined);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (!u.pathname.endsWith("/v1/ws")) u.pathname = u.pathname.replace(/\/+$/, "") + "/v1/ws";
  u.search = "";
  u.hash = "";
  return u.toString();
}

/** The `http(s)://host/…` base URL of a node's `ws(s)://host/…/v1/ws`. */
function httpBase(wsUrl) {
  const u = new URL(wsUrl);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = u.pathname.replace(/\/v1\/ws$/, "");
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}

/** Default storage: localStorage in browsers (when usable), none in Node. */
function defaultStorage() {
  try {
    return typeof globalThis.localStorage === "object" ? globalThis.localStorage : null;
  } catch {
    return null; // localStorage access can throw (sandboxed frames, privacy modes)
  }
}

/** Rethrows a listener's exception outside the client, so one bad listener cannot break it. */
function report(err) {
  setTimeout(() => {
    throw err;
  }, 0);
}

export class MatchdClient {
  /** @param {import("./matchd").ClientOptions} options */
  constructor(options) {
    if (!options || typeof options.url !== "string") throw new TypeError("MatchdClient: options.url is required");
    const o = options;
    const WS = o.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") throw new TypeError("MatchdClient: no WebSocket (pass options.WebSocket)");
    const f = o.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("MatchdClient: no fetch (pass options.fetch)");
    if (o.encoding !== undefined && o.encoding !== "json" && o.encoding !== "bincode") {
      throw new TypeError(`MatchdClient: encoding must be "json" or "bincode"`);
    }

    this._WS = WS;
    this._fetch = o.fetch ? o.fetch : (...args) => globalThis.fetch(...args);
    this._encoding = o.encoding ?? "json";
    this._storage = o.storage === undefined ? defaultStorage() : o.storage;
    this._keySession = `${o.storageKey ?? "matchd"}:session`;
    this._keyMatch = `${o.storageKey ?? "matchd"}:match`;
    this._timeoutMs = o.requestTimeoutMs ?? 5000;
    this._backoffMin = o.reconnectMinMs ?? 100;
    this._backoffMax = o.reconnectMaxMs ?? 5000;
    this._giveUpMs = o.reconnectGiveUpMs ?? 60000;

    /** The `/v1/ws` endpoint of the base URL the game gave (a load balancer in production)… */
    this._wsBase = wsEndpoint(o.url);
    /** …that base URL as http(s), without a trailing slash… */
    this._base = httpBase(this._wsBase);
    /** …and the `/v1/ws` endpoint of the node the client is on now (after redirects). */
    this._wsUrl = this._wsBase;

    // Session.
    this._givenToken = o.token ?? null;
    this._token = null;
    this._playerId = null;
    this._sessionOk = false; // the token was checked since the last failed connect
    this._sessionPending = null; // the check under way (session() and connect() share it)
    this._restored = false; // the stored match was read

    // Match.
    this._matchId = null;
    this._seat = null;
    this._lastSeq = 0;
    /** No event this client receives from now on can be older than this seq (the end of a replay). */
    this._seqFloor = 0;

    // Socket. `_gen` numbers sockets; handlers of an older socket do nothing.
    this._ws = null;
    this._gen = 0;
    this._welcome = null;
    this._protocol = PROTOCOL_VERSION;
    this._ready = false; // welcome received and the match (if any) resumed
    this._heartbeat = null;
    this._lastSent = 0;
    this._lastRecv = 0;
    this._nonce = 0;
    this._draining = null; // { until } once the node said `draining`

    // Status.
    this._status = "idle";
    this._attempt = 0;
    this._lostAt = null; // when the last good link was lost
    this._userClosed = false;
    this._final = false; // no reconnecting: closed, replaced, kicked, gave up
    this._finalError = null; // why (what pending and later calls reject with)

    // Work. Link operations (connect, join, reconnect) run one at a time.
    this._chain = Promise.resolve();
    this._ops = 0;
    this._waiters = new Set(); // frames awaited by link operations
    this._sleepers = new Set(); // sleeps that close() cuts short
    this._nextClientSeq = 1;
    this._calls = new Map(); // act/query by client_seq
    this._leaves = []; // leave() calls awaiting `left`
    this._outbox = []; // calls not sent yet (no link, or a link operation running)
    this._inflight = []; // sent calls in send order, for `error` answers without a client_seq
    this._listeners = new Map();
    this._iterators = new Set();
  }

  // --- public state ---

  get status() {
    return this._status;
  }
  get url() {
    return httpBase(this._wsUrl);
  }
  get playerId() {
    return this._playerId;
  }
  get token() {
    return this._token;
  }
  get matchId() {
    return this._matchId;
  }
  get seat() {
    return this._seat;
  }
  get lastSeq() {
    return this._lastSeq;
  }

  // --- public operations ---

  /** Gets or creates the session (anonymous unless `token` was given); no socket yet. */
  async session() {
    await this._ensureSession();
    return { token: this._token, playerId: this._playerId };
  }

  /**
   * Opens the socket and waits for `welcome`; resumes the match this client
   * (or, through `storage`, the page before a reload) was in. Resolves with
   * the welcome frame once the link is up (and the match resumed).
   */
  connect() {
    if (this._userClosed) return Promise.reject(new MatchdError("closed", "the client was closed"));
    return this._serial(async () => {
      if (this._isReady()) return this._welcome;
      if (this._final) this._final = false; // a new start after replaced/kicked/gave up
      if (this._status === "idle" || this._status === "closed") this._setStatus("connecting");
      this._lostAt = Date.now();
      return this._establish("connect");
    });
  }

  /** Quick-join a ruleset: the fullest open match on this node, else a new one. */
  quickJoin(ruleset, options = {}) {
    const frame = { type: "join", ruleset, max_seats: options.maxSeats ?? null };
    return this._join(frame, true);
  }

  /** Join a match by id (follows a redirect to its node). */
  join(matchId) {
    return this._join({ type: "join", match_id: matchId }, false);
  }

  /** Gives the seat up; resolves on `left`. */
  leave() {
    return this._call("leave", { type: "leave" }, null, this._timeoutMs);
  }

  /**
   * Sends an action. Resolves with the first event it caused (same seat and
   * client_seq), or with `ended` when it ended the match without an event;
   * rejects with MatchdError on `rejected` or "timeout".
   */
  act(action, options = {}) {
    const cs = this._nextClientSeq++;
    return this._call("act", { type: "action", client_seq: cs, action }, cs, options.timeoutMs ?? this._timeoutMs);
  }

  /** Sends a query; resolves with the reply, rejects on `rejected` or "timeout". */
  query(query, options = {}) {
    const cs = this._nextClientSeq++;
    return this._call("query", { type: "query", client_seq: cs, query }, cs, options.timeoutMs ?? this._timeoutMs);
  }

  /** Subscribes; returns the unsubscribe function. */
  on(type, listener) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    // A wrapper, so the same function may be subscribed twice and removed once per call.
    const entry = (v) => listener(v);
    set.add(entry);
    return () => set.delete(entry);
  }

  /** Async iteration over the `event` stream until close(). */
  events() {
    const queue = [];
    let wakers = []; // pending next() calls
    let done = false;
    const wake = () => {
      const w = wakers;
      wakers = [];
      for (const resolve of w) resolve();
    };
    const off = this.on("event", (e) => {
      queue.push(e);
      wake();
    });
    const finish = () => {
      done = true;
      off();
      this._iterators.delete(finish);
      wake();
    };
    this._iterators.add(finish);
    if (this._userClosed) finish();
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (queue.length === 0 && !done) await new Promise((resolve) => wakers.push(resolve));
        return queue.length > 0 ? { value: queue.shift(), done: false } : { value: undefined, done: true };
      },
      async return() {
        finish();
        queue.length = 0;
        return { value: undefined, done: true };
      },
    };
  }

  /** Closes the socket for good (no reconnect). Keeps the stored session and match. */
  close() {
    if (this._userClosed) return;
    this._userClosed = true;
    this._shutdown("closed", new MatchdError("closed", "the client was closed"));
    for (const finish of [...this._iterators]) finish();
  }

  // --- session and storage ---

  _load(key) {
    try {
      const raw = this._storage ? this._storage.getItem(key) : null;
      return raw ? JSON.parse(raw) : null;
    } catch {
      return null;
    }
  }

  _store(key, value) {
    if (!this._storage) return;
    try {
      if (value === null) this._storage.removeItem(key);
      else this._storage.setItem(key, JSON.stringify(value));
    } catch {
      // Storage full or unavailable: the client works on without it.
    }
  }

  async _http(method, path) {
    let res;
    try {
      res = await this._fetch(`${this._base}${path}`, { method, headers: { accept: "application/json" } });
    } catch (e) {
      throw new MatchdError("unavailable", `${method} ${path}: ${e && e.message ? e.message : e}`);
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    return { status: res.status, ok: res.ok, body };
  }

  /** Makes sure `_token` is valid on the server (checked again after a failed connect). */
  _ensureSession() {
    if (this._sessionOk) return Promise.resolve();
    if (!this._sessionPending) {
      this._sessionPending = this._checkSession().finally(() => {
        this._sessionPending = null;
      });
    }
    return this._sessionPending;
  }

  /** The stored (or given) token if the server knows it, else a new anonymous session. */
  async _checkSession() {
    const stored = this._load(this._keySession);
    const storedToken = stored && stored.url === this._base ? stored.token : null;
    let token = this._token ?? this._givenToken ?? storedToken;
    if (token) {
      const res = await this._http("GET", `/v1/sessions/current?token=${encodeURIComponent(token)}`);
      if (res.ok && res.body) {
        this._setSession(token, res.body.player_id);
        return;
      }
      if (res.status === 401 && token !== this._givenToken) {
        token = null; // an anonymous session the server forgot: make a new one
      } else {
        const err = res.body && res.body.error;
        const mErr = new MatchdError(err ? err.code : `http_${res.status}`, err ? err.message : "session check failed");
        if (res.status === 401) FATAL.add(mErr); // the game's own token is refused: retrying cannot help
        throw mErr;
      }
    }
    const res = await this._http("POST", "/v1/sessions");
    if (!res.ok || !res.body || typeof res.body.token !== "string") {
      const err = res.body && res.body.error;
      throw new MatchdError(err ? err.code : `http_${res.status}`, err ? err.message : "could not create a session");
    }
    this._setSession(res.body.token, res.body.player_id);
  }

  _setSession(token, playerId) {
    if (this._token !== null && this._token !== token) {
      // Another player now: whatever match the old one held is not ours.
      this._forgetMatch();
    }
    this._token = token;
    this._playerId = playerId;
    this._sessionOk = true;
    this._store(this._keySession, { url: this._base, token, player_id: playerId });
    if (!this._restored) {
      this._restored = true;
      const m = this._load(this._keyMatch);
      if (m && (m.token !== token || !Number.isSafeInteger(m.match_id))) {
        this._store(this._keyMatch, null); // another player's (or unreadable): not ours to resume
      } else if (m && this._matchId === null) {
        this._matchId = m.match_id;
        this._seat = m.seat ?? null;
        this._lastSeq = Number.isSafeInteger(m.last_seq) ? m.last_seq : 0;
        this._seqFloor = this._lastSeq;
      }
    }
  }

  _saveMatch() {
    this._store(this._keyMatch, {
      token: this._token,
      match_id: this._matchId,
      seat: this._seat,
      last_seq: this._lastSeq,
    });
  }

  _forgetMatch() {
    this._matchId = null;
    this._seat = null;
    this._store(this._keyMatch, null);
  }

  /** The seat the server says this player holds (`GET /v1/sessions/current`), or null. */
  async _currentMatch() {
    try {
      const res = await this._http("GET", `/v1/sessions/current?token=${encodeURIComponent(this._token)}`);
      return res.ok && res.body ? res.body.match : null;
    } catch {
      return null;
    }
  }

  // --- status and listeners ---

  _emit(type, value) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        report(e);
      }
    }
  }

  /** Changes the status and tells the game (also when only the reason is news, e.g. "draining"). */
  _setStatus(status, reason) {
    if (status === this._status && reason === undefined) return;
    this._status = status;
    const change = { status, url: this.url, attempt: this._attempt };
    if (reason !== undefined) change.reason = reason;
    this._emit("status", change);
  }

  // --- link operations (serialised) ---

  _serial(fn) {
    const run = this._chain.then(async () => {
      this._ops++;
      try {
        return await fn();
      } finally {
        this._ops--;
        this._pump();
      }
    });
    this._chain = run.catch(() => {});
    return run;
  }

  _isReady() {
    return this._ready && this._ws !== null && !this._final;
  }

  /** Throws once the client has stopped for good (checked after every await of a link operation). */
  _checkOpen() {
    if (this._final) throw this._finalError ?? new MatchdError("closed", "the client is closed");
  }

  /** A sleep that close() cuts short. */
  _sleep(ms) {
    return new Promise((resolve) => {
      const s = { resolve, timer: setTimeout(() => done(), Math.max(0, ms)) };
      const done = () => {
        clearTimeout(s.timer);
        this._sleepers.delete(s);
        resolve();
      };
      s.resolve = done;
      this._sleepers.add(s);
    });
  }

  /** Backoff before reconnect attempt `n` (from 1): full jitter over an exponential ceiling. */
  _backoff(n) {
    const ceiling = Math.min(this._backoffMax, this._backoffMin * 2 ** Math.min(n - 1, 30));
    return Math.random() * ceiling;
  }

  /**
   * Brings the link up: session, socket, welcome, and the resume of the
   * current match. Retries with backoff (the first retry on the base URL)
   * until `reconnectGiveUpMs` has passed without a good connection, then
   * closes the client ("gave_up"). `delay`: back off before the first try.
   */
  async _establish(reason, { delay = false } = {}) {
    if (this._isReady()) return this._welcome;
    if (this._lostAt === null) this._lostAt = Date.now();
    let url = this._wsUrl;
    let redirects = 0;
    let failures = delay ? 1 : 0;
    for (;;) {
      this._checkOpen();
      if (failures > 0) {
        this._attempt = failures;
        if (this._status !== "recovering" && this._status !== "connecting") this._setStatus("reconnecting", reason);
        await this._sleep(this._backoff(failures));
        this._checkOpen();
      }
      if (Date.now() - this._lostAt > this._giveUpMs) {
        this._shutdown("gave_up", new MatchdError("gave_up", `no connection for ${this._giveUpMs} ms`));
        throw new MatchdError("gave_up", `no connection for ${this._giveUpMs} ms`);
      }
      try {
        await this._ensureSession();
        this._checkOpen();
        this._wsUrl = url;
        const welcome = await this._open(url);
        this._checkOpen(); // frames that arrived with the welcome may have closed the client
        if (this._matchId !== null) await this._resumeHere();
        this._checkOpen();
        if (!this._ws) throw new MatchdError("socket_closed", "the connection closed");
        this._ready = true;
        this._lostAt = null;
        this._attempt = 0;
        const settled = this._matchId !== null ? "in_match" : "connected";
        if (this._status !== settled) this._setStatus(settled, reason === "connect" ? undefined : reason);
        return welcome;
      } catch (e) {
        if (e instanceof Redirect && redirects < MAX_REDIRECTS) {
          redirects++;
          url = wsEndpoint(e.url);
          this._dropSocket();
          this._wsUrl = url;
          this._setStatus("redirected", "redirect");
          continue; // straight there, no backoff
        }
        if (FATAL.has(e)) {
          this._shutdown(e.code, e);
          throw e;
        }
        this._checkOpen();
        this._dropSocket();
        this._sessionOk = false; // a refused upgrade may be a forgotten token: check it again
        failures++;
        url = this._wsBase; // the node may be gone: ask the base URL
        if (e && e.code === "draining") await this._sleep(this._drainWait());
      }
    }
  }

  /** How long to wait after `draining` before joining through the base URL. */
  _drainWait() {
    return this._draining ? Math.max(0, this._draining.until - Date.now()) : DRAIN_RETRY_DEFAULT_MS;
  }

  /** Opens a socket to `url` and waits for `welcome`. */
  async _open(url) {
    this._dropSocket();
    const gen = ++this._gen;
    const sep = url.includes("?") ? "&" : "?";
    const query = `protocol=${PROTOCOL_VERSION}&encoding=${this._encoding}&token=${encodeURIComponent(this._token)}`;
    let ws;
    try {
      ws = new this._WS(`${url}${sep}${query}`);
    } catch (e) {
      throw new MatchdError("socket_closed", `cannot open ${url}: ${e && e.message ? e.message : e}`);
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    this._draining = null;
    const welcome = this._wait(gen, (f) => f.type === "welcome", this._timeoutMs, "welcome");
    ws.onmessage = (ev) => this._onMessage(gen, ev.data);
    ws.onclose = () => this._onClose(gen);
    ws.onerror = () => {}; // a close event follows
    return welcome;
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  _dropSocket(code = 1000, reason = "") {
    const ws = this._ws;
    this._ws = null;
    this._ready = false;
    this._welcome = null;
    this._stopHeartbeat();
    const gen = this._gen++;
    this._failWaiters(gen, new MatchdError("socket_closed", "the connection closed"));
    // Calls sent on this socket and not answered go out again once the link
    // is back (an action only if the replay does not show its event).
    this._outbox.unshift(...this._inflight);
    this._inflight = [];
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  /** The socket closed by itself: reconnect if the link was up (a running operation handles its own failures). */
  _onClose(gen) {
    if (gen !== this._gen) return;
    const wasReady = this._ready;
    this._dropSocket();
    if (this._final) return;
    if (wasReady) this._lost("socket_closed");
  }

  /**
   * The link is gone (or must move): reconnect in the background, to `url`
   * (default: the node the client is on) and resume.
   */
  _lost(reason, { url = this._wsUrl, status = "reconnecting", delay = true } = {}) {
    if (this._final) return;
    this._dropSocket(1000, reason);
    this._wsUrl = url;
    if (this._lostAt === null) this._lostAt = Date.now();
    this._setStatus(status, reason);
    this._serial(() => this._establish(reason, { delay })).catch(() => {});
  }

  /** Ends the client's link for good (close(), replaced, kicked, gave up); rejects everything pending. */
  _shutdown(reason, err) {
    this._final = true;
    this._finalError = err;
    this._dropSocket(1000, reason);
    for (const s of [...this._sleepers]) s.resolve();
    for (const w of [...this._waiters]) {
      this._waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(err);
    }
    for (const call of [...this._calls.values(), ...this._leaves, ...this._outbox]) this._settle(call, err);
    this._setStatus("closed", reason);
  }

  // --- resume and join ---

  /** Resumes the current match on the open socket; returns when seated, or when the match is forgotten. */
  async _resumeHere() {
    let wait = 250;
    for (;;) {
      const answer = await this._request(
        { type: "resume", match_id: this._matchId, last_seq: this._lastSeq },
        isResumeAnswer,
        this._timeoutMs,
      );
      if (answer.type === "resumed") return; // _handle seated us; the replay follows
      if (answer.type === "joined") {
        // A snapshot instead of the missed events: whether an action sent
        // before the loss was applied cannot be told, so it is not re-sent.
        const err = new MatchdError("socket_closed", "the connection closed before the answer");
        for (const call of [...this._outbox]) if (call.kind === "act" && call.sentOnce) this._settle(call, err);
        return;
      }
      if (answer.type === "redirect") throw new Redirect(answer.url);
      if (RETRY_RESUME.has(answer.code)) {
        // The match's node died and its lease has not run out yet: ask again shortly.
        this._setStatus("recovering", answer.code);
        if (Date.now() - this._lostAt > this._giveUpMs) throw new MatchdError(answer.code, answer.message);
        await this._sleep(wait);
        this._checkOpen();
        wait = Math.min(wait * 2, this._backoffMax);
        continue;
      }
      if (FORGET_MATCH.has(answer.code)) {
        this._forgetMatch();
        for (const call of [...this._leaves]) if (call.sentOnce) this._settle(call, undefined, undefined);
        return;
      }
      if (answer.code === "already_in_match") return;
      throw new MatchdError(answer.code, answer.message);
    }
  }

  /** join / quick-join: follows redirects, retries after `draining` and after a lost socket. */
  _join(frame, quick) {
    if (this._userClosed) return Promise.reject(new MatchdError("closed", "the client was closed"));
    try {
      encodeJson(frame); // validate before queueing
    } catch (e) {
      return Promise.reject(e);
    }
    return this._serial(async () => {
      let redirects = 0;
      let drains = 0;
      let losses = 0;
      let busy = 0;
      for (;;) {
        await this._linkForJoin();
        let answer;
        try {
          answer = await this._request(frame, isJoinAnswer, this._timeoutMs);
        } catch (e) {
          if (e.code !== "socket_closed" || ++losses > JOIN_RETRIES) throw e;
          // The join may have seated us before the socket went: ask where we sit.
          if (quick) {
            const m = await this._currentMatch();
            if (m) frame = { type: "join", match_id: m.match_id };
          }
          continue;
        }
        if (answer.type === "joined") return answer;
        if (answer.type === "redirect") {
          if (++redirects > MAX_REDIRECTS) throw new MatchdError("too_many_redirects", "redirected too often");
          this._dropSocket();
          this._wsUrl = wsEndpoint(answer.url);
          this._setStatus("redirected", "redirect");
          continue;
        }
        if (RETRY_JOIN.has(answer.code) && ++busy <= JOIN_RETRIES) {
          await this._sleep(RETRY_JOIN_MS);
          continue;
        }
        if (answer.code === "draining" && ++drains <= JOIN_RETRIES) {
          // This node takes no new players: join through the base URL after the pause.
          if (!this._draining) this._draining = { until: Date.now() + DRAIN_RETRY_DEFAULT_MS };
          continue;
        }
        throw new MatchdError(answer.code, answer.message);
      }
    });
  }

  /** Before a join: leave a draining node (through the base URL) and make sure the link is up. */
  async _linkForJoin() {
    this._checkOpen();
    if (this._draining && this._matchId === null && this._isReady()) {
      await this._sleep(this._drainWait());
      this._checkOpen();
      this._dropSocket(1000, "draining");
      this._wsUrl = this._wsBase;
      this._setStatus("reconnecting", "draining");
    }
    if (!this._isReady()) {
      if (this._status === "idle" || this._status === "closed") this._setStatus("connecting");
      const reason = { connecting: "connect", redirected: "redirect" }[this._status] ?? "reconnect";
      await this._establish(reason);
    }
  }

  // --- frames out ---

  /** The frame in this client's encoding, for the server's protocol (throws MatchdError("invalid_message")). */
  _encode(frame) {
    return this._encoding === "bincode" ? encodeBincodeFor(frame, this._protocol) : encodeJson(frame);
  }

  /** Sends an encoded frame; false when the socket is gone or closing. */
  _sendRaw(data) {
    const ws = this._ws;
    if (!ws) return false;
    try {
      ws.send(data);
    } catch {
      return false; // closing: the close handler takes over
    }
    this._lastSent = Date.now();
    return true;
  }

  /** Registers a waiter for an answer on the current socket, then sends `frame`. */
  _request(frame, match, timeoutMs) {
    const gen = this._gen;
    if (!this._ws) return Promise.reject(new MatchdError("socket_closed", "not connected"));
    let data;
    try {
      data = this._encode(frame);
    } catch (e) {
      return Promise.reject(e);
    }
    const answer = this._wait(gen, match, timeoutMs, frame.type);
    if (!this._sendRaw(data)) this._failWaiters(gen, new MatchdError("socket_closed", "the connection closed"));
    return answer;
  }

  /** A frame of socket `gen` that `match` accepts, within `timeoutMs`. */
  _wait(gen, match, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const w = { gen, match, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        this._waiters.delete(w);
        reject(new MatchdError("timeout", `no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this._waiters.add(w);
    });
  }

  _failWaiters(gen, err) {
    for (const w of [...this._waiters]) {
      if (w.gen !== gen) continue;
      this._waiters.delete(w);
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  /** act / query / leave: queued until the link is up and no link operation runs. */
  _call(kind, frame, cs, timeoutMs) {
    if (this._final) return Promise.reject(this._finalError);
    if (this._status === "idle") return Promise.reject(new MatchdError("not_connected", "connect() first"));
    try {
      encodeJson(frame); // validate now, not when it is sent
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      // minSeq: only an event after it can answer an action (set when first sent).
      const call = { kind, frame, cs, resolve, reject, minSeq: 0, sentOnce: false, busy: 0, timer: null, done: false };
      call.timer = setTimeout(
        () => this._settle(call, new MatchdError("timeout", `no answer to ${frame.type} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      if (kind === "leave") this._leaves.push(call);
      else this._calls.set(cs, call);
      this._outbox.push(call);
      this._pump();
    });
  }

  /**
   * Sends the queued calls when the link is up, no link operation runs and
   * the replay of a resume has been delivered (so a re-sent action whose
   * event the replay showed is settled, not sent twice).
   */
  _pump() {
    if (!this._isReady() || this._ops > 0) return;
    if (this._matchId !== null && this._lastSeq < this._seqFloor) return; // replay under way
    while (this._outbox.length > 0 && this._ws) {
      const call = this._outbox.shift();
      if (!call.sentOnce) {
        call.sentOnce = true;
        call.minSeq = Math.max(this._lastSeq, this._seqFloor);
      }
      let data;
      try {
        data = this._encode(call.frame);
      } catch (e) {
        this._settle(call, e); // e.g. a field the server's protocol lacks
        continue;
      }
      this._inflight.push(call);
      this._sendRaw(data); // a failed send is re-sent after the reconnect
    }
  }

  /** Resolves (`err` undefined) or rejects a call, once. */
  _settle(call, err, value) {
    if (call.done) return;
    call.done = true;
    clearTimeout(call.timer);
    if (call.cs !== null) this._calls.delete(call.cs);
    const drop = (list) => {
      const i = list.indexOf(call);
      if (i >= 0) list.splice(i, 1);
    };
    drop(this._leaves);
    drop(this._outbox);
    drop(this._inflight);
    if (err) call.reject(err);
    else call.resolve(value);
  }

  // --- heartbeat ---

  _startHeartbeat(gen, ms) {
    this._stopHeartbeat();
    const period = Math.max(50, ms);
    // The server closes a client silent for MATCHD_CLIENT_TIMEOUT_MS (5 s by
    // default); we call a server dead after as long without a frame, since
    // every ping we send is answered.
    const deadAfter = Math.max(5000, 5 * period);
    this._lastSent = this._lastRecv = Date.now();
    this._heartbeat = setInterval(() => {
      if (gen !== this._gen || !this._ws) return;
      const now = Date.now();
      if (now - this._lastRecv > deadAfter) {
        if (this._ready) this._lost("heartbeat_timeout");
        else this._dropSocket(); // fails the operation waiting on it
        return;
      }
      if (now - this._lastSent >= period * 0.75) this._sendRaw(this._encode({ type: "ping", nonce: ++this._nonce }));
    }, period);
  }

  _stopHeartbeat() {
    if (this._heartbeat !== null) clearInterval(this._heartbeat);
    this._heartbeat = null;
  }

  // --- frames in ---

  _onMessage(gen, data) {
    if (gen !== this._gen) return;
    this._lastRecv = Date.now();
    let frame;
    try {
      frame = typeof data === "string" ? decodeJson(data) : decodeBincode(asBytes(data));
    } catch (e) {
      if (e instanceof MatchdError && e.code === "unknown_type") return; // a newer server's message: skip it
      this._emit("error", e instanceof MatchdError ? e : new MatchdError("malformed_frame", String(e)));
      return;
    }
    this._emit("frame", frame);
    try {
      this._handle(gen, frame);
    } catch (e) {
      report(e);
    }
  }

  /** Offers `frame` to the waiter of a link operation; true when one took it. */
  _offer(gen, frame) {
    for (const w of this._waiters) {
      if (w.gen === gen && w.match(frame)) {
        this._waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(frame);
        return true;
      }
    }
    return false;
  }

  _handle(gen, frame) {
    switch (frame.type) {
      case "welcome":
        this._welcome = frame;
        this._playerId = frame.player_id;
        this._protocol = Math.min(frame.protocol ?? 1, PROTOCOL_VERSION);
        this._startHeartbeat(gen, frame.heartbeat_ms);
        break;
      case "joined":
        this._matchId = frame.match_id;
        this._seat = frame.seat;
        this._lastSeq = frame.seq;
        this._seqFloor = frame.seq;
        this._saveMatch();
        this._setStatus("in_match");
        this._emit("joined", frame);
        break;
      case "resumed":
        if (frame.match_id === this._matchId) {
          this._seat = frame.seat;
          this._seqFloor = frame.seq;
          this._saveMatch();
          this._setStatus("in_match", "resumed");
        }
        break;
      case "event":
        this._onEvent(frame);
        break;
      case "ended":
        this._onEnded(frame);
        break;
      case "rejected": {
        const call = this._calls.get(frame.client_seq);
        if (!call || !call.sentOnce) break;
        if (frame.code === "busy" && call.busy < BUSY_RETRIES) {
          // The match's mailbox was full: the frame was not processed; send it again shortly.
          call.busy++;
          const i = this._inflight.indexOf(call);
          if (i >= 0) this._inflight.splice(i, 1);
          setTimeout(() => {
            if (call.done) return;
            this._outbox.push(call);
            this._pump();
          }, 50 + Math.random() * 50);
          break;
        }
        this._settle(call, new MatchdError(frame.code, frame.message));
        break;
      }
      case "reply": {
        const call = this._calls.get(frame.client_seq);
        if (call && call.sentOnce && call.kind === "query") this._settle(call, undefined, frame.reply);
        break;
      }
      case "left": {
        if (frame.match_id === this._matchId) this._forgetMatch();
        const call = this._leaves.find((c) => c.sentOnce);
        if (call) this._settle(call, undefined, undefined);
        if (this._matchId === null && this._ready) this._setStatus("connected", "left");
        this._emit("left", frame);
        break;
      }
      case "draining":
        this._draining = { until: Date.now() + frame.retry_after_ms };
        this._setStatus(this._status, "draining");
        break;
      case "redirect":
        // An answer to join/resume, or a draining node handing its match over.
        if (!this._offer(gen, frame) && frame.match_id === this._matchId) {
          this._lost("redirect", { url: wsEndpoint(frame.url), status: "redirected", delay: false });
        }
        return;
      case "notice":
        this._emit("notice", frame);
        break;
      case "error":
        this._onError(gen, frame);
        return;
      default:
        break; // pong, and types this version does not know
    }
    this._offer(gen, frame);
  }

  _onEvent(frame) {
    if (frame.match_id !== this._matchId) return; // from a match we are no longer in
    if (frame.seq <= this._lastSeq) return; // already delivered (a replay)
    if (frame.seq !== this._lastSeq + 1) {
      // A gap: resume from the last event we have.
      this._lost("gap");
      return;
    }
    this._lastSeq = frame.seq;
    this._saveMatch();
    this._emit("event", frame);
    if (frame.client_seq !== null && frame.seat === this._seat) {
      const call = this._calls.get(frame.client_seq);
      if (call && call.kind === "act" && call.sentOnce && frame.seq > call.minSeq) this._settle(call, undefined, frame);
    }
    if (frame.seq === this._seqFloor) this._pump(); // the replay is complete
  }

  _onEnded(frame) {
    if (frame.match_id !== this._matchId) return;
    const seat = this._seat;
    this._forgetMatch();
    if (this._ready) this._setStatus("connected", "ended");
    this._emit("ended", frame);
    if (frame.client_seq !== null && frame.seat === seat) {
      const call = this._calls.get(frame.client_seq);
      if (call && call.kind === "act" && call.sentOnce) this._settle(call, undefined, frame);
    }
    this._pump(); // calls held back for a replay go out now (and get not_in_match)
  }

  _onError(gen, frame) {
    const err = new MatchdError(frame.code, frame.message);
    switch (frame.code) {
      case "replaced": // another connection of this player took the seat
      case "kicked": // an operator removed this player
        this._shutdown(frame.code, err);
        return;
      case "slow_consumer": // the server closes with 1008: come back and resume
        if (this._ready) this._lost("slow_consumer");
        else this._dropSocket(); // fails the operation waiting on this socket
        return;
      case "node_stopping": // the drain deadline passed: resume elsewhere through the base URL
      case "match_moved": // another node took the match over: resume it through the base URL
        if (this._ready) this._lost(frame.code, { url: this._wsBase });
        else this._dropSocket();
        return;
      case "match_stopped": // the match stopped without a result
      case "match_gone":
        this._forgetMatch();
        if (this._ready) this._setStatus("connected", frame.code);
        for (const call of [...this._inflight]) this._settle(call, err);
        this._pump();
        return;
      default:
        break;
    }
    if (this._offer(gen, frame)) return; // the answer to a join or resume
    // An answer to a sent call (not_in_match, a bad frame): the oldest one.
    if (this._inflight.length > 0) {
      this._settle(this._inflight[0], err);
      return;
    }
    this._emit("error", err);
  }
}
