// End-to-end test of Chatterly's /cable gateway driven by the official
// @rails/actioncable client, used the way the Next.js web client uses it.
//
//   CHATTERLY_BIN=/tmp/chatterly npm test
//
// In-memory mode (the default) starts one server binary as a child process
// on a free port and talks to it directly. Durable mode (PostgreSQL + Redis,
// when DATABASE_URL and REDIS_URL are both set) starts two instances sharing
// the database, Redis and JWT secret, and a round-robin TCP balancer in this
// process in front of them; every client goes through the balancer, and the
// test steers sockets and REST calls so that events cross instances and both
// instances are restarted in turn (a rolling deploy). See README.md.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";

import WebSocket from "ws";
// The package's "main" is a UMD build (CommonJS under Node): import its
// module.exports as the default export.
import ActionCable from "@rails/actioncable";

// --- Browser shims ----------------------------------------------------------
// ConnectionMonitor.start()/stop() call the *global* addEventListener /
// removeEventListener("visibilitychange", ...) (a browser's window). Node has
// neither on globalThis, so give it no-op versions: no visibility changes
// happen here. `document` is not needed because we pass createConsumer an
// absolute ws:// URL (it is only read to resolve relative URLs or <meta> tags).
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};

// The web client runs in a browser with a global WebSocket; here it is `ws`.
ActionCable.adapters.WebSocket = WebSocket;
if (process.env.E2E_DEBUG) ActionCable.logger.enabled = true;

// --- Observation hook (does not change behaviour) ---------------------------
// Every frame each consumer receives is kept so that a failed wait can show
// what the server actually sent.
const framesByConsumer = new WeakMap();
{
  const original = ActionCable.Connection.prototype.events.message;
  ActionCable.Connection.prototype.events.message = function (event) {
    const frames = framesByConsumer.get(this.consumer);
    if (frames) {
      frames.push(String(event.data));
      if (frames.length > 200) frames.splice(0, frames.length - 200);
    }
    return original.call(this, event);
  };
}

// --- Configuration ----------------------------------------------------------
const BIN = process.env.CHATTERLY_BIN;
const DURABLE = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
// Durable mode runs two instances behind a balancer: they must share the JWT
// secret (and restarts must keep it), so the run makes one up if none is set.
const SECRET =
  process.env.DEVISE_JWT_SECRET_KEY || process.env.JWT_SECRET || (DURABLE ? randomBytes(32).toString("hex") : "");
const INSTANCES = DURABLE ? 2 : 1; // the in-memory mode is one process by nature
const FRONTEND_ORIGIN = (process.env.FRONTEND_URL || "http://localhost:3000")
  .split(",")[0]
  .trim()
  .replace(/\/+$/, "");
const RUN = randomBytes(4).toString("hex"); // unique names per run
const PASSWORD = "e2e-password-123";

const WAIT = 5_000; // ordinary events
const WAIT_OFFLINE = 10_000;
const WAIT_BOOT = 30_000; // server start (durable mode runs migrations)
const WAIT_EXIT = 30_000; // graceful shutdown must finish well within 30 s
const WAIT_RECONNECT = 35_000; // stale period (~6 s) + poll interval + backoff

// --- Server processes -------------------------------------------------------
// instances[i] = { index, port, proc }, proc = { child, exited: Promise<{code, signal}>, done }.
const instances = [];
let lb; // the balancer in front of the instances (durable mode only)
let address; // host:port every client uses: the balancer's, or the only instance's
const outputTail = [];

function remember(stream, chunk) {
  for (const line of String(chunk).split("\n")) {
    if (line.trim() === "") continue;
    outputTail.push(`[${stream}] ${line}`);
  }
  if (outputTail.length > 120) outputTail.splice(0, outputTail.length - 120);
}

function serverTail() {
  const what = INSTANCES > 1 ? "chatterly output, both instances (s0, s1)" : "chatterly output";
  let text = `--- ${what} (last ${outputTail.length} lines) ---\n${outputTail.join("\n")}\n--- end of chatterly output ---`;
  if (lb) text += `\n${lb.summary()}`;
  return text;
}

function freePort() {
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

function serverEnv(inst) {
  const env = { ...process.env, PORT: String(inst.port) };
  if (!DURABLE) {
    // In-memory mode: never half-configure the server.
    delete env.DATABASE_URL;
    delete env.DATABASE_REPLICA_URL;
    delete env.REDIS_URL;
  }
  if (SECRET && !env.DEVISE_JWT_SECRET_KEY && !env.JWT_SECRET) env.DEVISE_JWT_SECRET_KEY = SECRET;
  return env;
}

async function startServer(inst) {
  const label = INSTANCES > 1 ? `s${inst.index} ` : "";
  const child = spawn(BIN, [], { env: serverEnv(inst), stdio: ["ignore", "pipe", "pipe"] });
  const s = { child, done: false };
  s.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      s.done = true;
      remember(`${label}exit`, `code=${code} signal=${signal}`);
      resolve({ code, signal });
    });
    child.on("error", (err) => {
      s.done = true;
      remember(`${label}spawn`, String(err));
      resolve({ code: null, signal: null, error: err });
    });
  });
  child.stdout.on("data", (c) => remember(`${label}stdout`, c));
  child.stderr.on("data", (c) => remember(`${label}stderr`, c));
  inst.proc = s;

  const deadline = Date.now() + WAIT_BOOT;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (s.done) throw new Error(`chatterly ${label}exited before answering GET /up\n${serverTail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${inst.port}/up`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return s;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = String(err.cause?.code || err.message);
    }
    await sleep(100);
  }
  throw new Error(`GET /up on ${label}did not answer 200 within ${WAIT_BOOT} ms (last: ${last})\n${serverTail()}`);
}

