// Type declarations of the matchd JavaScript client (matchd.js), served by
// every node at /client/matchd.js and /client/matchd.d.ts. Protocol 2; see
// PROTOCOL.md. No runtime dependencies: works in browsers and in Node.js
// (22+ has a global WebSocket; on Node 20 pass the `ws` package's class).

/** The protocol version this library speaks (sent as `?protocol=` on connect). */
export const PROTOCOL_VERSION: 2;

export type Encoding = "json" | "bincode";
export type MatchId = number;
export type PlayerId = number;
export type Seat = number;

// ---- payloads (tagged by `kind`, exactly as in PROTOCOL.md's JSON) ----

export type Action =
  | { kind: "mark"; x: number; y: number }
  | { kind: "place"; card: number; x: number; y: number }
  | { kind: "ready" }
  | { kind: "concede" };

export type Query = { kind: "valid_cells"; card: number } | { kind: "state" };

export type Reply =
  | { kind: "cells"; cells: [number, number][] }
  | { kind: "state"; state: State };

export interface SeatView { seat: Seat; player_id: PlayerId; connected: boolean }
export interface CardView { card: number; unit: string }
export interface UnitView { unit_id: number; seat: Seat; unit: string; x: number; y: number; hp: number }

export type State =
  | { kind: "sandbox"; width: number; height: number; cells: number[]; seats: SeatView[] }
  | {
      kind: "tactics";
      phase: string;
      tick: number;
      you: Seat | null;
      hand: CardView[];
      opponent_hand_size: number;
      units: UnitView[];
      bases: [number, number];
      ready: [boolean, boolean];
      seats: SeatView[];
    };

export type GameEvent =
  | { kind: "player_joined"; seat: Seat; player_id: PlayerId }
  | { kind: "player_left"; seat: Seat }
  | { kind: "player_disconnected"; seat: Seat }
  | { kind: "player_reconnected"; seat: Seat }
  | { kind: "marked"; x: number; y: number; count: number }
  | { kind: "phase"; phase: string }
  | { kind: "placed"; seat: Seat; card: number; unit: string; unit_id: number; x: number; y: number; hp: number }
  | { kind: "player_ready"; seat: Seat }
  | { kind: "attacked"; unit_id: number; target_seat: Seat; target_unit: number | null; damage: number; hp: number }
  | { kind: "destroyed"; unit_id: number };

export interface MatchResult { winner: Seat | null; reason: string; scores: number[] }

// ---- frames ----

export interface Welcome { type: "welcome"; player_id: PlayerId; node_id: string; heartbeat_ms: number; protocol: number }
export interface Joined { type: "joined"; match_id: MatchId; ruleset: string; seat: Seat; seq: number; state: State }
/** One authoritative event. `client_seq` is set when an action caused it (that of the acting `seat`). */
export interface EventFrame { type: "event"; match_id: MatchId; seq: number; seat: Seat | null; event: GameEvent; client_seq: number | null }
export interface Ended { type: "ended"; match_id: MatchId; seq: number; result: MatchResult; seat: Seat | null; client_seq: number | null }

/** A frame from the server, decoded from either encoding to the same shape. */
export type ServerFrame =
  | Welcome
  | Joined
  | EventFrame
  | { type: "rejected"; client_seq: number; code: string; message: string }
  | { type: "reply"; client_seq: number; reply: Reply }
  | Ended
  | { type: "error"; code: string; message: string }
  | { type: "pong"; nonce: number }
  | { type: "left"; match_id: MatchId }
  | { type: "resumed"; match_id: MatchId; seat: Seat; last_seq: number; seq: number }
  | { type: "draining"; retry_after_ms: number }
  | { type: "redirect"; match_id: MatchId; url: string; node_id: string | null }
  | { type: "notice"; message: string };

export type ClientFrame =
  | { type: "join"; match_id?: MatchId | null; ruleset?: string | null; max_seats?: number | null }
  | { type: "action"; client_seq: number; action: Action }
  | { type: "query"; client_seq: number; query: Query }
  | { type: "leave" }
  | { type: "ping"; nonce: number }
  | { type: "resume"; match_id: MatchId; last_seq: number };

// ---- the client ----

/** A refusal from the server (`rejected` or `error`), or a client-side timeout (`timeout`). */
export class MatchdError extends Error {
  readonly code: string;
  constructor(code: string, message: string);
}

/**
 * `idle` (not connected), `connecting`, `connected` (no match),
 * `in_match`, `reconnecting` (socket lost; resuming), `redirected`
 * (following a redirect), `recovering` (the match's node died; waiting
 * for its lease), `closed` (close() was called, or the server removed this
 * client for good: kicked, or replaced by a newer connection).
 */
