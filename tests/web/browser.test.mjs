// The demo (served by the node at /, using /client/matchd.js) in a real
// Chromium, driven through its UI with playwright-core: a tactics match
// played to its end by two browser contexts, and a sandbox page that keeps
// playing through a reload, a cut socket, a SIGKILL of its node and a drain
// of its node. Every case checks the page's record of event seqs (kept by
// the demo in sessionStorage, so it survives reloads): contiguous, no
// repeat, no fresh snapshot, and the same events a second player saw.
//
// Needs /usr/bin/chromium (Debian's package; env CHROMIUM overrides) and
// redis-server. A screenshot of the demo mid-match is written to
// $DEMO_SCREENSHOT (default /tmp/demo.png; "off" skips it).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { WebSocket } from "ws";

import { ADMIN_KEY, WAIT_MS, createMatch, eventually, freePort, http, startRedis, startNode, stopAll } from "./support.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT = process.env.DEMO_SCREENSHOT ?? "/tmp/demo.png";
/** A failover waits for the dead node's lease (1.5 s here) plus the rebuild. */
const FAILOVER_MS = 25000;

let browser;
/** Browser contexts to close even when a test fails. */
const contexts = new Set();

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  for (const ctx of contexts) await ctx.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  await stopAll();
});

// ---------------------------------------------------------------- the page --

