// The matchd demo: a lobby, the sandbox board and a playable tactics match,
// on the public API of the client library only (/client/matchd.js).
//
// Each tab is its own player: the library keeps the session, the match and
// the last seq in sessionStorage, so a reload of the tab resumes the match
// (a second tab of the same player would take the seat over instead).
//
// For tests (and the curious), `window.matchdDemo` exposes the client, the
// record of every event seq this tab saw (kept across reloads) and a hook
// that cuts the library's socket the way a network failure would.

import { MatchdClient } from "/client/matchd.js";

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- sockets --

// The library takes a WebSocket constructor; this one remembers its sockets
// so that a test (or you, from the console) can cut them.
const NativeWebSocket = globalThis.WebSocket;
const liveSockets = new Set();
const counters = { reconnects: 0, redirects: 0, refused: 0 };
let offline = false;
class DemoWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    if (offline) {
      // A simulated network outage: the connection fails before it opens.
      counters.refused += 1;
      this.close();
      return;
    }
    liveSockets.add(this);
    this.addEventListener("close", () => liveSockets.delete(this));
  }
}

// ------------------------------------------------------------- the record --

// Every event/joined/ended seq this tab saw, per match, kept in
// sessionStorage so it survives a reload: the proof that a resume neither
// missed nor repeated an event.
const RECORD_KEY = "matchd-demo-record";
const RECORD_MAX = 20000;

function loadRecord() {
  try {
    const parsed = JSON.parse(sessionStorage.getItem(RECORD_KEY) || "null");
    if (parsed && Array.isArray(parsed.entries)) return parsed;
  } catch {
    // a corrupt record is dropped
  }
  return { matchId: null, ruleset: null, entries: [] };
}

const record = loadRecord();

function saveRecord() {
  if (record.entries.length > RECORD_MAX) {
    record.entries.splice(0, record.entries.length - RECORD_MAX);
  }
  try {
    sessionStorage.setItem(RECORD_KEY, JSON.stringify(record));
  } catch {
    // storage full or off: the page still plays
  }
}

function recordEntry(entry) {
  record.entries.push(entry);
  saveRecord();
}

// ----------------------------------------------------------------- client --

const client = new MatchdClient({
  url: location.origin,
  storage: sessionStorage,
  storageKey: "matchd-demo",
  WebSocket: DemoWebSocket,
});


const statuses = [];

window.matchdDemo = {
  client,
  record,
  statuses,
  counters,
  /** The seqs of the events this tab saw in its current match, in order. */
  seqs: () => record.entries.filter((e) => e.type === "event").map((e) => e.seq),
  /** Cuts the library's socket(s) like a network failure; returns how many. */
  cutSocket(code = 4000) {
    let n = 0;
    for (const ws of [...liveSockets]) {
      if (ws.readyState === NativeWebSocket.OPEN || ws.readyState === NativeWebSocket.CONNECTING) {
        try {
          ws.close(code, "cut by the demo's test hook");
          n += 1;
        } catch {
          // already closing
        }
      }
    }
    return n;
  },
  /**
   * Simulates a network outage: while offline, every new socket fails
   * before it opens (the library backs off and retries).
   */
  setOffline(value) {
    offline = !!value;
  },
  /** Marks a sandbox cell as a click would (for tests and the console). */
  mark: (x, y) => client.act({ kind: "mark", x, y }),
};

// ------------------------------------------------------------------ model --

const ui = {
  view: "lobby", // lobby | match
  matchId: null,
  ruleset: null,
  seat: null,
  state: null, // the local model of the match (see fromState)
  ended: null,
  selectedCard: null,
  validCells: new Set(),
  builtFor: null, // the match whose board the DOM holds
  handSig: "",
  stateQuery: null,
  nodeId: null,
};

const UNIT_INFO = {
  guard: { letter: "G", hp: 14, text: "front row · 3 dmg / 0.8 s · reach 2" },
  archer: { letter: "A", hp: 6, text: "back row · 2 dmg / 0.6 s · any depth" },
  lancer: { letter: "L", hp: 9, text: "next to an ally · 4 dmg / 1 s" },
  mage: { letter: "M", hp: 5, text: "middle row · 5 dmg / 1.5 s · side lanes" },
  wall: { letter: "W", hp: 20, text: "one per column · blocks" },
};
const BASE_HP = 20;
const COLS = 5;
const ROWS = 3;