export type Status =
  | "idle" | "connecting" | "connected" | "in_match"
  | "reconnecting" | "redirected" | "recovering" | "closed";

export interface StatusChange {
  status: Status;
  /** Why: e.g. "socket_closed", "redirect", "match_recovering", "draining", "replaced", "kicked". */
  reason?: string;
  /** The node URL the client is on now. */
  url: string;
  /** Reconnect attempts since the last good connection. */
  attempt: number;
}

export interface ClientOptions {
  /** A node's HTTP base URL, e.g. "http://127.0.0.1:8080" (a load balancer in production). */
  url: string;
  /**
   * A session token, or the JWT the game's auth service signed for this player
   * (nodes with MATCHD_AUTH=jwt|both accept it as the token directly; give a fresh
   * one before it expires, since a refused token is not retried). Default: an
   * anonymous session (POST /v1/sessions).
   */
  token?: string;
  /** Default "json". */
  encoding?: Encoding;
  /**
   * Keeps the session (and the current match and last seq, so a reloaded
   * page resumes) across page reloads. Default: `localStorage` in browsers,
   * none in Node. `null` turns it off.
   */
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  /** Storage key prefix (default "matchd"), for several clients in one origin. */
  storageKey?: string;
  /** WebSocket constructor (default: globalThis.WebSocket; on Node 20 pass require("ws")). */
  WebSocket?: any;
  /** fetch (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Timeout of act()/query()/join() in ms (default 5000). */
  requestTimeoutMs?: number;
  /** Reconnect backoff: first delay (default 100 ms), cap (default 5000 ms); full jitter. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Give up reconnecting after this long without a good connection (default 60000 ms). */
  reconnectGiveUpMs?: number;
}

export interface JoinOptions {
  /** Quick-join only: a match with exactly this many seats (within the ruleset's bounds). */
  maxSeats?: number;
}

export interface CallOptions { timeoutMs?: number }

export type Listener<T> = (value: T) => void;

export interface ClientEvents {
  /** Every event once, in seq order, with no gap (duplicates from replays are dropped). */
  event: EventFrame;
  /** A seat was taken (or, after a resume that could not replay, a fresh snapshot). */
  joined: Joined;
  ended: Ended;
  left: { type: "left"; match_id: MatchId };
  status: StatusChange;
  notice: { type: "notice"; message: string };
  /** An `error` frame not tied to a pending call. */
  error: MatchdError;
  /** Every decoded frame, for debugging. */
  frame: ServerFrame;
}

export class MatchdClient {
  constructor(options: ClientOptions);
  readonly status: Status;
  /** The node URL the client talks to now (after redirects). */
  readonly url: string;
  readonly playerId: PlayerId | null;
  readonly token: string | null;
  readonly matchId: MatchId | null;
  readonly seat: Seat | null;
  /** The seq of the last event delivered (the match's `joined.seq` right after a join). */
  readonly lastSeq: number;

  /** Gets or creates the session (anonymous unless `token` was given); no socket yet. */
  session(): Promise<{ token: string; playerId: PlayerId }>;
  /**
   * Opens the socket and waits for `welcome`. If the storage holds a match
   * this player was in, resumes it (emitting `joined` when a snapshot was
   * needed). Resolves with the welcome frame.
   */
  connect(): Promise<Welcome>;
  /** Quick-join a ruleset: the fullest open match on this node, else a new one. */
  quickJoin(ruleset: string, options?: JoinOptions): Promise<Joined>;
  /** Join a match by id (follows a redirect to its node). */
  join(matchId: MatchId): Promise<Joined>;
  /** Resolves on `left`. */
  leave(): Promise<void>;
  /**
   * Sends an action. Resolves with the first event it caused (client_seq
   * and seat match), or with `ended` if it ended the match without an event;
   * rejects with MatchdError(code) on `rejected`, or "timeout".
   */
  act(action: Action, options?: CallOptions): Promise<EventFrame | Ended>;
  /** Sends a query; resolves with the reply, rejects on `rejected` or "timeout". */
  query(query: Query, options?: CallOptions): Promise<Reply>;
  /** Subscribes; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void;
  /** Async iteration over events (the `event` stream) until close(). */
  events(): AsyncIterableIterator<EventFrame>;
  /** Closes the socket for good (no reconnect). Keeps the stored session. */
  close(): void;
}

// ---- codecs (exported for tests and for games that want the raw frames) ----

export function encodeJson(frame: ClientFrame): string;
export function decodeJson(text: string): ServerFrame;
/** bincode 2 standard layout of protocol 2 (PROTOCOL.md, "Binary encoding"). */
export function encodeBincode(frame: ClientFrame): Uint8Array;
export function decodeBincode(bytes: Uint8Array): ServerFrame;