async function stopServer(inst, signal = "SIGTERM") {
  const s = inst.proc;
  if (!s || s.done) return s && (await s.exited);
  s.child.kill(signal);
  let timer;
  const result = await Promise.race([
    s.exited,
    new Promise((r) => {
      timer = setTimeout(() => r(null), WAIT_EXIT);
    }),
  ]);
  clearTimeout(timer);
  if (result === null) {
    s.child.kill("SIGKILL");
    await s.exited;
    throw new Error(`chatterly did not exit within ${WAIT_EXIT} ms of ${signal}; killed it`);
  }
  return result;
}

// Never leave a server behind, whatever happens to this process.
process.on("exit", () => {
  for (const inst of instances) if (inst.proc && !inst.proc.done) inst.proc.child.kill("SIGKILL");
});

// --- Balancer -----------------------------------------------------------------
// A round-robin TCP balancer, the smallest stand-in for HAProxy in `mode tcp`:
// each accepted socket is piped to the next backend in turn; when that backend
// refuses the connection (it is restarting) the next one is tried, as with
// HAProxy's `retries` + `option redispatch`. It reads nothing but, to let the
// test see where each connection landed, keeps a copy of each request's head
// (request line and headers, up to 4 KiB): REST requests carry an
// `X-E2E-Tag` header and consumers an `e2e=` query parameter.
function startBalancer(ports) {
  const MAX_RECORDS = 1000;
  const b = {
    backends: ports.map((port, index) => ({ index, port, accepted: 0, upgrades: 0, refused: 0 })),
    next: 0, // the number of sockets accepted: the next one goes to backends[next % n]
    conns: [], // { id, backend, line, tag, upgrade }
    sockets: new Set(),
  };
  const n = b.backends.length;
  const track = (sock) => {
    b.sockets.add(sock);
    sock.on("close", () => b.sockets.delete(sock));
  };
  b.server = net.createServer((client) => {
    const first = b.next++ % n;
    const rec = { id: b.next - 1, backend: null, line: "", tag: null, upgrade: false };
    b.conns.push(rec);
    if (b.conns.length > MAX_RECORDS) b.conns.splice(0, b.conns.length - MAX_RECORDS);
    track(client);
    client.on("error", () => {});

    const attempt = (k) => {
      if (client.destroyed) return;
      if (k >= n) {
        rec.line = "(no backend accepted the connection)";
        client.destroy();
        return;
      }
      const backend = b.backends[(first + k) % n];
      const up = net.connect({ host: "127.0.0.1", port: backend.port });
      track(up);
      let connected = false;
      up.on("error", () => {
        if (connected) return client.destroy();
        backend.refused++;
        attempt(k + 1);
      });
      up.once("connect", () => {
        connected = true;
        if (client.destroyed) return up.destroy();
        rec.backend = backend.index;
        backend.accepted++;
        let head = "";
        const sniff = (chunk) => {
          head += chunk.toString("latin1");
          const end = head.indexOf("\r\n\r\n");
          if (end < 0 && head.length < 4096) return;
          client.off("data", sniff);
          head = head.slice(0, end < 0 ? head.length : end);
          rec.line = head.split("\r\n")[0];
          rec.upgrade = /^upgrade:\s*websocket\s*$/im.test(head);
          if (rec.upgrade) backend.upgrades++;
          rec.tag = /^x-e2e-tag:\s*(\S+)/im.exec(head)?.[1] ?? /[?&]e2e=([^&\s]+)/.exec(rec.line)?.[1] ?? null;
        };
        client.on("data", sniff);
        client.pipe(up);
        up.pipe(client);
        up.once("close", (hadError) => (hadError ? client.destroy() : client.end()));
        client.once("close", (hadError) => (hadError ? up.destroy() : up.end()));
      });
    };
    attempt(0);
  });
  b.server.maxConnections = 200;
  // The backend the next accepted socket goes to, if it is up.
  b.nextBackend = () => b.next % n;
  // Where the connections tagged `tag` landed, oldest first.
  b.landed = (tag) => b.conns.filter((c) => c.tag === tag).map((c) => c.backend);
  b.summary = () =>
    `--- balancer: ${b.backends
      .map((x) => `s${x.index} (port ${x.port}): ${x.accepted} sockets, ${x.upgrades} WebSocket, ${x.refused} refused`)
      .join("; ")}\nlast connections:\n  ${b.conns
      .slice(-20)
      .map((c) => `#${c.id} -> s${c.backend ?? "?"} ${c.tag ?? "-"} ${c.line.replace(/token=[^&\s]+/, "token=…")}`)
      .join("\n  ")}\n--- end of balancer ---`;
  b.close = () =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      b.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const s of b.sockets) s.destroy();
    });
  return new Promise((resolve, reject) => {
    b.server.once("error", reject);
    b.server.listen(0, "127.0.0.1", () => {
      b.port = b.server.address().port;
      resolve(b);
    });
  });
}

// --- REST -------------------------------------------------------------------
// One TCP connection per request (no keep-alive), so that through the
// balancer each request is a connection of its own, sent to the next backend.
let requests = 0;
function api(method, path, { token, body } = {}) {
  const tag = `rest-${++requests}`;
  const headers = { Accept: "application/json", "X-E2E-Tag": tag };
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  if (payload) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = String(payload.length);
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: Number(port), method, path, headers, agent: false, signal: AbortSignal.timeout(WAIT) },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const backend = lb ? lb.landed(tag)[0] : 0;
          resolve({ status: res.statusCode, headers: res.headers, json, text, backend });
        });
      },
    );
    req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`)));
    req.end(payload);
  });
}

