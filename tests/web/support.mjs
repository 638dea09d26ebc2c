// Shared helpers of the tests in tests/web: real matchd nodes on free
// 127.0.0.1 ports, a throwaway redis-server, a two-node cluster, bounded
// polling, and an in-memory Storage. Every process started here is killed
// by stopAll() (call it from an `after` hook) and, as a last resort, when
// the test process exits.

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** The matchd binary: env MATCHD_BIN (relative paths from tests/web), default ../../target/debug/matchd. */
export const MATCHD_BIN = path.resolve(here, process.env.MATCHD_BIN ?? "../../target/debug/matchd");

/** The admin key of the nodes these helpers start. */
export const ADMIN_KEY = "web-test-admin-key";

/** Generous bound for anything a healthy node does (CI machines are busy). */
export const WAIT_MS = 15000;

const started = new Set();

process.on("exit", () => {
  for (const child of started) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** A TCP port nobody listens on right now (127.0.0.1). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory. */
export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `matchd-web-${prefix}-`));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` (sync or async; a truthy result ends the wait and is
 * returned) every `everyMs` until `timeoutMs` has passed, then throws.
 */
export async function eventually(what, check, { timeoutMs = WAIT_MS, everyMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    }
    await sleep(everyMs);
  }
}

/** GET/POST `url` with a bounded time; resolves { status, body } (body: parsed JSON or null). */
/** `POST /v1/matches` on `base` as a new session's player; returns the match id. */
export async function createMatch(base, body) {
  const session = await http("POST", `${base}/v1/sessions`);
  if (session.status !== 201) throw new Error(`session: HTTP ${session.status}`);
  const res = await http("POST", `${base}/v1/matches`, { body, key: session.body.token });
  if (res.status !== 201) throw new Error(`match: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.match_id;
}

export async function http(method, url, { body, key, timeoutMs = 5000 } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

function track(child) {
  started.add(child);
  child.on("exit", () => started.delete(child));
  return child;
}

/** Resolves when `child` has exited, or after `timeoutMs` with false. */
function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Starts a matchd node on a free 127.0.0.1 port with its own data
 * directory and waits until GET /health answers 200 (and, with Redis,
 * until /ready shows the node registered).
 *
 * @param {object} [opts]
 * @param {string} [opts.id] MATCHD_NODE_ID
 * @param {Record<string,string>} [opts.env] more environment (MATCHD_*)
 * @param {number} [opts.port] the port (default: a free one)
 */
export async function startNode({ id = "node-web", env = {}, port } = {}) {
  if (!fs.existsSync(MATCHD_BIN)) throw new Error(`no matchd binary at ${MATCHD_BIN} (set MATCHD_BIN)`);
  port = port ?? (await freePort());
  const dir = tempDir(id);
  const log = fs.openSync(path.join(dir, "node.log"), "a");
  const fullEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    MATCHD_BIND: `127.0.0.1:${port}`,
    MATCHD_DATA_DIR: path.join(dir, "data"),
    MATCHD_NODE_ID: id,
    MATCHD_ADMIN_KEY: ADMIN_KEY,
    MATCHD_WORKERS: "1",
    MATCHD_ARBITERS: "1",
    RUST_LOG: "warn",
    ...env,
  };
  const child = track(spawn(MATCHD_BIN, [], { env: fullEnv, stdio: ["ignore", "ignore", log] }));
  fs.closeSync(log);
  const base = `http://127.0.0.1:${port}`;
  const node = {
    id,
    port,
    base,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    dir,
    child,
    log: () => fs.readFileSync(path.join(dir, "node.log"), "utf8"),
    /** SIGKILL, no shutdown code runs. */
    async kill9() {
      child.kill("SIGKILL");
      await exited(child, WAIT_MS);
    },
    /** SIGTERM (a drain), then SIGKILL if it has not exited within `timeoutMs`. */
    async stop(timeoutMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      if (!(await exited(child, timeoutMs))) {
        child.kill("SIGKILL");
        await exited(child, WAIT_MS);
      }
    },
    /** Waits for the process to exit by itself (e.g. at the end of a drain). */
    exited: (timeoutMs = WAIT_MS) => exited(child, timeoutMs),
  };
  try {
    await eventually(`${id} to answer /health`, async () => {
      if (child.exitCode !== null) throw new Error(`${id} exited with ${child.exitCode}: ${node.log()}`);
      const res = await http("GET", `${base}/health`, { timeoutMs: 1000 });
      return res.status === 200;
    });
    if (env.REDIS_URL) {
      await eventually(`${id} to register in Redis`, async () => {
        const res = await http("GET", `${base}/ready`, { timeoutMs: 1000 });
        return res.body && res.body.checks && res.body.checks.redis && res.body.checks.redis.registered === true;
      });
    }
  } catch (e) {
    await node.kill9();
    throw e;
  }
  return node;
}

/** A throwaway redis-server (never the machine's own) on a free port: no persistence. */
export async function startRedis() {
  const port = await freePort();
  const child = track(
    spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    }),
  );
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    async stop() {
      child.kill("SIGKILL");
      await exited(child, WAIT_MS);
    },
  };
  await eventually("redis-server to accept connections", () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(false);
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    }),
  );
  return redis;
}

let clusterCount = 0;

/**
 * A Redis and `count` nodes sharing it (same REDIS_URL and prefix, distinct
 * node ids, each advertising its own ws URL), with short lease and
 * registration lifetimes so a dead node's match moves within seconds.
 */
export async function startCluster({ count = 2, env = {}, leaseMs = 1500 } = {}) {
  const redis = await startRedis();
  const prefix = `web${process.pid}c${++clusterCount}:`;
  const nodes = [];
  const add = async (id) => {
    const port = await freePort();
    const node = await startNode({ id, port, env: {
      REDIS_URL: redis.url,
      MATCHD_REDIS_PREFIX: prefix,
      MATCHD_ADVERTISE_URL: `ws://127.0.0.1:${port}/v1/ws`,
      MATCHD_LEASE_TTL_MS: String(leaseMs),
      MATCHD_NODE_TTL_MS: String(leaseMs),
      MATCHD_SNAPSHOT_MS: "300",
      MATCHD_DRAIN_TIMEOUT_MS: "15000",
      ...env,
    } });
    nodes.push(node);
    return node;
  };
  for (let i = 0; i < count; i++) await add(`node-${String.fromCharCode(97 + i)}`);
  return {
    redis,
    nodes,
    prefix,
    /** Starts one more node of the cluster. */
    add,
    async stop() {
      for (const n of nodes) await n.kill9();
      await redis.stop();
    },
  };
}

/** Kills every process these helpers started (for `after` hooks). */
export async function stopAll() {
  const children = [...started];
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  await Promise.all(children.map((c) => exited(c, WAIT_MS)));
}

/** An in-memory Storage (getItem/setItem/removeItem), shared between clients to play a page reload. */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}
