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

import WebSocket from "ws";
// The package's "main" is a UMD build (CommonJS under Node): import its
// module.exports as the default export.
import ActionCable from "@rails/actioncable";

// Spawning instances, the balancer, REST helpers: shared with ../anycable.
import { createCluster, DURABLE, FRONTEND_ORIGIN, RUN, WAIT, WAIT_BOOT, WAIT_EXIT, sleep } from "../harness.mjs";

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
// In durable mode two instances behind the harness's balancer, otherwise one
// in-memory instance reached directly (see ../harness.mjs).
const cluster = createCluster();
const { instances } = cluster;
const INSTANCES = cluster.count;
const { api, steer, register, createConversation, postMessage, metric, startServer, stopServer, serverTail } =
  cluster;
const { outputTail, assertOn, assertLanded } = cluster;

const WAIT_OFFLINE = 10_000;
const WAIT_RECONNECT = 35_000; // stale period (~6 s) + poll interval + backoff

// --- Action Cable consumers ---------------------------------------------------
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
    `ws://${cluster.address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`,
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
    `ws://${cluster.address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`,
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
      await cluster.start();
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
    for (const err of await cluster.stop()) {
      failed = true;
      console.error(String(err));
    }
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
        const { lb } = cluster;
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