// Makes the next connection through the balancer go to instance `want`, by
// sending GET /up requests until the round robin points at it. A no-op with
// one instance.
async function steer(want) {
  if (!lb) return;
  for (let i = 0; i < 2 * INSTANCES && lb.nextBackend() !== want; i++) await api("GET", "/up");
  assert.equal(lb.nextBackend(), want, "steering the round robin");
}

async function register(tag, displayName) {
  const username = `e2e_${RUN}_${tag}`;
  const res = await api("POST", "/auth/register", {
    body: { user: { email: `${username}@example.com`, password: PASSWORD, username, display_name: displayName } },
  });
  assert.equal(res.status, 201, `register ${username}: ${res.status} ${res.text}`);
  const auth = res.headers.authorization || "";
  const m = /^Bearer (\S+)$/.exec(auth);
  assert.ok(m, `register ${username}: no "Authorization: Bearer <jwt>" header (got ${JSON.stringify(auth)})`);
  return { ...res.json.user, token: m[1] };
}

async function createConversation(owner, name, memberIds) {
  const res = await api("POST", "/api/v1/conversations", {
    token: owner.token,
    body: { conversation_type: "group", name, member_ids: memberIds },
  });
  assert.equal(res.status, 201, `create conversation: ${res.status} ${res.text}`);
  return { ...res.json.data, backend: res.backend };
}

async function postMessage(author, conversationId, content) {
  const res = await api("POST", `/api/v1/conversations/${conversationId}/messages`, {
    token: author.token,
    body: { content },
  });
  assert.equal(res.status, 201, `post message: ${res.status} ${res.text}`);
  return { ...res.json.data, backend: res.backend };
}

// The value of an unlabelled gauge or counter on one instance's /metrics.
async function metric(inst, name) {
  const res = await fetch(`http://127.0.0.1:${inst.port}/metrics`, { signal: AbortSignal.timeout(WAIT) });
  const text = await res.text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `${name} not found on s${inst.index}'s /metrics`);
  return Number(m[1]);
}

// --- Action Cable consumers ---------------------------------------------------
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Records one subscription's callbacks and lets a test wait for one of them.
class Recorder {
  constructor(name, consumerName, frames) {
    this.name = name;
    this.consumerName = consumerName;
    this.frames = frames;
    this.events = [];
    this.waiters = new Set();
  }
  push(kind, data) {
    const ev = { kind, data };
    this.events.push(ev);
    for (const w of [...this.waiters]) w(ev);
  }
  mark() {
    return this.events.length;
  }
  // Resolves with the first event from index `from` on that matches.
  waitFor(label, pred, ms = WAIT, from = 0) {
    const found = this.events.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${label} on ${this.consumerName}'s ${this.name}\n` +
              `callbacks seen: ${JSON.stringify(this.events.slice(-15))}\n` +
              `last frames received by ${this.consumerName}:\n  ${this.frames.slice(-15).join("\n  ") || "(none)"}`,
          ),
        );
      }, ms);
      const check = (ev) => {
        if (!pred(ev)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ev);
      };
      this.waiters.add(check);
    });
  }
  received(label, pred, ms, from) {
    return this.waitFor(label, (ev) => ev.kind === "received" && pred(ev.data), ms, from);
  }
  connected(ms, from) {
    return this.waitFor("connected", (ev) => ev.kind === "connected", ms, from);
  }
}

const consumers = new Set();