/** A fresh browser context (its own player) on the demo served by `base`. */
async function openDemo(base) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  contexts.add(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${base}/`);
  await waitStatus(page, "connected");
  return {
    page,
    errors,
    async close() {
      contexts.delete(context);
      await context.close();
    },
  };
}

/** Waits until the status line shows `status`. */
function waitStatus(page, status, timeout = WAIT_MS) {
  return page.locator(`[data-testid="status"][data-status="${status}"]`).waitFor({ timeout });
}

/** Quick-joins sandbox from the lobby in rooms of `seats`; returns the seat. */
async function quickJoinSandbox(page, seats) {
  await page.getByTestId("seats").selectOption(String(seats));
  await page.getByTestId("quick-sandbox").click();
  await waitStatus(page, "in_match");
  return Number(await page.getByTestId("seat").textContent());
}

async function matchIdOf(page) {
  await page.locator('[data-testid="match-id"]').filter({ hasText: /^\d+$/ }).waitFor();
  return Number(await page.getByTestId("match-id").textContent());
}

/** The library's last delivered seq, once the page's script runs. */
function lastSeq(page) {
  return page.evaluate(() => (window.matchdDemo ? window.matchdDemo.client.lastSeq : -1));
}

/** The demo's record of what it saw in its current match. */
function record(page) {
  return page.evaluate(() => window.matchdDemo.record);
}

function statuses(page) {
  return page.evaluate(() => window.matchdDemo.statuses);
}

/** Clicks a sandbox cell and waits until its count went up by one. */
async function pageMark(page, x, y) {
  const cell = page.getByTestId(`cell-${x}-${y}`);
  const before = Number(await cell.getAttribute("data-count"));
  await cell.click();
  await page.locator(`[data-testid="cell-${x}-${y}"][data-count="${before + 1}"]`).waitFor();
}

/** The sandbox counts the page shows, row-major. */
function pageCells(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("#sandbox-board .scell")].map((b) => Number(b.dataset.count)),
  );
}

/**
 * Checks a page's record: one `joined` (every resume replayed the missed
 * events, none needed a snapshot), then events seq+1, seq+2, ... with no
 * gap and no repeat, and an `ended` one past the last event if any.
 * Returns the events.
 */
function checkRecord(rec, label) {
  const entries = rec.entries;
  assert.ok(entries.length > 0, `${label}: the page recorded nothing`);
  assert.equal(entries[0].type, "joined", `${label}: the record starts with the join`);
  const joins = entries.filter((e) => e.type === "joined");
  assert.equal(joins.length, 1, `${label}: resumes replayed the missed events (no second snapshot): ${JSON.stringify(joins)}`);
  let last = entries[0].seq;
  const events = [];
  for (const e of entries.slice(1)) {
    if (e.type === "event") {
      assert.equal(e.seq, last + 1, `${label}: event seq ${e.seq} follows ${last} (record ${seqList(entries)})`);
      last = e.seq;
      events.push(e);
    } else if (e.type === "ended") {
      assert.equal(e.seq, last + 1, `${label}: ended is one past the last event`);
    }
  }
  return events;
}

function seqList(entries) {
  return entries.map((e) => `${e.type[0]}${e.seq}`).join(" ");
}

// ------------------------------------------- a second player, raw protocol --

/**
 * A player on a plain WebSocket speaking the JSON protocol directly (not
 * through the library): the independent witness of what the match sent.
 */
class Witness {
  static async join(base, matchId) {
    const session = await http("POST", `${base}/v1/sessions`);
    assert.equal(session.status, 201);
    const w = new Witness(session.body.token);
    let url = base.replace(/^http/, "ws") + "/v1/ws";
    for (let hop = 0; hop < 3; hop++) {
      await w.open(url);
      w.send({ type: "join", match_id: matchId });
      const answer = await w.waitFor("the join answer", (f) => ["joined", "redirect", "error"].includes(f.type));
      if (answer.type === "joined") return w;
      if (answer.type === "redirect") {
        w.ws.close();
        url = answer.url;
        continue;
      }
      throw new Error(`join refused: ${answer.code} ${answer.message}`);
    }
    throw new Error("too many redirects");
  }

  constructor(token) {
    this.token = token;
    this.frames = [];
    this.events = [];
    this.gaps = [];
    this.clientSeq = 0;
  }

  open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${url}?protocol=2&encoding=json&token=${this.token}`);
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error(`no welcome from ${url}`)), WAIT_MS);
      ws.on("message", (data) => {
        const frame = JSON.parse(String(data));
        this.frames.push(frame);
        if (frame.type === "welcome") {
          clearTimeout(timer);
          resolve();
        }
        if (frame.type === "joined") {
          this.seat = frame.seat;
          this.matchId = frame.match_id;
          this.joinedSeq = frame.seq;
          this.lastSeq = frame.seq;
          this.cells = frame.state.kind === "sandbox" ? [...frame.state.cells] : null;
          this.width = frame.state.width;
        }
        if (frame.type === "event" && frame.match_id === this.matchId) {
          if (frame.seq !== this.lastSeq + 1) this.gaps.push([this.lastSeq, frame.seq]);
          this.lastSeq = frame.seq;
          this.events.push(frame);
          if (frame.event.kind === "marked" && this.cells) {
            this.cells[frame.event.y * this.width + frame.event.x] = frame.event.count;
          }
        }
      });
      ws.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  waitFor(what, pred) {
    return eventually(`the witness to see ${what}`, () => this.frames.find(pred));
  }

  /** Marks a cell; resolves on the event it caused. */
  async mark(x, y) {
    const cs = ++this.clientSeq;
    this.send({ type: "action", client_seq: cs, action: { kind: "mark", x, y } });
    const answer = await this.waitFor(`mark ${cs}`, (f) =>
      (f.type === "event" && f.seat === this.seat && f.client_seq === cs) || (f.type === "rejected" && f.client_seq === cs),
    );
    assert.equal(answer.type, "event", `mark (${x},${y}) accepted`);
  }

  close() {
    this.ws.close();
  }
}

/** The page saw exactly the events the witness saw after the witness joined. */
function assertSameEvents(pageEvents, witness, label) {
  assert.deepEqual(witness.gaps, [], `${label}: the witness saw every seq once`);
  const mine = pageEvents.filter((e) => e.seq > witness.joinedSeq);
  assert.deepEqual(
    mine.map((e) => [e.seq, e.kind]),
    witness.events.map((f) => [f.seq, f.event.kind]),
    `${label}: the page and the witness saw the same events`,
  );
}

// ------------------------------------------------------------- one node --