/** The local model from a snapshot `state` (joined, or a state reply). */
function fromState(state) {
  if (state.kind === "sandbox") {
    return {
      kind: "sandbox",
      width: state.width,
      height: state.height,
      cells: [...state.cells],
      seats: new Map(state.seats.map((s) => [s.seat, { ...s }])),
    };
  }
  return {
    kind: "tactics",
    phase: state.phase,
    you: state.you,
    hand: state.hand.map((c) => ({ ...c })),
    opponentHand: state.opponent_hand_size,
    units: new Map(state.units.map((u) => [u.unit_id, { ...u }])),
    bases: [...state.bases],
    ready: [...state.ready],
    seats: new Map(state.seats.map((s) => [s.seat, { ...s }])),
  };
}

/** Applies one event to the model. Every step is idempotent. */
function applyEvent(model, frame) {
  const ev = frame.event;
  switch (ev.kind) {
    case "player_joined":
      model.seats.set(ev.seat, { seat: ev.seat, player_id: ev.player_id, connected: true });
      break;
    case "player_left":
      model.seats.delete(ev.seat);
      break;
    case "player_disconnected":
    case "player_reconnected": {
      const s = model.seats.get(ev.seat);
      if (s) s.connected = ev.kind === "player_reconnected";
      break;
    }
    case "marked":
      if (model.kind === "sandbox") model.cells[ev.y * model.width + ev.x] = ev.count;
      break;
    case "phase":
      if (model.kind === "tactics") model.phase = ev.phase;
      break;
    case "player_ready":
      if (model.kind === "tactics") model.ready[ev.seat] = true;
      break;
    case "placed":
      if (model.kind === "tactics" && !model.units.has(ev.unit_id)) {
        model.units.set(ev.unit_id, {
          unit_id: ev.unit_id, seat: ev.seat, unit: ev.unit, x: ev.x, y: ev.y, hp: ev.hp,
        });
        if (ev.seat === model.you) {
          model.hand = model.hand.filter((c) => c.card !== ev.card);
        } else if (model.opponentHand > 0) {
          model.opponentHand -= 1;
        }
      }
      break;
    case "attacked":
      if (model.kind === "tactics") {
        if (ev.target_unit == null) {
          model.bases[ev.target_seat] = ev.hp;
          flash(`base-${ev.target_seat}`);
        } else {
          const u = model.units.get(ev.target_unit);
          if (u) u.hp = ev.hp;
          flash(`unit-${ev.target_unit}`);
        }
        flash(`shot-${ev.unit_id}`);
      }
      break;
    case "destroyed":
      if (model.kind === "tactics") model.units.delete(ev.unit_id);
      break;
    default:
      break;
  }
}

// Short highlights (a unit that was hit, one that fired).
const flashes = new Map();
function flash(key) {
  flashes.set(key, performance.now() + 350);
  setTimeout(render, 360);
}
function flashing(key) {
  const until = flashes.get(key);
  if (until === undefined) return false;
  if (until < performance.now()) {
    flashes.delete(key);
    return false;
  }
  return true;
}

// ------------------------------------------------------------- event log --

const LOG_ROWS = 200;

function describe(frame) {
  const ev = frame.event;
  switch (ev.kind) {
    case "player_joined": return `seat ${ev.seat} joined (player ${ev.player_id})`;
    case "player_left": return `seat ${ev.seat} left`;
    case "player_disconnected": return `seat ${ev.seat} disconnected`;
    case "player_reconnected": return `seat ${ev.seat} reconnected`;
    case "marked": return `(${ev.x},${ev.y}) marked → ${ev.count}`;
    case "phase": return `phase: ${ev.phase}`;
    case "placed": return `seat ${ev.seat} placed ${ev.unit} at (${ev.x},${ev.y})`;
    case "player_ready": return `seat ${ev.seat} is ready`;
    case "attacked":
      return ev.target_unit == null
        ? `unit ${ev.unit_id} hit base ${ev.target_seat}: −${ev.damage} → ${ev.hp}`
        : `unit ${ev.unit_id} hit unit ${ev.target_unit}: −${ev.damage} → ${ev.hp}`;
    case "destroyed": return `unit ${ev.unit_id} destroyed`;
    default: return ev.kind;
  }
}