// Opens a consumer for `user` and subscribes it to the given channels the way
// the web client does. Returns { consumer, subs: {name: Subscription}, rec: {name: Recorder} }.
function connect(name, user, channels) {
  // `e2e=<name>` is for the balancer's bookkeeping; the server ignores it.
  const consumer = ActionCable.createConsumer(
    `ws://${address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`,
  );
  const frames = [];
  framesByConsumer.set(consumer, frames);
  const c = { name, consumer, frames, subs: {}, rec: {}, timers: [] };
  for (const [key, params] of Object.entries(channels)) addSubscription(c, key, params);
  consumers.add(c);
  return c;
}

// Subscribes consumer c (from connect) to one more channel, recorded under key.
function addSubscription(c, key, params) {
  const rec = new Recorder(key, c.name, c.frames);
  c.rec[key] = rec;
  c.subs[key] = c.consumer.subscriptions.create(params, {
    connected(data) {
      rec.push("connected", data);
    },
    disconnected(data) {
      rec.push("disconnected", data);
    },
    rejected() {
      rec.push("rejected");
    },
    received(message) {
      rec.push("received", message);
    },
  });
  if (params.channel === "PresenceChannel") {
    // The web client renews its presence entry every 30 s.
    const t = setInterval(() => c.subs[key].perform("ping"), 30_000);
    t.unref();
    c.timers.push(t);
  }
}

function disconnect(c) {
  if (!c) return;
  for (const t of c.timers) clearInterval(t);
  c.consumer.disconnect();
  consumers.delete(c);
}

function allChannels(conversationId) {
  return {
    conversation: { channel: "ConversationChannel", conversation_id: conversationId },
    presence: { channel: "PresenceChannel" },
    call: { channel: "CallChannel" },
    user: { channel: "UserChannel" },
  };
}

// A raw ws client that speaks the protocol by hand, to see frames the stock
// client consumes internally (e.g. disconnect). Sends Origin like a browser.
function rawCable(user, name) {
  const ws = new WebSocket(
    `ws://${address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`,
    ["actioncable-v1-json", "actioncable-unsupported"],
    { origin: FRONTEND_ORIGIN },
  );
  const r = { ws, frames: [], closed: null, waiters: new Set() };
  const notify = () => {
    for (const w of [...r.waiters]) w();
  };
  ws.on("message", (data) => {
    r.frames.push(String(data));
    notify();
  });
  ws.on("close", (code, reason) => {
    r.closed = { code, reason: String(reason) };
    notify();
  });
  ws.on("error", (err) => {
    r.error = err;
    notify();
  });
  r.waitFor = (label, pred, ms = WAIT) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const v = pred(r);
        if (v) {
          clearTimeout(timer);
          r.waiters.delete(check);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        r.waiters.delete(check);
        reject(
          new Error(
            `timed out after ${ms} ms waiting for ${label} on the raw ws client; ` +
              `frames: ${JSON.stringify(r.frames.slice(-15))}; closed: ${JSON.stringify(r.closed)}; error: ${r.error}`,
          ),
        );
      }, ms);
      r.waiters.add(check);
      check();
    });
  r.parsed = () =>
    r.frames.map((f) => {
      try {
        return JSON.parse(f);
      } catch {
        return f;
      }
    });
  return r;
}

// --- The test -----------------------------------------------------------------
const state = {};
let failed = false;

// Wraps a test body: on failure, attach the server's recent output.
function step(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (err && typeof err === "object" && !err.__tailed) {
        err.__tailed = true;
        try {
          if (outputTail.length > 0) err.message += `\n${serverTail()}`;
        } catch {}
      }
      throw err;
    }
  };
}

function need(...keys) {
  for (const k of keys) {
    assert.ok(state[k], `prerequisite missing: ${k} (an earlier step failed)`);
  }
}

// With two instances, A's consumer lives on s0 and B's and C's on s1, and the
// REST calls that should reach A are sent to s1: every event A waits for then
// crosses from one instance to the other. With one instance both are s0.
const S0 = 0;
const S1 = INSTANCES > 1 ? 1 : 0;
const on = (i) => (INSTANCES > 1 ? ` (on s${i})` : "");

// Asserts that the latest socket tagged `name` went to instance `want`.
function assertOn(name, want) {
  if (!lb) return;
  const landed = lb.landed(name);
  assert.ok(landed.length > 0, `the balancer saw no connection tagged ${name}`);
  assert.equal(landed[landed.length - 1], want, `${name}'s latest connection: ${JSON.stringify(landed)} (s0, s1…)`);
}

function assertLanded(res, want, what) {
  if (!lb) return;
  assert.equal(res.backend, want, `${what} went to s${res.backend}, wanted s${want}`);
}

function serverRestartFrames(c) {
  return c.frames.filter((f) => {
    try {
      const j = JSON.parse(f);
      return j.type === "disconnect" && j.reason === "server_restart" && j.reconnect === true;
    } catch {
      return false;
    }
  }).length;
}

