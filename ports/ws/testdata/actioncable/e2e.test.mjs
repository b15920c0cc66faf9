// End-to-end test of Chatterly's /cable gateway driven by the official
// @rails/actioncable client, used the way the Next.js web client uses it.
//
//   CHATTERLY_BIN=/tmp/chatterly npm test
//
// The server binary is started as a child process on a free port: durable
// (PostgreSQL + Redis) when DATABASE_URL and REDIS_URL are both set in the
// environment, in-memory otherwise. See README.md.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
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
const FIXED_SECRET = Boolean(process.env.DEVISE_JWT_SECRET_KEY || process.env.JWT_SECRET);
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

// --- Server process ---------------------------------------------------------
let port;
let server; // { child, exited: Promise<{code, signal}>, done: boolean }
const outputTail = [];

function remember(stream, chunk) {
  for (const line of String(chunk).split("\n")) {
    if (line.trim() === "") continue;
    outputTail.push(`[${stream}] ${line}`);
  }
  if (outputTail.length > 80) outputTail.splice(0, outputTail.length - 80);
}

function serverTail() {
  return `--- chatterly output (last ${outputTail.length} lines) ---\n${outputTail.join("\n")}\n--- end of chatterly output ---`;
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

function serverEnv() {
  const env = { ...process.env, PORT: String(port) };
  if (!DURABLE) {
    // In-memory mode: never half-configure the server.
    delete env.DATABASE_URL;
    delete env.DATABASE_REPLICA_URL;
    delete env.REDIS_URL;
  }
  return env;
}

async function startServer() {
  const child = spawn(BIN, [], { env: serverEnv(), stdio: ["ignore", "pipe", "pipe"] });
  const s = { child, done: false };
  s.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      s.done = true;
      remember("exit", `code=${code} signal=${signal}`);
      resolve({ code, signal });
    });
    child.on("error", (err) => {
      s.done = true;
      remember("spawn", String(err));
      resolve({ code: null, signal: null, error: err });
    });
  });
  child.stdout.on("data", (c) => remember("stdout", c));
  child.stderr.on("data", (c) => remember("stderr", c));
  server = s;

  const deadline = Date.now() + WAIT_BOOT;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (s.done) throw new Error(`chatterly exited before answering GET /up\n${serverTail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/up`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return s;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = String(err.cause?.code || err.message);
    }
    await sleep(100);
  }
  throw new Error(`GET /up did not answer 200 within ${WAIT_BOOT} ms (last: ${last})\n${serverTail()}`);
}

async function stopServer(signal = "SIGTERM") {
  const s = server;
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
  if (server && !server.done) server.child.kill("SIGKILL");
});