function logLine(text, { seq = null, kind = "info" } = {}) {
  const list = $("log");
  const li = document.createElement("li");
  li.className = `log-${kind}`;
  if (seq != null) li.dataset.seq = String(seq);
  const s = document.createElement("span");
  s.className = "log-seq";
  s.textContent = seq != null ? `#${seq}` : "·";
  const t = document.createElement("span");
  t.className = "log-text";
  t.textContent = text;
  li.append(s, t);
  list.prepend(li);
  while (list.children.length > LOG_ROWS) list.lastElementChild.remove();
}

function showMessage(text, kind = "info") {
  const el = $("message");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

// ---------------------------------------------------------------- status --

let lastStatus = "idle";

function renderStatus() {
  const box = $("status");
  box.dataset.status = client.status;
  $("status-text").textContent = client.status;
  let host = "";
  try {
    host = new URL(client.url).host;
  } catch {
    host = client.url || "";
  }
  $("node").textContent = ui.nodeId ? `${ui.nodeId} (${host})` : host || "–";
  $("reconnects").textContent = String(counters.reconnects);
  $("redirects").textContent = String(counters.redirects);
}

client.on("status", (change) => {
  statuses.push({ status: change.status, reason: change.reason ?? null, url: change.url, attempt: change.attempt });
  if (statuses.length > 500) statuses.shift();
  const wasUp = lastStatus === "in_match" || lastStatus === "connected";
  if (change.status === "reconnecting" && wasUp) counters.reconnects += 1;
  if (change.status === "redirected") counters.redirects += 1;
  lastStatus = change.status;
  const why = change.reason ? ` (${change.reason})` : "";
  logLine(`status ${change.status}${why}${change.attempt ? `, attempt ${change.attempt}` : ""}`, { kind: "status" });
  renderStatus();

  // The library emits `joined`/`ended` right after the status they cause:
  // look at the outcome once those listeners have run.
  Promise.resolve().then(() => {
    if (change.status === "in_match") ensureState();
    if (change.status === "connected" && client.matchId == null && ui.view === "match" && !ui.ended) {
      // The match is gone from under us (it could not be resumed, or it
      // stopped without a result): back to the lobby.
      toLobby();
      showMessage(`The match is gone${change.reason ? ` (${change.reason})` : ""}.`, "error");
    }
  });
  if (change.status === "closed") {
    if (change.reason === "replaced") showMessage("Another connection of this player took the seat.", "error");
    else if (change.reason === "kicked") showMessage("An operator removed this player.", "error");
    else if (change.reason === "gave_up") showMessage("The connection is lost for good: reload the page to try again.", "error");
  }
});

client.on("frame", (frame) => {
  if (frame.type === "welcome") {
    ui.nodeId = frame.node_id;
    renderStatus();
  } else if (frame.type === "redirect") {
    logLine(`redirect to ${frame.node_id ?? frame.url}`, { kind: "status" });
  } else if (frame.type === "draining") {
    logLine("the node is draining", { kind: "status" });
  }
});

client.on("notice", (n) => {
  logLine(`notice: ${n.message}`, { kind: "notice" });
  showMessage(n.message, "notice");
});

client.on("error", (err) => {
  logLine(`error ${err.code}: ${err.message}`, { kind: "error" });
});

// ----------------------------------------------------------------- match --

client.on("joined", (joined) => {
  const same = record.matchId === joined.match_id;
  if (!same) {
    record.matchId = joined.match_id;
    record.ruleset = joined.ruleset;
    record.entries = [];
  }
  recordEntry({ type: "joined", seq: joined.seq });
  enterMatch(joined.match_id, joined.ruleset, joined.seat);
  ui.state = fromState(joined.state);
  logLine(`${same ? "snapshot of" : "joined"} match ${joined.match_id} (${joined.ruleset}) as seat ${joined.seat}`, {
    seq: joined.seq, kind: "joined",
  });
  render();
});

client.on("event", (frame) => {
  if (record.matchId !== frame.match_id) {
    record.matchId = frame.match_id;
    record.entries = [];
  }
  recordEntry({ type: "event", seq: frame.seq, kind: frame.event.kind });
  if (ui.state) applyEvent(ui.state, frame);
  if (frame.event.kind === "phase") {
    clearSelection();
    if (frame.event.phase === "battle") showMessage("");
  }
  if (frame.event.kind === "placed" && frame.event.seat === ui.seat) refreshValidCells();
  logLine(describe(frame), { seq: frame.seq, kind: frame.event.kind });
  render();
});

client.on("ended", (ended) => {
  recordEntry({ type: "ended", seq: ended.seq });
  ui.ended = ended;
  if (ui.state && ui.state.kind === "tactics") {
    ui.state.phase = "ended";
  }
  clearSelection();
  logLine(`ended: ${ended.result.reason}${ended.result.winner != null ? `, seat ${ended.result.winner} wins` : ""}`, {
    seq: ended.seq, kind: "ended",
  });
  render();
});

client.on("left", (left) => {
  logLine(`left match ${left.match_id}`, { kind: "status" });
  toLobby();
});

function enterMatch(matchId, ruleset, seat) {
  if (ui.matchId !== matchId) {
    ui.ended = null;
    clearSelection();
  }
  ui.view = "match";
  ui.matchId = matchId;
  ui.ruleset = ruleset;
  ui.seat = seat;
  showMessage("");
}

function toLobby() {
  ui.view = "lobby";
  ui.matchId = null;
  ui.ruleset = null;
  ui.seat = null;
  ui.state = null;
  ui.ended = null;
  ui.builtFor = null;
  clearSelection();
  render();
  refreshLobby();
}

/**
 * After a reload that resumed without a snapshot the page has no model of
 * the match: ask for the state. Events that arrive meanwhile are applied on
 * top; applying an event twice changes nothing, so the order is harmless.
 */
async function ensureState() {
  if (client.matchId == null) return;
  if (ui.state && ui.matchId === client.matchId) return;
  if (ui.stateQuery) return;
  const matchId = client.matchId;
  ui.stateQuery = client
    .query({ kind: "state" })
    .then((reply) => {
      if (reply.kind !== "state" || client.matchId !== matchId) return;
      const ruleset = reply.state.kind;
      enterMatch(matchId, record.ruleset && record.matchId === matchId ? record.ruleset : ruleset, client.seat);
      ui.state = fromState(reply.state);
      logLine(`resumed match ${matchId} as seat ${client.seat}`, { seq: client.lastSeq, kind: "joined" });
      render();
    })
    .catch((err) => logLine(`state query failed: ${err.code ?? err.message}`, { kind: "error" }))
    .finally(() => {
      ui.stateQuery = null;
    });
}

// ---------------------------------------------------------------- actions --

async function run(label, fn) {
  try {
    return await fn();
  } catch (err) {
    const code = err && err.code ? err.code : "error";
    showMessage(`${label}: ${code}${err && err.message && err.message !== code ? ` — ${err.message}` : ""}`, "error");
    logLine(`${label} failed: ${code}`, { kind: "error" });
    return undefined;
  }
}

function clearSelection() {
  ui.selectedCard = null;
  ui.validCells = new Set();
}

async function selectCard(card) {
  const model = ui.state;
  if (!model || model.kind !== "tactics" || ui.ended) return;
  if (ui.selectedCard === card) {
    clearSelection();
    render();
    return;
  }
  ui.selectedCard = card;
  ui.validCells = new Set();
  render();
  await refreshValidCells();
}

async function refreshValidCells() {
  const card = ui.selectedCard;
  if (card == null) return;
  const model = ui.state;
  if (!model || !model.hand.some((c) => c.card === card)) {
    clearSelection();
    render();
    return;
  }
  const reply = await run("valid cells", () => client.query({ kind: "valid_cells", card }));
  if (ui.selectedCard !== card || !reply || reply.kind !== "cells") return;
  ui.validCells = new Set(reply.cells.map(([x, y]) => `${x},${y}`));
  if (ui.validCells.size === 0) showMessage("No cell takes this card now.", "info");
  render();
}

async function clickMyCell(x, y) {
  const model = ui.state;
  if (!model || model.kind !== "tactics") return;
  const card = ui.selectedCard;
  if (card == null) {
    showMessage("Pick a card from your hand first.", "info");
    return;
  }
  if (!ui.validCells.has(`${x},${y}`)) {
    showMessage("That cell does not take this card.", "info");
    return;
  }
  const done = await run("place", () => client.act({ kind: "place", card, x, y }));
  if (done) {
    showMessage("");
    if (ui.selectedCard === card) clearSelection();
    render();
  }
}

async function markCell(x, y) {
  await run("mark", () => client.act({ kind: "mark", x, y }));
}

// ------------------------------------------------------------------ render --

function render() {
  renderStatus();
  $("lobby").hidden = ui.view !== "lobby";
  $("match").hidden = ui.view !== "match";
  if (ui.view !== "match") return;

  $("match-id").textContent = ui.matchId != null ? String(ui.matchId) : "";
  $("ruleset").textContent = ui.ruleset ?? "";
  $("seat").textContent = ui.seat != null ? String(ui.seat) : "–";
  $("seq").textContent = String(client.lastSeq ?? 0);
  $("leave").hidden = !!ui.ended;

  const model = ui.state;
  const seatsLine = $("seats-line");
  if (model) {
    const seats = [...model.seats.values()].sort((a, b) => a.seat - b.seat);
    const on = seats.filter((s) => s.connected).length;
    seatsLine.textContent = `${seats.length} seated, ${on} connected`;
  } else {
    seatsLine.textContent = "loading…";
  }

  $("sandbox-view").hidden = !model || model.kind !== "sandbox";
  $("tactics-view").hidden = !model || model.kind !== "tactics";
  if (model && model.kind === "sandbox") renderSandbox(model);
  if (model && model.kind === "tactics") renderTactics(model);
  renderResult(model);
}

function renderSandbox(model) {
  const board = $("sandbox-board");
  const key = `sandbox-${ui.matchId}-${model.width}x${model.height}`;
  if (ui.builtFor !== key) {
    board.replaceChildren();
    board.style.setProperty("--cols", String(model.width));
    for (let y = 0; y < model.height; y++) {
      for (let x = 0; x < model.width; x++) {
        const b = document.createElement("button");
        b.className = "scell";
        b.setAttribute("data-testid", `cell-${x}-${y}`);
        b.dataset.x = String(x);
        b.dataset.y = String(y);
        b.innerHTML = `<span class="count"></span><span class="xy">${x},${y}</span>`;
        b.addEventListener("click", () => markCell(x, y));
        board.append(b);
      }
    }
    ui.builtFor = key;
  }
  const max = Math.max(1, ...model.cells);
  for (const b of board.children) {
    const x = Number(b.dataset.x);
    const y = Number(b.dataset.y);
    const count = model.cells[y * model.width + x] ?? 0;
    b.dataset.count = String(count);
    b.querySelector(".count").textContent = String(count);
    b.style.setProperty("--heat", String(count === 0 ? 0 : 0.15 + 0.85 * (count / max)));
    b.disabled = !!ui.ended;
  }
}

function buildTacticsBoard(boardEl, mine) {
  boardEl.replaceChildren();
  // Mine: the front row (y = 0) on top, next to the front line. The
  // opponent's: mirrored, its front row at the bottom. Column x faces x.
  const rows = mine ? [0, 1, 2] : [2, 1, 0];
  for (const y of rows) {
    for (let x = 0; x < COLS; x++) {
      const cell = document.createElement(mine ? "button" : "div");
      cell.className = "tcell";
      cell.setAttribute("data-testid", mine ? `cell-${x}-${y}` : `enemy-cell-${x}-${y}`);
      cell.dataset.x = String(x);
      cell.dataset.y = String(y);
      if (mine) cell.addEventListener("click", () => clickMyCell(x, y));
      boardEl.append(cell);
    }
  }
}

function unitHtml(u) {
  const info = UNIT_INFO[u.unit] ?? { letter: "?", hp: u.hp };
  const pct = Math.max(0, Math.min(100, Math.round((100 * u.hp) / info.hp)));
  return `<span class="unit unit-${u.unit}" data-unit-id="${u.unit_id}">` +
    `<span class="glyph">${info.letter}</span>` +
    `<span class="uname">${u.unit}</span>` +
    `<span class="uhp" data-pct="${pct}"><i></i></span>` +
    `<span class="uhpn">${u.hp}</span></span>`;
}

function renderTactics(model) {
  const key = `tactics-${ui.matchId}`;
  if (ui.builtFor !== key) {
    buildTacticsBoard($("my-board"), true);
    buildTacticsBoard($("enemy-board"), false);
    ui.builtFor = key;
    ui.handSig = "";
  }
  const me = model.you ?? ui.seat ?? 0;
  const them = 1 - me;
  const playing = !ui.ended && (model.phase === "deploy" || model.phase === "battle");

  // phase and buttons
  $("phase").textContent = model.phase;
  $("phase").dataset.phase = model.phase;
  const hints = {
    waiting: "Waiting for an opponent to join…",
    deploy: model.ready[me]
      ? "You are ready. The battle starts when your opponent is ready too (or after 30 s)."
      : "Deploy: place cards on your side, then press Ready. The battle starts when both are ready, or after 30 s.",
    battle: "Battle! Units fight on their own, 10 ticks a second. You may still place a card every 3 s.",
    ended: "The match is over.",
  };
  $("phase-hint").textContent = hints[model.phase] ?? "";
  $("ready").disabled = !(model.phase === "deploy" && !model.ready[me] && !ui.ended);
  $("ready").textContent = model.ready[me] && model.phase === "deploy" ? "Ready ✓" : "Ready";
  $("concede").disabled = !playing;

  // bases
  const baseMe = model.bases[me] ?? 0;
  const baseThem = model.bases[them] ?? 0;
  $("base-me").textContent = String(baseMe);
  $("base-enemy").textContent = String(baseThem);
  $("base-me-bar").style.width = `${Math.max(0, (100 * baseMe) / BASE_HP)}%`;
  $("base-enemy-bar").style.width = `${Math.max(0, (100 * baseThem) / BASE_HP)}%`;
  $("base-me").closest(".side-head").classList.toggle("hit", flashing(`base-${me}`));
  $("base-enemy").closest(".side-head").classList.toggle("hit", flashing(`base-${them}`));

  const themSeat = model.seats.get(them);
  const enemyBits = [];
  if (!themSeat) enemyBits.push("not here yet");
  else {
    enemyBits.push(`seat ${them}`);
    if (!themSeat.connected) enemyBits.push("disconnected");
    enemyBits.push(`${model.opponentHand} cards`);
    if (model.phase === "deploy" && model.ready[them]) enemyBits.push("ready");
  }
  $("enemy-info").textContent = `· ${enemyBits.join(" · ")}`;
  const myBits = [`seat ${me}`, `${model.hand.length} cards`];
  if (model.phase === "deploy" && model.ready[me]) myBits.push("ready");
  $("my-info").textContent = `· ${myBits.join(" · ")}`;

  // units on both sides
  const at = new Map();
  for (const u of model.units.values()) at.set(`${u.seat}:${u.x},${u.y}`, u);
  for (const [boardId, seat] of [["my-board", me], ["enemy-board", them]]) {
    for (const cell of $(boardId).children) {
      const xy = `${cell.dataset.x},${cell.dataset.y}`;
      const u = at.get(`${seat}:${xy}`);
      const html = u ? unitHtml(u) : "";
      if (cell.dataset.html !== html) {
        cell.innerHTML = html;
        cell.dataset.html = html;
        // Set from script, not as a style attribute: fine under a strict CSP.
        const bar = cell.querySelector(".uhp");
        if (bar) bar.firstElementChild.style.width = `${bar.dataset.pct}%`;
      }
      cell.dataset.unit = u ? u.unit : "";
      cell.classList.toggle("occupied", !!u);
      cell.classList.toggle("hit", !!u && flashing(`unit-${u.unit_id}`));
      cell.classList.toggle("shoot", !!u && flashing(`shot-${u.unit_id}`));
      if (boardId === "my-board") {
        const valid = ui.validCells.has(xy) && playing;
        cell.classList.toggle("valid", valid);
        cell.dataset.valid = valid ? "true" : "false";
        cell.disabled = !playing;
      }
    }
  }

  // hand
  const sig = `${model.hand.map((c) => c.card).join(",")}|${ui.selectedCard}|${playing}`;
  if (sig !== ui.handSig) {
    const hand = $("hand");
    hand.replaceChildren();
    for (const c of model.hand) {
      const info = UNIT_INFO[c.unit] ?? { letter: "?", hp: "?", text: "" };
      const b = document.createElement("button");
      b.className = `card unit-${c.unit}`;
      b.setAttribute("data-testid", `card-${c.card}`);
      b.dataset.card = String(c.card);
      b.dataset.unit = c.unit;
      b.disabled = !playing;
      b.classList.toggle("selected", ui.selectedCard === c.card);
      b.innerHTML = `<span class="glyph">${info.letter}</span>` +
        `<span class="cname">${c.unit}</span>` +
        `<span class="chp">${info.hp} HP</span>` +
        `<span class="ctext">${info.text}</span>`;
      b.addEventListener("click", () => selectCard(c.card));
      hand.append(b);
    }
    if (model.hand.length === 0) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No cards left.";
      hand.append(p);
    }
    ui.handSig = sig;
  }
}