describe("the demo on one node", () => {
  let node;

  before(async () => {
    node = await startNode({ id: "node-browser" });
  });

  after(async () => {
    if (node) await node.kill9();
  });

  it("serves the page, the library and the demo files", async () => {
    for (const [path, type] of [
      ["/", "text/html"],
      ["/client/matchd.js", "text/javascript"],
      ["/demo/demo.js", "text/javascript"],
      ["/demo/demo.css", "text/css"],
    ]) {
      const res = await fetch(`${node.base}${path}`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200, path);
      assert.ok(res.headers.get("content-type").startsWith(type), `${path}: ${res.headers.get("content-type")}`);
    }
  });

  it("runs the README's client example as written, and it resumes after a reload", async () => {
    // The exact block between the example markers of README.md, served on
    // the node's origin (the page a game developer would write).
    const readme = fs.readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const block = readme.split("<!-- example:begin -->")[1]?.split("<!-- example:end -->")[0];
    assert.ok(block, "README.md has the example markers");
    const html = block.replace(/^\s*```html\s*\n/, "").replace(/\n```\s*$/, "");
    assert.ok(html.split("\n").length < 50, "the example is under fifty lines");
    // A page fulfilled by the test rather than fetched over the network has
    // no IP address space, so Chromium's Local Network Access checks would
    // treat it as public and block its loopback WebSocket: this browser
    // turns them off (the demo's own pages come from the node and need not).
    const own = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets",
      ],
    });
    after(() => own.close().catch(() => {}));
    const context = await own.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    await page.route(`${node.base}/example.html`, (route) =>
      route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }),
    );
    const log = () => page.locator("#log").textContent();
    await page.goto(`${node.base}/example.html`);
    await page.locator("#log", { hasText: /seat \d+ in match \d+/ }).waitFor();
    const matchId = Number((await log()).match(/in match (\d+)/)[1]);
    for (let i = 1; i <= 3; i++) {
      await page.click("#mark");
      await eventually("the mark to be acknowledged", async () =>
        ((await log()).match(/my mark is event #\d+/g) ?? []).length === i,
      );
    }
    const seqs = [...(await log()).matchAll(/^#(\d+) /gm)].map((m) => Number(m[1]));
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), `events in order, no gap: ${seqs}`);
    // A reload resumes the same match (the session lives in localStorage).
    await page.reload();
    await page.locator("#log", { hasText: /status: in_match/ }).waitFor();
    assert.equal(await page.evaluate(() => document.querySelector("#log").textContent.includes("seat ")), false,
      "no new quick-join after the reload");
    await page.click("#mark");
    await page.locator("#log", { hasText: /my mark is event #\d+/ }).waitFor();
    const matches = await fetch(`${node.base}/v1/matches/${matchId}`).then((r) => r.json());
    assert.equal(matches.match_id, matchId);
    assert.deepEqual(errors, [], "no page errors");
    await own.close();
  });

  it("plays a tactics match to its end between two browser contexts", async () => {
    const a = await openDemo(node.base);
    const b = await openDemo(node.base);
    try {
      // A quick-joins; B finds the match in the lobby and joins it there.
      await a.page.getByTestId("quick-tactics").click();
      const matchId = await matchIdOf(a.page);
      await b.page.getByTestId("refresh").click();
      await b.page.getByTestId(`join-${matchId}`).click();
      assert.equal(await matchIdOf(b.page), matchId);
      for (const p of [a.page, b.page]) await p.locator('[data-testid="phase"][data-phase="deploy"]').waitFor();

      /** Clicks a card of `unit`, waits for its valid cells, clicks (x, y). */
      async function place(page, unit, x, y) {
        await page.locator(`#hand [data-unit="${unit}"]`).first().click();
        await page.locator(`[data-testid="cell-${x}-${y}"][data-valid="true"]`).waitFor();
        await page.getByTestId(`cell-${x}-${y}`).click();
        await page.locator(`[data-testid="cell-${x}-${y}"][data-unit="${unit}"]`).waitFor();
      }
      // Lanes that never meet: A fights in columns 0-1 with four units, B
      // in columns 3-4 with three, so both bases fall and A's first.
      await place(a.page, "guard", 0, 0);
      await place(a.page, "lancer", 1, 0); // must touch an ally: the guard
      await place(a.page, "mage", 1, 1);
      await place(a.page, "archer", 0, 2);
      await place(b.page, "guard", 4, 0);
      await place(b.page, "mage", 3, 1);
      await place(b.page, "archer", 4, 2);
      // Each sees the other's units on the opponent's side.
      await a.page.locator('[data-testid="enemy-cell-4-0"][data-unit="guard"]').waitFor();
      await b.page.locator('[data-testid="enemy-cell-1-1"][data-unit="mage"]').waitFor();
      // A selected card lights up the cells its valid_cells answer lists.
      await a.page.locator('#hand [data-unit]').first().click();
      await a.page.locator('[data-testid^="cell-"][data-valid="true"]').first().waitFor();
      if (SCREENSHOT !== "off") {
        await a.page.evaluate(() => window.scrollTo(0, 0));
        await a.page.screenshot({ path: SCREENSHOT, fullPage: true });
      }
      await a.page.locator('#hand [data-unit]').first().click(); // deselect

      await a.page.getByTestId("ready").click();
      await b.page.locator('[data-testid="enemy-info"]', { hasText: "ready" }).waitFor();
      await b.page.getByTestId("ready").click();

      for (const p of [a.page, b.page]) await p.getByTestId("result").waitFor({ state: "visible", timeout: 30000 });
      const ra = a.page.getByTestId("result");
      const rb = b.page.getByTestId("result");
      assert.equal(await ra.getAttribute("data-outcome"), "win");
      assert.equal(await rb.getAttribute("data-outcome"), "loss");
      assert.equal(await ra.getAttribute("data-reason"), "base_destroyed");
      // Bases as the attacked events left them (tick 11: 20 - 15 and 0).
      assert.equal(await a.page.getByTestId("base-me").textContent(), "5");
      assert.equal(await a.page.getByTestId("base-enemy").textContent(), "0");
      assert.equal(await b.page.getByTestId("base-me").textContent(), "0");
      assert.equal(await b.page.getByTestId("base-enemy").textContent(), "5");

      for (const [name, p] of [["A", a.page], ["B", b.page]]) {
        const rec = await record(p);
        assert.equal(rec.matchId, matchId);
        const events = checkRecord(rec, name);
        const kinds = events.map((e) => e.kind);
        assert.equal(kinds.filter((k) => k === "placed").length, 7, `${name}: seven placements`);
        assert.equal(kinds.filter((k) => k === "player_ready").length, 2, `${name}: both ready`);
        assert.ok(kinds.includes("phase"), `${name}: the battle phase`);
        assert.ok(kinds.filter((k) => k === "attacked").length >= 10, `${name}: battle ticks hit the bases`);
        assert.equal(rec.entries.at(-1).type, "ended", `${name}: the match ended`);
      }
      await b.page.getByTestId("back").click();
      await b.page.getByTestId("lobby").waitFor();
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("ends a tactics match when a player concedes", async () => {
    const a = await openDemo(node.base);
    const b = await openDemo(node.base);
    try {
      await a.page.getByTestId("quick-tactics").click();
      const matchId = await matchIdOf(a.page);
      // B joins by id.
      await b.page.getByTestId("join-id").fill(String(matchId));
      await b.page.getByTestId("join-by-id").click();
      assert.equal(await matchIdOf(b.page), matchId);
      await b.page.locator('[data-testid="phase"][data-phase="deploy"]').waitFor();
      await b.page.getByTestId("concede").click();
      for (const p of [a.page, b.page]) await p.getByTestId("result").waitFor({ state: "visible" });
      assert.equal(await a.page.getByTestId("result").getAttribute("data-outcome"), "win");
      assert.equal(await b.page.getByTestId("result").getAttribute("data-outcome"), "loss");
      assert.equal(await a.page.getByTestId("result").getAttribute("data-reason"), "concede");
      checkRecord(await record(b.page), "B");
      assert.deepEqual([...a.errors, ...b.errors], []);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("keeps playing a sandbox match through a page reload, missing and repeating no event", async () => {
    const p = await openDemo(node.base);
    let witness;
    try {
      const seat = await quickJoinSandbox(p.page, 2);
      witness = await Witness.join(node.base, await matchIdOf(p.page));

      await pageMark(p.page, 0, 0);
      await witness.mark(0, 2);
      await pageMark(p.page, 1, 0);
      await witness.mark(1, 2);

      // Reload, holding the demo's script until the witness has played on:
      // the events in between reach the page only through the resume.
      let release;
      const gate = new Promise((resolve) => (release = resolve));
      await p.page.route("**/demo/demo.js", async (route) => {
        await gate;
        await route.continue();
      });
      const reloading = p.page.reload();
      try {
        await witness.waitFor("the page's seat disconnected", (f) =>
          f.type === "event" && f.event.kind === "player_disconnected" && f.event.seat === seat);
        for (const x of [2, 3, 4]) await witness.mark(x, 2);
      } finally {
        release();
      }
      await reloading;
      await p.page.unroute("**/demo/demo.js");

      await waitStatus(p.page, "in_match");
      await eventually("the reloaded page to catch up", async () => (await lastSeq(p.page)) === witness.lastSeq);
      const after = await statuses(p.page);
      assert.ok(after.some((s) => s.status === "in_match" && s.reason === "resumed"), JSON.stringify(after));

      await pageMark(p.page, 2, 0);
      await witness.mark(0, 1);
      await eventually("the page to see the last mark", async () => (await lastSeq(p.page)) === witness.lastSeq);

      const events = checkRecord(await record(p.page), "reloaded page");
      assertSameEvents(events, witness, "reloaded page");
      assert.deepEqual(await pageCells(p.page), witness.cells, "the board matches the witness's");
      assert.deepEqual(p.errors, []);
    } finally {
      if (witness) witness.close();
      await p.close();
    }
  });

  it("keeps playing through a cut socket and an outage, missing and repeating no event", async () => {
    const p = await openDemo(node.base);
    let witness;
    try {
      const seat = await quickJoinSandbox(p.page, 3);
      witness = await Witness.join(node.base, await matchIdOf(p.page));
      await pageMark(p.page, 0, 0);
      await witness.mark(0, 2);

      // The network goes away: the socket is cut and new ones fail until
      // it is back.
      const cut = await p.page.evaluate(() => {
        window.matchdDemo.setOffline(true);
        return window.matchdDemo.cutSocket();
      });
      assert.ok(cut >= 1, "the hook cut the library's socket");
      try {
        await witness.waitFor("the page's seat disconnected", (f) =>
          f.type === "event" && f.event.kind === "player_disconnected" && f.event.seat === seat);
        for (const x of [1, 2, 3]) await witness.mark(x, 2);
        await eventually("the page to fail a reconnect attempt", () =>
          p.page.evaluate(() => window.matchdDemo.counters.refused >= 1));
      } finally {
        await p.page.evaluate(() => window.matchdDemo.setOffline(false));
      }
      await waitStatus(p.page, "in_match");
      await eventually("the page to catch up", async () => (await lastSeq(p.page)) === witness.lastSeq);
      assert.equal(await p.page.getByTestId("reconnects").textContent(), "1");
      const seen = (await statuses(p.page)).map((s) => s.status);
      assert.ok(seen.includes("reconnecting"), seen.join(","));

      // A plain cut (no outage) too.
      assert.ok((await p.page.evaluate(() => window.matchdDemo.cutSocket())) >= 1);
      await witness.mark(4, 2);
      await eventually("the page to be back", async () =>
        (await p.page.getByTestId("reconnects").textContent()) === "2" && (await lastSeq(p.page)) === witness.lastSeq);
      await waitStatus(p.page, "in_match");

      await pageMark(p.page, 1, 0);
      await witness.mark(0, 1);
      await eventually("the page to see the last mark", async () => (await lastSeq(p.page)) === witness.lastSeq);

      const events = checkRecord(await record(p.page), "cut page");
      assertSameEvents(events, witness, "cut page");
      assert.deepEqual(await pageCells(p.page), witness.cells, "the board matches the witness's");
      assert.deepEqual(p.errors, []);
    } finally {
      if (witness) witness.close();
      await p.close();
    }
  });
});

// ------------------------------------------------------- a two-node cluster --

/**
 * Nodes sharing a throwaway Redis, with short leases. A page served by one
 * node follows redirects to the others, whose WebSocket upgrades then carry
 * that node's Origin: every node lists every node's origin in
 * MATCHD_ALLOWED_ORIGINS (as a deployment lists its game's page origin).
 */
async function startWebCluster(ids) {
  const redis = await startRedis();
  const ports = new Map();
  for (const id of ids) ports.set(id, await freePort());
  const origins = [...ports.values()].map((port) => `http://127.0.0.1:${port}`).join(",");
  const prefix = `webbrowser${process.pid}:`;
  const start = (id) =>
    startNode({
      id,
      port: ports.get(id),
      env: {
        REDIS_URL: redis.url,
        MATCHD_REDIS_PREFIX: prefix,
        MATCHD_ADVERTISE_URL: `ws://127.0.0.1:${ports.get(id)}/v1/ws`,
        MATCHD_LEASE_TTL_MS: "1500",
        MATCHD_NODE_TTL_MS: "1500",
        MATCHD_SNAPSHOT_MS: "300",
        MATCHD_DRAIN_TIMEOUT_MS: "15000",
        MATCHD_ALLOWED_ORIGINS: origins,
      },
    });
  return { redis, start };
}

describe("the demo in a two-node cluster", () => {
  let cluster;
  let a;
  let b;
  let p;
  let matchId;

  before(async () => {
    cluster = await startWebCluster(["node-a", "node-b", "node-c"]);
    a = await cluster.start("node-a");
    b = await cluster.start("node-b");
  });

  after(async () => {
    if (p) await p.close().catch(() => {});
    await stopAll();
  });

  /** The node id the status line shows. */
  async function nodeShown() {
    return p.page.getByTestId("node").textContent();
  }

  it("follows its match through a SIGKILL of the match's node", async () => {
    // The page is served by B (its base URL); the match lives on A.
    matchId = await createMatch(a.base, { ruleset: "sandbox" });
    p = await openDemo(b.base);
    await p.page.getByTestId("join-id").fill(String(matchId));
    await p.page.getByTestId("join-by-id").click();
    await waitStatus(p.page, "in_match");
    assert.equal(await matchIdOf(p.page), matchId);
    assert.ok((await nodeShown()).startsWith(a.id), await nodeShown());
    assert.equal(await p.page.getByTestId("redirects").textContent(), "1");

    await pageMark(p.page, 0, 0);
    await pageMark(p.page, 1, 0);
    await pageMark(p.page, 0, 0);

    await a.kill9();
    // The page reconnects through B, which takes the match over once A's
    // lease has run out.
    await eventually(
      "the page to play on B",
      async () => (await p.page.getAttribute('[data-testid="status"]', "data-status")) === "in_match" &&
        (await nodeShown()).startsWith(b.id),
      { timeoutMs: FAILOVER_MS, everyMs: 100 },
    );
    const seen = (await statuses(p.page)).map((s) => s.status);
    assert.ok(seen.includes("reconnecting"), seen.join(","));
    assert.ok(Number(await p.page.getByTestId("reconnects").textContent()) >= 1);

    await pageMark(p.page, 2, 0);
    await pageMark(p.page, 0, 0);
    checkRecord(await record(p.page), "page after the SIGKILL");
    assert.deepEqual(p.errors, []);
  });

  it("follows its match through a drain of the match's node", async () => {
    assert.ok(matchId, "the SIGKILL case ran");
    const c = await cluster.start("node-c");
    // The handover goes to a live peer: wait until A's registration is gone.
    await eventually("B to see exactly B and C", async () => {
      const res = await http("GET", `${b.base}/v1/nodes`);
      const ids = (res.body.nodes ?? []).map((n) => n.node_id).sort();
      return JSON.stringify(ids) === JSON.stringify([b.id, c.id].sort());
    });
    const redirects = Number(await p.page.getByTestId("redirects").textContent());
    const drained = await http("POST", `${b.base}/admin/drain`, { key: ADMIN_KEY });
    assert.equal(drained.status, 202, JSON.stringify(drained.body));

    await eventually(
      "the page to play on C",
      async () => (await p.page.getAttribute('[data-testid="status"]', "data-status")) === "in_match" &&
        (await nodeShown()).startsWith(c.id),
      { timeoutMs: FAILOVER_MS, everyMs: 100 },
    );
    assert.ok(Number(await p.page.getByTestId("redirects").textContent()) > redirects, "the redirect shows");
    await pageMark(p.page, 3, 0);
    await pageMark(p.page, 4, 0);
    assert.ok(await b.exited(WAIT_MS), "the drained node stopped");

    const events = checkRecord(await record(p.page), "page after the drain");
    assert.ok(events.length >= 7, "the page saw the marks of every phase");
    // Someone joining now on C sees the board the page shows.
    const witness = await Witness.join(c.base, matchId);
    try {
      await eventually("the page to see the witness join", async () => (await lastSeq(p.page)) === witness.lastSeq);
      assert.deepEqual(await pageCells(p.page), witness.cells);
    } finally {
      witness.close();
    }
    assert.deepEqual(p.errors, []);
  });
});