const MODE = DURABLE ? "durable mode: PostgreSQL + Redis, two instances behind a balancer" : "in-memory mode";
describe(`chatterly /cable with @rails/actioncable (${MODE})`, () => {
  before(
    step(async () => {
      assert.ok(
        BIN,
        "CHATTERLY_BIN is not set: build the server (go build -o /tmp/chatterly ./cmd/chatterly) and run with CHATTERLY_BIN=/tmp/chatterly",
      );
      const ports = new Set();
      while (ports.size < INSTANCES) ports.add(await freePort());
      for (const port of ports) instances.push({ index: instances.length, port, proc: null });
      await Promise.all(instances.map((inst) => startServer(inst)));
      if (INSTANCES > 1) {
        lb = await startBalancer(instances.map((inst) => inst.port));
        address = `127.0.0.1:${lb.port}`;
      } else {
        address = `127.0.0.1:${instances[0].port}`;
      }
      state.a = await register("a", "Alice E2E");
      state.b = await register("b", "Bob E2E");
      state.c = await register("c", "Carol E2E");
      state.conv = await createConversation(state.a, `E2E ${RUN}`, [state.b.id]);
      assert.ok(Number.isInteger(state.conv.id), `conversation id: ${JSON.stringify(state.conv)}`);
    }),
    { timeout: WAIT_BOOT + 20_000 },
  );

  after(async () => {
    for (const c of [...consumers]) disconnect(c);
    if (state.raw) state.raw.ws.terminate();
    const results = await Promise.allSettled(instances.map((inst) => stopServer(inst, "SIGTERM")));
    for (const r of results) {
      if (r.status === "rejected") {
        failed = true;
        console.error(String(r.reason));
      }
    }
    if (lb) await lb.close();
    if (failed && outputTail.length > 0) console.error(serverTail());
  });

  it(
    `A's consumer${on(S0)} gets connected on all four channels and initial_presence`,
    step(async () => {
      need("conv");
      await steer(S0);
      const a = connect("A", state.a, allChannels(state.conv.id));
      state.A = a;
      for (const key of ["conversation", "presence", "call", "user"]) {
        const ev = await a.rec[key].connected();
        assert.deepEqual(ev.data, { reconnected: false }, `${key} connected payload`);
      }
      assertOn("A", S0);
      // The web client only opens a consumer once: it must not have been rejected anywhere.
      for (const [key, rec] of Object.entries(a.rec)) {
        assert.ok(!rec.events.some((e) => e.kind === "rejected"), `${key} was rejected`);
      }
      assert.equal(a.consumer.connection.getProtocol(), "actioncable-v1-json");
      // The guarantor re-sends `subscribe` every 500 ms until confirmed; the
      // server must ignore repeats, so each identifier is confirmed once.
      const confirms = a.frames.map((f) => JSON.parse(f)).filter((f) => f.type === "confirm_subscription");
      for (const sub of Object.values(a.subs)) {
        assert.equal(
          confirms.filter((f) => f.identifier === sub.identifier).length,
          1,
          `confirm_subscription count for ${sub.identifier}`,
        );
      }
      const ip = await a.rec.presence.received("initial_presence", (m) => m?.type === "initial_presence");
      assert.ok(Array.isArray(ip.data.online_user_ids), `initial_presence: ${JSON.stringify(ip.data)}`);
      assert.ok(!ip.data.online_user_ids.includes(state.b.id), "B is not connected yet, so not online");
      state.aConnected = true;
    }),
  );

  it(
    `a REST message by B${on(S1)} reaches A as new_message`,
    step(async () => {
      need("aConnected");
      const content = `hello from B ${RUN}`;
      const from = state.A.rec.conversation.mark();
      await steer(S1);
      const posted = await postMessage(state.b, state.conv.id, content);
      assertLanded(posted, S1, "the POST");
      const ev = await state.A.rec.conversation.received(
        "new_message",
        (m) => m?.type === "new_message" && m.message?.content === content,
        WAIT,
        from,
      );
      assert.equal(ev.data.message.id, posted.id);
      assert.equal(ev.data.message.user?.id, state.b.id);
      assert.equal(ev.data.message.message_type, "text");
    }),
  );

  it(
    `B coming online${on(S1)} is announced to A; B's initial_presence lists A`,
    step(async () => {
      need("aConnected");
      const from = state.A.rec.presence.mark();
      await steer(S1);
      const b = connect("B", state.b, allChannels(state.conv.id));
      state.B = b;
      for (const key of ["conversation", "presence", "call", "user"]) await b.rec[key].connected();
      assertOn("B", S1);
      state.bConnected = true;
      const online = await state.A.rec.presence.received(
        `{user_id: ${state.b.id}, status: "online"}`,
        (m) => m?.user_id === state.b.id && m.status === "online",
        WAIT,
        from,
      );
      assert.equal(online.data.username, state.b.username);
      assert.equal(online.data.type, undefined, "presence status events carry no type key");
      const ip = await b.rec.presence.received("initial_presence", (m) => m?.type === "initial_presence");
      assert.ok(
        ip.data.online_user_ids.includes(state.a.id),
        `B's initial_presence should list A (an online contact): ${JSON.stringify(ip.data)}`,
      );
    }),
  );

  it(
    INSTANCES > 1
      ? "both instances hold /cable connections: the balancer sent WebSockets to each, each one's chatterly_cable_connections counts them"
      : "chatterly_cable_connections counts A's and B's sockets",
    step(async () => {
      need("aConnected", "bConnected");
      for (const inst of instances) {
        const want = lb ? lb.backends[inst.index].upgrades : 2;
        if (lb) assert.ok(want >= 1, `no WebSocket went to s${inst.index}\n${lb.summary()}`);
        const open = await metric(inst, "chatterly_cable_connections");
        const least = lb ? 1 : 2;
        assert.ok(open >= least, `s${inst.index}: chatterly_cable_connections=${open}, want at least ${least}`);
        assert.ok(open <= want, `s${inst.index}: chatterly_cable_connections=${open} > ${want} WebSockets sent to it`);
      }
    }),
  );

  it(
    `typing / stop_typing by B${on(S1)} reach A${on(S0)} as typing_start / typing_stop`,
    step(async () => {
      need("aConnected", "bConnected");
      let from = state.A.rec.conversation.mark();
      state.B.subs.conversation.perform("typing");
      const start = await state.A.rec.conversation.received(
        "typing_start",
        (m) => m?.type === "typing_start" && m.user_id === state.b.id,
        WAIT,
        from,
      );
      assert.deepEqual(start.data, { type: "typing_start", user_id: state.b.id, display_name: "Bob E2E" });

      from = state.A.rec.conversation.mark();
      state.B.subs.conversation.perform("stop_typing");
      const stop = await state.A.rec.conversation.received(
        "typing_stop",
        (m) => m?.type === "typing_stop" && m.user_id === state.b.id,
        WAIT,
        from,
      );
      assert.deepEqual(stop.data, { type: "typing_stop", user_id: state.b.id });
    }),
  );

  it(
    `C${on(S1)}, not a member, is rejected from the ConversationChannel`,
    step(async () => {
      need("conv");
      await steer(S1);
      const c = connect("C", state.c, {
        conversation: { channel: "ConversationChannel", conversation_id: state.conv.id },
        presence: { channel: "PresenceChannel" },
      });
      state.C = c;
      await c.rec.conversation.waitFor("rejected", (e) => e.kind === "rejected");
      assert.ok(!c.rec.conversation.events.some((e) => e.kind === "connected"), "C must not be confirmed");
      await c.rec.presence.connected();
      assertOn("C", S1);
      state.cConnected = true;
    }),
  );

  it(
    `a conversation created with A${on(S1)} arrives on A's UserChannel as new_conversation; new contacts see each other online`,
    step(async () => {
      need("aConnected", "cConnected");
      const fromUser = state.A.rec.user.mark();
      const fromPresA = state.A.rec.presence.mark();
      const fromPresC = state.C.rec.presence.mark();
      await steer(S1);
      const conv = await createConversation(state.c, `E2E C ${RUN}`, [state.a.id]);
      assertLanded(conv, S1, "the POST");
      const ev = await state.A.rec.user.received(
        "new_conversation",
        (m) => m?.type === "new_conversation" && m.conversation?.id === conv.id,
        WAIT,
        fromUser,
      );
      assert.equal(ev.data.conversation.name, `E2E C ${RUN}`);
      assert.ok(
        ev.data.conversation.members?.some((u) => u.id === state.a.id),
        `members: ${JSON.stringify(ev.data.conversation.members)}`,
      );
      // docs/realtime.md: when two users become contacts, each online one is
      // announced to the other at once.
      await state.A.rec.presence.received(
        `C online announced to A`,
        (m) => m?.user_id === state.c.id && m.status === "online",
        WAIT,
        fromPresA,
      );
      await state.C.rec.presence.received(
        `A online announced to C`,
        (m) => m?.user_id === state.a.id && m.status === "online",
        WAIT,
        fromPresC,
      );
    }),
  );

  it(
    `a three-person group call: A${on(S0)} calls B and C${on(S1)}; B's accept is A's one call_accepted and closes C's dialog; C's late accept joins without another`,
    step(async () => {
      need("aConnected", "bConnected", "cConnected");
      const [A, B, C] = [state.A, state.B, state.C];
      // C's consumer takes the CallChannel too, as the web client does on every page.
      addSubscription(C, "call", { channel: "CallChannel" });
      await C.rec.call.connected();
      await steer(S1);
      const group = await createConversation(state.a, `E2E call ${RUN}`, [state.b.id, state.c.id]);
      assertLanded(group, S1, "the POST");
      const fromA = A.rec.call.mark();
      const fromB = B.rec.call.mark();
      const fromC = C.rec.call.mark();
      const about = (type, more = () => true) => (m) => m?.type === type && m.call_session_id === call.id && more(m);
      await steer(S1);
      const started = await api("POST", `/api/v1/conversations/${group.id}/calls`, {
        token: state.a.token,
        body: { call: { call_type: "video" } },
      });
      assert.equal(started.status, 201, `initiate: ${started.status} ${started.text}`);
      const call = started.json.data;
      await B.rec.call.received("incoming_call", about("incoming_call"), WAIT, fromB);
      await C.rec.call.received("incoming_call", about("incoming_call"), WAIT, fromC);

      // B accepts from the dialog; A offers to B; C's dialog closes.
      B.subs.call.perform("accept_call", { call_session_id: call.id });
      const accepted = await A.rec.call.received("call_accepted", about("call_accepted"), WAIT, fromA);
      assert.equal(accepted.data.accepted_by?.id, state.b.id);
      const closing = await C.rec.call.received("call_ended closing C's dialog", about("call_ended"), WAIT, fromC);
      assert.deepEqual(closing.data, { type: "call_ended", call_session_id: call.id, reason: "answered_by_other" });
      const offer = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n" };
      A.subs.call.perform("send_signal", { target_user_id: state.b.id, call_session_id: call.id, signal: offer });
      const got = await B.rec.call.received("A's offer", about("signal", (m) => m.from_user_id === state.a.id), WAIT, fromB);
      assert.deepEqual(got.data.signal, offer);

      // C accepts late (GET active, then accept): a join, not a second call_accepted.
      await steer(S1);
      const active = await api("GET", `/api/v1/conversations/${group.id}/calls/active`, { token: state.c.token });
      assert.equal(active.status, 200, `active call: ${active.status} ${active.text}`);
      assert.equal(active.json.id, call.id);
      assert.equal(active.json.status, "active");
      await steer(S1);
      const late = await api("PUT", `/api/v1/conversations/${group.id}/calls/${call.id}/accept`, { token: state.c.token });
      assert.equal(late.status, 200, `late accept: ${late.status} ${late.text}`);
      assertLanded(late, S1, "the PUT");
      const joined = (m) => m.user?.id === state.c.id;
      await A.rec.call.received("participant_joined", about("participant_joined", joined), WAIT, fromA);
      await B.rec.call.received("participant_joined", about("participant_joined", joined), WAIT, fromB);
      await sleep(500);
      const seen = (rec, from, type) =>
        rec.events.slice(from).filter((e) => e.kind === "received" && about(type)(e.data)).length;
      assert.equal(seen(A.rec.call, fromA, "call_accepted"), 1, "A sees exactly one call_accepted");
      for (const type of ["call_declined", "call_ended", "incoming_call"]) {
        assert.equal(seen(A.rec.call, fromA, type), 0, `A gets no ${type} while in the call`);
        assert.equal(seen(B.rec.call, fromB, type) - (type === "incoming_call" ? 1 : 0), 0, `B gets no ${type} while in the call`);
      }

      // A hangs up for everyone.
      await steer(S1);
      const ended = await api("DELETE", `/api/v1/conversations/${group.id}/calls/${call.id}`, { token: state.a.token });
      assert.equal(ended.status, 200, `end: ${ended.status} ${ended.text}`);
      const over = (m) => m.reason === undefined;
      for (const [who, rec, from] of [["B", B.rec.call, fromB], ["C", C.rec.call, fromC]]) {
        const ev = await rec.received(`call_ended on ${who}'s CallChannel`, about("call_ended", over), WAIT, from);
        assert.deepEqual(ev.data, { type: "call_ended", call_session_id: call.id });
      }
    }),
  );

  it(
    `B's consumer${on(S1)} disconnecting is announced to A${on(S0)} as offline`,
    step(async () => {
      need("aConnected", "bConnected");
      const from = state.A.rec.presence.mark();
      disconnect(state.B);
      const ev = await state.A.rec.presence.received(
        `{user_id: ${state.b.id}, status: "offline"}`,
        (m) => m?.user_id === state.b.id && m.status === "offline",
        WAIT_OFFLINE,
        from,
      );
      assert.equal(ev.data.username, state.b.username);
    }),
  );

  it(
    `SIGTERM${INSTANCES > 1 ? " to s0" : ""} sends {"type":"disconnect","reason":"server_restart","reconnect":true} and the server exits`,
    { timeout: WAIT_EXIT + 15_000 },
    step(async () => {
      need("aConnected");
      // A raw client beside A's consumer (on the same instance), to see the
      // frame the stock client handles internally.
      await steer(S0);
      const raw = rawCable(state.a, "rawA");
      state.raw = raw;
      await raw.waitFor("welcome", (r) => r.parsed().some((f) => f?.type === "welcome"));
      assert.equal(raw.ws.protocol, "actioncable-v1-json");
      assertOn("rawA", S0);
      const fromA = state.A.rec.conversation.mark();

      const exit = await stopServer(instances[S0], "SIGTERM");
      state.stopped = true;
      const frame = await raw.waitFor("disconnect frame", (r) =>
        r.parsed().find((f) => f?.type === "disconnect"),
      );
      assert.deepEqual(frame, { type: "disconnect", reason: "server_restart", reconnect: true });
      await raw.waitFor("close", (r) => r.closed);
      assert.deepEqual(exit, { code: 0, signal: null }, "graceful shutdown exits 0");

      // The stock client saw the same frame: it notifies `disconnected` and keeps its monitor running.
      const d = await state.A.rec.conversation.waitFor(
        "disconnected",
        (e) => e.kind === "disconnected",
        WAIT,
        fromA,
      );
      assert.deepEqual(d.data, { willAttemptReconnect: true });
      assert.equal(serverRestartFrames(state.A), 1, "A's consumer received the server_restart disconnect frame");
      state.sigtermOK = true;
    }),
  );

  it(
    "rolling restart, first instance: while s0 is down A's consumer reconnects through the balancer to s1 and resubscribes; s0's replacement takes REST traffic",
    { timeout: WAIT_BOOT + WAIT_RECONNECT + 15_000 },
    step(async (t) => {
      if (!DURABLE) {
        t.skip("in-memory mode: users vanish on restart (set DATABASE_URL and REDIS_URL to run this)");
        return;
      }
      need("aConnected", "stopped");
      const fromConv = state.A.rec.conversation.mark();
      const fromUser = state.A.rec.user.mark();
      const since = Date.now();
      // s0 stays down until A is back: the balancer must take it elsewhere.
      const ev = await state.A.rec.conversation.connected(WAIT_RECONNECT, fromConv);
      t.diagnostic(`A's ConversationChannel reconnected ${((Date.now() - since) / 1000).toFixed(1)} s after s0 stopped`);
      assert.deepEqual(ev.data, { reconnected: true });
      await state.A.rec.user.connected(WAIT, fromUser);
      assertOn("A", S1);

      await startServer(instances[S0]); // the replacement, same port
      const content = `after restarting s0 ${RUN}`;
      const from = state.A.rec.conversation.mark();
      await steer(S0);
      const posted = await postMessage(state.b, state.conv.id, content);
      assertLanded(posted, S0, "the POST");
      await state.A.rec.conversation.received(
        "new_message posted on s0's replacement",
        (m) => m?.type === "new_message" && m.message?.content === content,
        WAIT,
        from,
      );
      state.restarted0 = true;
    }),
  );

  it(
    "rolling restart, second instance: SIGTERM to s1 sends A and C server_restart, both reconnect to s0's replacement and resubscribe; s1's replacement takes REST traffic",
    { timeout: WAIT_EXIT + WAIT_BOOT + WAIT_RECONNECT + 15_000 },
    step(async (t) => {
      if (!DURABLE) {
        t.skip("in-memory mode runs one instance");
        return;
      }
      need("restarted0", "cConnected");
      const fromA = state.A.rec.conversation.mark();
      const fromAUser = state.A.rec.user.mark();
      const fromC = state.C.rec.presence.mark();
      const framesA = serverRestartFrames(state.A);
      const exit = await stopServer(instances[S1], "SIGTERM");
      const since = Date.now();
      assert.deepEqual(exit, { code: 0, signal: null }, "graceful shutdown of s1 exits 0");
      const d = await state.A.rec.conversation.waitFor("disconnected", (e) => e.kind === "disconnected", WAIT, fromA);
      assert.deepEqual(d.data, { willAttemptReconnect: true });
      await state.C.rec.presence.waitFor("disconnected", (e) => e.kind === "disconnected", WAIT, fromC);
      assert.equal(serverRestartFrames(state.A), framesA + 1, "A's consumer received a second server_restart frame");
      assert.equal(serverRestartFrames(state.C), 1, "C's consumer received the server_restart frame");

      // s1 stays down until both are back, then its replacement starts.
      const [ea, ec] = await Promise.all([
        state.A.rec.conversation.connected(WAIT_RECONNECT, fromA),
        state.C.rec.presence.connected(WAIT_RECONNECT, fromC),
      ]);
      t.diagnostic(`A and C reconnected ${((Date.now() - since) / 1000).toFixed(1)} s after s1 stopped`);
      assert.deepEqual(ea.data, { reconnected: true });
      assert.deepEqual(ec.data, { reconnected: true });
      await state.A.rec.user.connected(WAIT, fromAUser);
      assertOn("A", S0);
      assertOn("C", S0);

      await startServer(instances[S1]); // the replacement, same port
      const content = `after restarting s1 ${RUN}`;
      const from = state.A.rec.conversation.mark();
      await steer(S1);
      const posted = await postMessage(state.b, state.conv.id, content);
      assertLanded(posted, S1, "the POST");
      await state.A.rec.conversation.received(
        "new_message posted on s1's replacement",
        (m) => m?.type === "new_message" && m.message?.content === content,
        WAIT,
        from,
      );
    }),
  );
});