function renderResult(model) {
  const box = $("result");
  const ended = ui.ended;
  box.hidden = !ended;
  if (!ended) return;
  const r = ended.result;
  let title;
  let outcome;
  if (r.winner == null) {
    title = model && model.kind === "sandbox" ? "Match over" : "Draw";
    outcome = model && model.kind === "sandbox" ? "over" : "draw";
  } else if (r.winner === ui.seat) {
    title = "You win!";
    outcome = "win";
  } else {
    title = "You lose";
    outcome = "loss";
  }
  box.dataset.outcome = outcome;
  box.dataset.reason = r.reason;
  box.dataset.winner = r.winner == null ? "" : String(r.winner);
  $("result-title").textContent = title;
  const reason = r.reason.replace(/_/g, " ");
  const scores = r.scores.length ? ` · bases ${r.scores.join(" : ")}` : "";
  $("result-detail").textContent = `${reason}${r.winner != null ? ` · seat ${r.winner} wins` : ""}${scores}`;
}

// ------------------------------------------------------------------ lobby --

let lobbySig = "";

async function refreshLobby() {
  if (ui.view !== "lobby") return;
  let body;
  try {
    const res = await fetch("/v1/matches", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = await res.json();
  } catch (err) {
    logLine(`could not list matches: ${err.message}`, { kind: "error" });
    return;
  }
  const matches = (body.matches ?? []).filter((m) => m.status === undefined || m.status === "live");
  matches.sort((a, b) => b.match_id - a.match_id);
  const sig = JSON.stringify(matches.map((m) => [m.match_id, m.seats_taken, m.max_seats, m.connected, m.joinable, m.node_id]));
  if (sig === lobbySig) return;
  lobbySig = sig;
  const tbody = $("matches-body");
  tbody.replaceChildren();
  for (const m of matches) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", `match-row-${m.match_id}`);
    const cells = [
      `#${m.match_id}`,
      m.ruleset,
      `${m.seats_taken}/${m.max_seats}`,
      String(m.connected),
      m.node_id ?? "",
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.textContent = "Join";
    b.className = "small";
    b.setAttribute("data-testid", `join-${m.match_id}`);
    b.disabled = !m.joinable;
    b.title = m.joinable ? "" : "full or started";
    b.addEventListener("click", () => joinById(m.match_id));
    td.append(b);
    tr.append(td);
    tbody.append(tr);
  }
  $("matches-empty").hidden = matches.length > 0;
}

async function joinById(id) {
  const joined = await run("join", () => client.join(id));
  if (joined) showMessage("");
}

async function quickJoin(ruleset, maxSeats) {
  const opts = maxSeats ? { maxSeats } : undefined;
  await run("quick-join", () => client.quickJoin(ruleset, opts));
}

// ------------------------------------------------------------------ wiring --

$("quick-sandbox").addEventListener("click", () => {
  const v = $("seats").value;
  quickJoin("sandbox", v ? Number(v) : undefined);
});
$("quick-tactics").addEventListener("click", () => quickJoin("tactics"));
$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const raw = $("join-id").value.trim().replace(/^#/, "");
  if (!/^\d+$/.test(raw)) {
    logLine("a match id is a number", { kind: "error" });
    return;
  }
  joinById(Number(raw));
});
$("refresh").addEventListener("click", () => {
  lobbySig = "";
  refreshLobby();
});
$("leave").addEventListener("click", () => run("leave", () => client.leave()));
$("ready").addEventListener("click", () => run("ready", () => client.act({ kind: "ready" })));
$("concede").addEventListener("click", () => run("concede", () => client.act({ kind: "concede" })));
$("back").addEventListener("click", () => toLobby());
$("clear-log").addEventListener("click", () => $("log").replaceChildren());

setInterval(() => {
  if (ui.view === "lobby" && !document.hidden) refreshLobby();
}, 5000);

// ------------------------------------------------------------------- boot --

async function boot() {
  render();
  refreshLobby();
  try {
    await client.connect();
  } catch (err) {
    logLine(`could not connect: ${err.code ?? err.message}`, { kind: "error" });
    showMessage(`Could not connect: ${err.message}`, "error");
  }
  // A reload that resumed by replaying events has no model yet.
  if (client.matchId != null && client.status === "in_match") ensureState();
  renderStatus();
}

boot();