// --- REST -------------------------------------------------------------------
async function api(method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

async function register(tag, displayName) {
  const username = `e2e_${RUN}_${tag}`;
  const res = await api("POST", "/auth/register", {
    body: { user: { email: `${username}@example.com`, password: PASSWORD, username, display_name: displayName } },
  });
  assert.equal(res.status, 201, `register ${username}: ${res.status} ${res.text}`);
  const auth = res.headers.get("authorization") || "";
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
  return res.json.data;
}

async function postMessage(author, conversationId, content) {
  const res = await api("POST", `/api/v1/conversations/${conversationId}/messages`, {
    token: author.token,
    body: { content },
  });
  assert.equal(res.status, 201, `post message: ${res.status} ${res.text}`);
  return res.json.data;
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
  const consumer = ActionCable.createConsumer(`ws://127.0.0.1:${port}/cable?token=${encodeURIComponent(user.token)}`);
  const frames = [];
  framesByConsumer.set(consumer, frames);
  const c = { name, consumer, frames, subs: {}, rec: {}, timers: [] };
  for (const [key, params] of Object.entries(channels)) {
    const rec = new Recorder(key, name, frames);
    c.rec[key] = rec;
    c.subs[key] = consumer.subscriptions.create(params, {
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
  consumers.add(c);
  return c;
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
function rawCable(user) {
  const ws = new WebSocket(
    `ws://127.0.0.1:${port}/cable?token=${encodeURIComponent(user.token)}`,
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

describe(`chatterly /cable with @rails/actioncable (${DURABLE ? "durable: PostgreSQL + Redis" : "in-memory"} mode)`, () => {
  before(
    step(async () => {
      assert.ok(
        BIN,
        "CHATTERLY_BIN is not set: build the server (go build -o /tmp/chatterly ./cmd/chatterly) and run with CHATTERLY_BIN=/tmp/chatterly",
      );
      port = await freePort();
      await startServer();
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
    try {
      await stopServer("SIGTERM");
    } catch (err) {
      failed = true;
      console.error(String(err));
    }
    if (failed && outputTail.length > 0) console.error(serverTail());
  });

  it(
    "A's consumer gets connected on all four channels and initial_presence",
    step(async () => {
      need("conv");
      const a = connect("A", state.a, allChannels(state.conv.id));
      state.A = a;
      for (const key of ["conversation", "presence", "call", "user"]) {
        const ev = await a.rec[key].connected();
        assert.deepEqual(ev.data, { reconnected: false }, `${key} connected payload`);
      }
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
    "a REST message by B reaches A as new_message",
    step(async () => {
      need("aConnected");
      const content = `hello from B ${RUN}`;
      const from = state.A.rec.conversation.mark();
      const posted = await postMessage(state.b, state.conv.id, content);
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
    "B coming online is announced to A; B's initial_presence lists A",
    step(async () => {
      need("aConnected");
      const from = state.A.rec.presence.mark();
      const b = connect("B", state.b, allChannels(state.conv.id));
      state.B = b;
      for (const key of ["conversation", "presence", "call", "user"]) await b.rec[key].connected();
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
    "typing / stop_typing by B reach A as typing_start / typing_stop",
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
    "C, not a member, is rejected from the ConversationChannel",
    step(async () => {
      need("conv");
      const c = connect("C", state.c, {
        conversation: { channel: "ConversationChannel", conversation_id: state.conv.id },
        presence: { channel: "PresenceChannel" },
      });
      state.C = c;
      await c.rec.conversation.waitFor("rejected", (e) => e.kind === "rejected");
      assert.ok(!c.rec.conversation.events.some((e) => e.kind === "connected"), "C must not be confirmed");
      await c.rec.presence.connected();
      state.cConnected = true;
    }),
  );

  it(
    "a conversation created with A arrives on A's UserChannel as new_conversation; new contacts see each other online",
    step(async () => {
      need("aConnected", "cConnected");
      const fromUser = state.A.rec.user.mark();
      const fromPresA = state.A.rec.presence.mark();
      const fromPresC = state.C.rec.presence.mark();
      const conv = await createConversation(state.c, `E2E C ${RUN}`, [state.a.id]);
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
    "B's consumer disconnecting is announced to A as offline",
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
    'SIGTERM sends {"type":"disconnect","reason":"server_restart","reconnect":true} and the server exits',
    { timeout: WAIT_EXIT + 15_000 },
    step(async () => {
      need("aConnected");
      // A raw client beside A's consumer, to see the frame the stock client handles internally.
      const raw = rawCable(state.a);
      state.raw = raw;
      await raw.waitFor("welcome", (r) => r.parsed().some((f) => f?.type === "welcome"));
      assert.equal(raw.ws.protocol, "actioncable-v1-json");
      const fromA = state.A.rec.conversation.mark();

      const exit = await stopServer("SIGTERM");
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
      assert.ok(
        state.A.frames.some((f) => {
          try {
            const j = JSON.parse(f);
            return j.type === "disconnect" && j.reason === "server_restart" && j.reconnect === true;
          } catch {
            return false;
          }
        }),
        "A's consumer received the server_restart disconnect frame",
      );
      state.sigtermOK = true;
    }),
  );

  it(
    "after a restart on the same port, A's consumer reconnects and resubscribes by itself",
    { timeout: WAIT_BOOT + WAIT_RECONNECT + 15_000 },
    step(async (t) => {
      if (!DURABLE) {
        t.skip("in-memory mode: users vanish on restart (set DATABASE_URL and REDIS_URL to run this)");
        return;
      }
      if (!FIXED_SECRET) {
        t.skip("durable mode without DEVISE_JWT_SECRET_KEY: a restart makes a new random secret, so tokens die");
        return;
      }
      need("aConnected", "stopped");
      const fromConv = state.A.rec.conversation.mark();
      const fromUser = state.A.rec.user.mark();
      const restartedAt = Date.now();
      await startServer(); // same `port`
      const ev = await state.A.rec.conversation.connected(WAIT_RECONNECT, fromConv);
      t.diagnostic(`A's ConversationChannel reconnected ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after the restart`);
      assert.deepEqual(ev.data, { reconnected: true });
      await state.A.rec.user.connected(WAIT, fromUser);

      const content = `after restart ${RUN}`;
      const from = state.A.rec.conversation.mark();
      await postMessage(state.b, state.conv.id, content);
      await state.A.rec.conversation.received(
        "new_message after restart",
        (m) => m?.type === "new_message" && m.message?.content === content,
        WAIT,
        from,
      );
    }),
  );
});
