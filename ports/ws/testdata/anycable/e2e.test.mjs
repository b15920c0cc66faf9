// End-to-end test of Chatterly's /cable gateway speaking AnyCable's extended
// protocol (actioncable-v1-ext-json), driven by the real @anycable/core client.
//
//   DATABASE_URL=... REDIS_URL=... CHATTERLY_BIN=/tmp/chatterly npm test
//
// Durable mode only (PostgreSQL + Redis): two instances sharing the database,
// Redis (where the streams' history lives) and the JWT secret, behind the
// round-robin TCP balancer of ../harness.mjs, which can drop a client's
// connections and hold its new ones. Three scenarios, each with 260 events
// (200 new_message, 20 message_edited, 20 message_deleted, 20
// reaction_added) posted over REST by A while B is cut off:
//
//   1. proxy drop: the balancer destroys B's TCP connection and holds B's
//      reconnection until the events are posted; B must restore its session
//      (welcome restored: true) on the other instance and get the missed
//      events from the history;
//   2. the same drop, but B is let through after 100 of the 260 events, A
//      going on posting: the history and the live broadcasts meet;
//   3. SIGTERM: the instance holding B's socket drains; B reconnects to the
//      other instance (restoring its session, or resubscribing with its
//      stream positions) and gets the missed events from the history.
//
// Both check, with no REST call by B after the cut: every event exactly once,
// in publish order, offsets contiguous on the stream, and (scenario 1) the
// replayed frames are byte for byte the frames a live ext client got, while a
// plain actioncable-v1-json client got them without stream_id/epoch/offset.
// See README.md.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";

import WebSocket from "ws";
import { Channel, createCable } from "@anycable/core";

// Spawning instances, the balancer, REST helpers: shared with ../actioncable.
import { createCluster, DURABLE, RUN, WAIT, WAIT_BOOT, WAIT_EXIT, sleep, until } from "../harness.mjs";

const EXT = "actioncable-v1-ext-json";
const PLAIN = "actioncable-v1-json";

// A posts 200 messages in each scenario: the per-user message and reaction
// limits (20/10s, 30/10s by default) would make that take minutes.
const cluster = createCluster({
  env: {
    RATE_LIMIT_MESSAGES: process.env.RATE_LIMIT_MESSAGES || "off",
    RATE_LIMIT_REACTIONS: process.env.RATE_LIMIT_REACTIONS || "off",
  },
});
const { instances, api, steer, register, createConversation, postMessage, serverTail } = cluster;

const WAIT_RECONNECT = 25_000; // the client's first reconnect comes 1.5–9 s after a close
const WAIT_DELIVERY = 20_000; // the history of 260 events, after the reconnect
const COUNTS = { posts: 200, edits: 20, deletes: 20, reactions: 20 };
const TOTAL = COUNTS.posts + COUNTS.edits + COUNTS.deletes + COUNTS.reactions; // 260
const MID = 100; // the mid-burst scenario lets B back after this many events
const DURABLE_TYPES = new Set(["new_message", "message_edited", "message_deleted", "reaction_added"]);
const POSITION_KEYS = ["stream_id", "epoch", "offset"];

// --- Channels, as the web client declares them --------------------------------
class ConversationChannel extends Channel {
  static identifier = "ConversationChannel";
}
class PresenceChannel extends Channel {
  static identifier = "PresenceChannel";
}
class CallChannel extends Channel {
  static identifier = "CallChannel";
}
class UserChannel extends Channel {
  static identifier = "UserChannel";
}

function parse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const redact = (s) => String(s).replace(/token=[^&\s"]+/g, "token=…");

// Debug logger for E2E_DEBUG=1 (the client's own is a no-op).
const debugLogger = (name) => ({
  level: "debug",
  log(level, msg, details) {
    console.error(`[${name} ${level}] ${msg} ${details === undefined ? "" : redact(JSON.stringify(details))}`);
  },
  debug(m, d) {
    this.log("debug", m, d);
  },
  info(m, d) {
    this.log("info", m, d);
  },
  warn(m, d) {
    this.log("warn", m, d);
  },
  error(m, d) {
    this.log("error", m, d);
  },
});

// --- @anycable/core clients ---------------------------------------------------
const clients = new Set();

// Opens a cable for `user` with the extended protocol and subscribes it to
// `channels` ({key: Channel instance}). Every frame each of its sockets
// receives or sends is recorded (a `ws` subclass: observation only), and so
// is every cable and channel event.
// Returns { name, cable, ch: {key: Channel}, rec: {key: {messages, events}}, log }.
function openCable(name, user, channels) {
  const log = { sockets: [], frames: [], sent: [], events: [] };
  class RecordingWebSocket extends WebSocket {
    constructor(url, protocols, opts) {
      super(url, protocols, opts);
      const sock = log.sockets.length;
      this.e2eSock = sock;
      const info = { sock, url: redact(url), protocol: null, closed: null, at: Date.now() };
      log.sockets.push(info);
      this.on("open", () => {
        info.protocol = this.protocol;
      });
      this.on("message", (data) => {
        const text = typeof data === "string" ? data : Buffer.from(data).toString("utf8");
        log.frames.push({ sock, text, json: parse(text), at: Date.now() });
      });
      this.on("close", (code, reason) => {
        info.closed = { code, reason: String(reason) };
      });
      this.on("error", (err) => {
        info.error = String(err.message || err);
      });
    }
    send(data, ...rest) {
      const text = String(data);
      log.sent.push({ sock: this.e2eSock, text, json: parse(text), at: Date.now() });
      return super.send(data, ...rest);
    }
  }
  const url = `ws://${cluster.address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`;
  const cable = createCable(url, {
    protocol: EXT,
    websocketImplementation: RecordingWebSocket,
    ...(process.env.E2E_DEBUG ? { logger: debugLogger(name) } : {}),
  });
  const c = { name, user, cable, ch: {}, rec: {}, log };
  const event = (kind, data) => log.events.push({ kind, ...data, sock: log.sockets.length - 1, at: Date.now() });
  cable.on("connect", (ev) => event("connect", ev));
  cable.on("disconnect", (err) => event("disconnect", { reason: err?.reason, message: err?.message }));
  cable.on("close", (err) => event("close", { reason: err?.reason, message: err?.message }));
  cable.on("info", (ev) => event("info", ev));
  for (const [key, channel] of Object.entries(channels)) {
    const rec = { messages: [], events: [] };
    c.rec[key] = rec;
    c.ch[key] = channel;
    channel.on("message", (message, meta) =>
      rec.messages.push({ message, meta, sock: log.sockets.length - 1, at: Date.now() }),
    );
    for (const kind of ["connect", "disconnect", "close", "info"]) {
      channel.on(kind, (ev) =>
        rec.events.push({
          kind,
          ...(kind === "disconnect" || kind === "close" ? { reason: ev?.reason } : ev),
          sock: log.sockets.length - 1,
          at: Date.now(),
        }),
      );
    }
    cable.subscribe(channel);
  }
  clients.add(c);
  return c;
}

// What a client saw, for failure messages.
function describeClient(c, last = 20) {
  const frames = c.log.frames.slice(-last).map((f) => `#${f.sock} < ${redact(f.text)}`);
  const sent = c.log.sent.slice(-10).map((f) => `#${f.sock} > ${redact(f.text)}`);
  return (
    `--- ${c.name}'s client ---\n` +
    `sockets: ${JSON.stringify(c.log.sockets)}\n` +
    `cable events: ${JSON.stringify(c.log.events.slice(-12))}\n` +
    `last ${frames.length} frames received:\n  ${frames.join("\n  ") || "(none)"}\n` +
    `last ${sent.length} frames sent:\n  ${sent.join("\n  ") || "(none)"}\n` +
    `--- end of ${c.name}'s client ---`
  );
}

async function ensureSubscribed(c, ms = WAIT) {
  for (const [key, ch] of Object.entries(c.ch)) {
    let timer;
    await Promise.race([
      ch.ensureSubscribed(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${c.name}'s ${key} not subscribed within ${ms} ms\n${describeClient(c)}`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }
}

// A raw `ws` client with the plain protocol (what @rails/actioncable offers),
// subscribed by hand to the given identifiers.
function rawPlain(user, name, identifiers) {
  const ws = new WebSocket(
    `ws://${cluster.address}/cable?token=${encodeURIComponent(user.token)}&e2e=${encodeURIComponent(name)}`,
    [PLAIN, "actioncable-unsupported"],
  );
  const r = { name, ws, frames: [], closed: null };
  ws.on("message", (data) => {
    const text = String(data);
    r.frames.push({ text, json: parse(text) });
    if (r.frames.length === 1) {
      for (const identifier of identifiers) ws.send(JSON.stringify({ command: "subscribe", identifier }));
    }
  });
  ws.on("close", (code, reason) => {
    r.closed = { code, reason: String(reason) };
  });
  ws.on("error", (err) => {
    r.error = String(err.message || err);
  });
  return r;
}

// --- The events ---------------------------------------------------------------
// The durable event a conversation-stream message stands for: {type, id}.
function eventKey(m) {
  switch (m?.type) {
    case "new_message":
    case "message_edited":
      return { type: m.type, id: m.message?.id };
    case "message_deleted":
      return { type: m.type, id: m.message_id };
    case "reaction_added":
      return { type: m.type, id: m.reaction?.id };
    default:
      return null;
  }
}
const keyText = (k) => `${k.type}:${k.id}`;

// A, over REST through the balancer (one connection per call, round robin
// over the instances that are up), one call after the other: 200 messages,
// then edits of the first 20, deletes of the next 20, a reaction on each of
// the next 20. Each call answers after its event was published, so the
// returned list is the stream's publish order. `after(n)`, if given, is
// awaited after the n-th call (1…260).
async function postEvents(author, conversationId, label, after = async () => {}) {
  const expected = [];
  const posted = [];
  const started = Date.now();
  for (let i = 0; i < COUNTS.posts; i++) {
    const m = await postMessage(author, conversationId, `${label} #${i + 1} ${RUN}`);
    posted.push(m);
    expected.push({ type: "new_message", id: m.id });
    await after(expected.length);
  }
  for (let i = 0; i < COUNTS.edits; i++) {
    const m = posted[i];
    await cluster.editMessage(author, conversationId, m.id, `${label} #${i + 1} edited ${RUN}`);
    expected.push({ type: "message_edited", id: m.id });
    await after(expected.length);
  }
  for (let i = COUNTS.edits; i < COUNTS.edits + COUNTS.deletes; i++) {
    const m = posted[i];
    await cluster.deleteMessage(author, conversationId, m.id);
    expected.push({ type: "message_deleted", id: m.id });
    await after(expected.length);
  }
  const from = COUNTS.edits + COUNTS.deletes;
  for (let i = from; i < from + COUNTS.reactions; i++) {
    const r = await cluster.react(author, posted[i].id, "👍");
    expected.push({ type: "reaction_added", id: r.id });
    await after(expected.length);
  }
  const backends = {};
  for (const m of posted) backends[`s${m.backend}`] = (backends[`s${m.backend}`] ?? 0) + 1;
  return { expected, ms: Date.now() - started, backends };
}

// Compares the events received with the ones published; returns null when
// they are the same sequence, else what differs (missing, duplicated, first
// place out of order).
function sequenceProblems(got, want) {
  const g = got.map(keyText);
  const w = want.map(keyText);
  if (g.length === w.length && g.every((x, i) => x === w[i])) return null;
  const counts = new Map();
  for (const x of g) counts.set(x, (counts.get(x) ?? 0) + 1);
  const wanted = new Set(w);
  const missing = w.filter((x) => !counts.has(x));
  const dups = [...counts].filter(([, n]) => n > 1).map(([x, n]) => `${x} ×${n}`);
  const unexpected = g.filter((x) => !wanted.has(x));
  let firstDiff = 0;
  while (firstDiff < Math.min(g.length, w.length) && g[firstDiff] === w[firstDiff]) firstDiff++;
  return (
    `received ${g.length} events, want ${w.length}; ` +
    `missing ${missing.length} (${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", …" : ""}); ` +
    `duplicated ${dups.length} (${dups.slice(0, 8).join(", ")}); ` +
    `unexpected ${unexpected.length} (${unexpected.slice(0, 8).join(", ")}); ` +
    `first difference at #${firstDiff}: got ${g.slice(firstDiff, firstDiff + 3).join(", ") || "(end)"}, ` +
    `want ${w.slice(firstDiff, firstDiff + 3).join(", ") || "(end)"}`
  );
}

// The conversation-stream frames a client received on socket `sock` or later,
// with their position fields.
function conversationFrames(c, identifier, fromFrame = 0) {
  return c.log.frames.slice(fromFrame).filter((f) => f.json?.identifier === identifier && f.json?.message !== undefined);
}

// --- The test -----------------------------------------------------------------
const state = {};
let failed = false;

// Wraps a test body: on failure, attach what B's client saw and the servers'
// recent output.
function step(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      failed = true;
      if (err && typeof err === "object" && !err.__tailed) {
        err.__tailed = true;
        try {
          if (state.B) err.message += `\n${describeClient(state.B)}`;
          if (cluster.outputTail.length > 0) err.message += `\n${serverTail()}`;
        } catch {}
      }
      throw err;
    }
  };
}

function need(...keys) {
  for (const k of keys) assert.ok(state[k], `prerequisite missing: ${k} (an earlier step failed)`);
}

const S0 = 0;
const S1 = 1;

// Waits until B's client has a `connect` event after event index `fromEvent`.
async function reconnected(c, fromEvent, ms = WAIT_RECONNECT) {
  return until(
    `${c.name}'s cable to connect again`,
    () => c.log.events.slice(fromEvent).find((e) => e.kind === "connect"),
    ms,
    () => `${describeClient(c)}\n${cluster.lb.summary()}`,
  );
}

// B's side of a cut-off: the events published while B was away must all
// reach B's ConversationChannel once, in order, with contiguous offsets.
// `from` is B's conversation message count at the cut, `base` the position
// (meta) of the last message B had then.
// Waits for as many durable events as were published after message index
// `from` (or WAIT_DELIVERY), then a little more, so that a late duplicate
// would show. The checks come after, in assertDelivered.
async function awaitDelivery(c, from, expected) {
  const rec = c.rec.conversation;
  const since = Date.now();
  try {
    await until(
      `${TOTAL} events on ${c.name}'s ConversationChannel`,
      () => rec.messages.slice(from).filter((m) => DURABLE_TYPES.has(m.message?.type)).length >= expected.length,
      WAIT_DELIVERY,
    );
  } catch {
    // assertDelivered says what is missing
  }
  const ms = Date.now() - since;
  await sleep(500);
  return ms;
}

// `context` is added to the failure messages (how B caught up).
function assertDelivered(t, c, from, base, expected, context = "") {
  const rec = c.rec.conversation;
  const stream = `conversation_${state.conv.id}`;
  const got = rec.messages.slice(from).filter((m) => DURABLE_TYPES.has(m.message?.type));
  const problems = sequenceProblems(
    got.map((m) => eventKey(m.message)),
    expected,
  );
  assert.ok(problems === null, `${c.name}'s ConversationChannel after the cut: ${problems}${context ? `\n${context}` : ""}`);

  const ids = got.filter((m) => m.message.type === "new_message").map((m) => m.message.message.id);
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i] > ids[i - 1], `new_message ids must ascend: #${i - 1} ${ids[i - 1]}, #${i} ${ids[i]}`);
  }

  // Positions: every event carries the stream's, offsets follow the last one
  // B had, one by one (nothing else is broadcast on that stream meanwhile).
  for (let i = 0; i < got.length; i++) {
    const { meta, message } = got[i];
    assert.ok(
      meta && meta.stream === stream && meta.epoch === base.epoch && meta.offset === base.offset + 1 + i,
      `event #${i} (${keyText(eventKey(message))}) has position ${JSON.stringify(meta)}, want ` +
        `{stream: ${stream}, epoch: ${base.epoch}, offset: ${base.offset + 1 + i}} (after ${JSON.stringify(base)})` +
        (context ? `\n${context}` : ""),
    );
  }
  t.diagnostic(
    `${c.name} received all ${got.length} events once, in order, offsets ${base.offset + 1}…${base.offset + got.length} (epoch ${base.epoch})`,
  );
  return got;
}

// How the reconnected socket `sock` caught up: the frames between its welcome
// and the conversation's confirm_history (replayed) and after (live).
function catchUp(c, sock, identifier) {
  const frames = c.log.frames.filter((f) => f.sock === sock);
  const confirm = frames.findIndex((f) => f.json?.type === "confirm_history" && f.json.identifier === identifier);
  const reject = frames.find((f) => f.json?.type === "reject_history" && f.json.identifier === identifier);
  const ofConv = (f) => f.json?.identifier === identifier && f.json?.message !== undefined;
  const replayed = confirm < 0 ? 0 : frames.slice(0, confirm).filter(ofConv).length;
  const live = frames.slice(confirm < 0 ? 0 : confirm).filter(ofConv).length;
  return {
    welcome: frames.find((f) => f.json?.type === "welcome")?.json ?? null,
    confirmHistory: confirm >= 0,
    rejectHistory: reject?.json ?? null,
    replayed,
    live,
    sentHistory: c.log.sent.filter(
      (f) => f.sock === sock && f.json?.identifier === identifier && f.json?.command === "history",
    ),
    sentSubscribe: c.log.sent.filter(
      (f) => f.sock === sock && f.json?.identifier === identifier && f.json?.command === "subscribe",
    ),
  };
}

function latestSock(c) {
  return c.log.sockets.length - 1;
}

function noRestBy(user, fromRequest) {
  const calls = cluster.requests.slice(fromRequest).filter((r) => r.token === user.token);
  assert.equal(
    calls.length,
    0,
    `B made REST calls after the cut: ${calls.map((r) => `${r.method} ${r.path}`).join(", ")}`,
  );
}

describe(
  "chatterly /cable with @anycable/core, actioncable-v1-ext-json (durable mode: PostgreSQL + Redis, two instances behind a balancer)",
  { skip: DURABLE ? false : "durable mode only: set DATABASE_URL and REDIS_URL (history lives in Redis Streams)" },
  () => {
    before(
      step(async () => {
        await cluster.start();
        state.a = await register("a", "Alice Any");
        state.b = await register("b", "Bob Any");
        state.conv = await createConversation(state.a, `E2E any ${RUN}`, [state.b.id]);
        assert.ok(Number.isInteger(state.conv.id), `conversation id: ${JSON.stringify(state.conv)}`);
        state.stream = `conversation_${state.conv.id}`;
      }),
      { timeout: WAIT_BOOT + 20_000 },
    );

    after(async () => {
      for (const c of clients) c.cable.disconnect();
      if (state.plain) state.plain.ws.terminate();
      for (const err of await cluster.stop()) {
        failed = true;
        console.error(String(err));
      }
      if (failed && cluster.outputTail.length > 0) console.error(serverTail());
    });

    it(
      "A's live observer (on s0) and B (on s1) connect with actioncable-v1-ext-json: welcome carries a sid, every channel confirmed; a plain client (on s1) still gets actioncable-v1-json",
      step(async () => {
        need("conv");
        // A: an ext client that is never cut off, on the conversation and
        // presence: the live frames B's replayed ones are compared with.
        await steer(S0);
        const A = openCable("A", state.a, {
          conversation: new ConversationChannel({ conversation_id: state.conv.id }),
          presence: new PresenceChannel(),
        });
        state.A = A;
        await ensureSubscribed(A);
        cluster.assertOn("A", S0);

        // A plain Action Cable client for A, by hand, on the conversation.
        state.convIdentifier = A.ch.conversation.identifier;
        await steer(S1);
        const plain = rawPlain(state.a, "plainA", [state.convIdentifier]);
        state.plain = plain;
        await until(
          "the plain client's confirm_subscription",
          () => plain.frames.some((f) => f.json?.type === "confirm_subscription"),
          WAIT,
          () => `frames: ${JSON.stringify(plain.frames.map((f) => f.text))}; closed: ${JSON.stringify(plain.closed)}; error: ${plain.error}`,
        );
        assert.equal(plain.ws.protocol, PLAIN, "the plain client's subprotocol");
        assert.deepEqual(plain.frames[0].json, { type: "welcome" }, "a plain client's welcome is unchanged (no sid)");
        cluster.assertOn("plainA", S1);

        // B, like the web client: its four channels on one cable.
        await steer(S1);
        const B = openCable("B", state.b, {
          conversation: new ConversationChannel({ conversation_id: state.conv.id }),
          presence: new PresenceChannel(),
          call: new CallChannel(),
          user: new UserChannel(),
        });
        state.B = B;
        await ensureSubscribed(B);
        cluster.assertOn("B", S1);
        assert.equal(B.log.sockets[0].protocol, EXT, "B's subprotocol");
        const welcome = B.log.frames.find((f) => f.json?.type === "welcome")?.json;
        assert.ok(
          welcome && typeof welcome.sid === "string" && welcome.sid !== "",
          `B's welcome must carry a sid: ${JSON.stringify(welcome)}`,
        );
        assert.equal(welcome.restored, undefined, "a first connection restores nothing");
        assert.deepEqual(B.log.events[0], { ...B.log.events[0], kind: "connect", reconnect: false, restored: false });
        // @anycable/core sends every subscribe with a history request
        // ({since}); it must be confirmed like any subscribe.
        const sub = B.log.sent.find((f) => f.json?.command === "subscribe" && f.json.identifier === state.convIdentifier);
        assert.ok(sub?.json.history, `B's subscribe carries history: ${sub?.text}`);
        for (const [key, rec] of Object.entries(B.rec)) {
          assert.ok(!rec.events.some((e) => e.kind === "close"), `B's ${key} was rejected or closed`);
        }
        state.sid = welcome.sid;
        state.connected = true;
      }),
    );

    it(
      "broadcasts carry stream_id, epoch and offset for ext clients only; ephemeral events (typing, presence) carry none",
      step(async () => {
        need("connected");
        const { A, B, plain } = state;
        // A message posted through s0 reaches B on s1 with its position.
        const fromB = B.rec.conversation.messages.length;
        const fromPlain = plain.frames.length;
        await steer(S0);
        const m = await postMessage(state.a, state.conv.id, `baseline ${RUN}`);
        cluster.assertLanded(m, S0, "the POST");
        const got = await until(
          "the baseline new_message on B's ConversationChannel",
          () => B.rec.conversation.messages.slice(fromB).find((x) => x.message?.message?.id === m.id),
        );
        assert.ok(
          got.meta && got.meta.stream === state.stream && typeof got.meta.epoch === "string" && Number.isInteger(got.meta.offset),
          `B's new_message must carry stream_id ${state.stream}, epoch and offset: meta ${JSON.stringify(got.meta)}, frame ${
            conversationFrames(B, state.convIdentifier).at(-1)?.text
          }`,
        );
        const pf = await until("the baseline new_message on the plain client", () =>
          plain.frames.slice(fromPlain).find((f) => f.json?.message?.message?.id === m.id),
        );
        assert.deepEqual(Object.keys(pf.json), ["identifier", "message"], `a plain client's frame is unchanged: ${pf.text}`);

        // typing by B: A's ext client gets typing_start with no position.
        const fromA = A.log.frames.length;
        await B.ch.conversation.perform("typing");
        const typing = await until("typing_start on A's ext client", () =>
          A.log.frames.slice(fromA).find((f) => f.json?.message?.type === "typing_start"),
        );
        for (const k of POSITION_KEYS) assert.ok(!(k in typing.json), `typing_start must carry no ${k}: ${typing.text}`);
        await B.ch.conversation.perform("stop_typing");
        // B came online after A: A's presence got it, with no position.
        const online = await until("B online on A's PresenceChannel (ext)", () =>
          A.log.frames.find((f) => f.json?.message?.user_id === state.b.id && f.json.message.status === "online"),
        );
        for (const k of POSITION_KEYS) assert.ok(!(k in online.json), `presence events carry no ${k}: ${online.text}`);
        state.positioned = true;
      }),
    );

    it(
      `proxy drop: the balancer cuts B (on s1) and holds its reconnection while A posts ${TOTAL} events; B restores its session on s0 and gets every event once, in order, without REST`,
      { timeout: 75_000 },
      step(async (t) => {
        need("positioned");
        const { A, B, plain } = state;
        const lb = cluster.lb;
        // Where B was: the position of its last positioned conversation
        // message (typing events after it carry none).
        const base = await until("B's stream position", () => B.rec.conversation.messages.findLast((m) => m.meta)?.meta);
        const fromMsg = B.rec.conversation.messages.length;
        const fromEvent = B.log.events.length;
        const fromRequest = cluster.requests.length;
        const fromA = A.log.frames.length;
        const fromPlain = plain.frames.length;

        lb.hold("B");
        const dropped = lb.drop("B");
        assert.equal(dropped, 1, `B should have one open connection to drop\n${lb.summary()}`);
        await until(
          "B's client to notice the cut",
          () => B.log.events.slice(fromEvent).find((e) => e.kind === "disconnect"),
          WAIT,
          () => describeClient(B),
        );

        const run = await postEvents(state.a, state.conv.id, "drop");
        t.diagnostic(`A's ${TOTAL} REST calls took ${run.ms} ms; messages handled by ${JSON.stringify(run.backends)}`);

        // B's client retries by itself (1.5–9 s after the close); the
        // balancer holds that attempt until now, then sends it to s0.
        await until(
          "B's reconnection, held by the balancer",
          () => lb.heldCount("B") > 0,
          WAIT_RECONNECT,
          () => `${describeClient(B)}\n${lb.summary()}`,
        );
        noRestBy(state.b, fromRequest);
        await steer(S0);
        assert.equal(lb.release("B"), 1, "one held connection of B's released");
        const ev = await reconnected(B, fromEvent);
        cluster.assertOn("B", S0);
        const sock = latestSock(B);
        assert.equal(
          new URL(B.log.sockets[sock].url).searchParams.get("sid"),
          state.sid,
          `B's reconnection URL carries its sid: ${B.log.sockets[sock].url}`,
        );

        const waited = await awaitDelivery(B, fromMsg, run.expected);
        const cu = catchUp(B, sock, state.convIdentifier);
        const how =
          `B's welcome on s0: ${JSON.stringify(cu.welcome)}; connect event ${JSON.stringify({ reconnect: ev.reconnect, restored: ev.restored })}; ` +
          `history requests sent: ${cu.sentHistory.map((f) => f.text).join(" ") || "none"}; ` +
          `subscribes sent: ${cu.sentSubscribe.map((f) => f.text).join(" ") || "none"}; confirm_history: ${cu.confirmHistory}; reject_history: ${JSON.stringify(cu.rejectHistory)}; ` +
          `conversation frames before confirm_history: ${cu.replayed}, after: ${cu.live}; delivery took ${waited} ms after the connect`;
        t.diagnostic(how);
        const got = assertDelivered(t, B, fromMsg, base, run.expected, how);
        noRestBy(state.b, fromRequest);

        // The session was restored (not a fresh connection + resubscribe).
        assert.equal(cu.rejectHistory, null, `the server answered reject_history: ${JSON.stringify(cu.rejectHistory)}`);
        assert.ok(
          cu.welcome?.restored === true,
          `B's session must be restored: a dropped connection's session lives CABLE_SESSION_TTL in Redis, shared by the instances; welcome was ${JSON.stringify(cu.welcome)}`,
        );
        assert.deepEqual(
          [...(cu.welcome.restored_ids ?? [])].sort(),
          Object.values(B.ch).map((ch) => ch.identifier).sort(),
          "restored_ids are B's four identifiers",
        );
        assert.notEqual(cu.welcome.sid, state.sid, "a restored session gets a new sid");
        assert.deepEqual(ev, { ...ev, kind: "connect", reconnect: true, restored: true }, "the cable's connect event");
        assert.equal(cu.sentHistory.length, 1, "B's client asks for the conversation's history once");
        assert.deepEqual(
          cu.sentHistory[0].json.history?.streams?.[state.stream],
          { epoch: base.epoch, offset: base.offset },
          `B's history request names its last position: ${cu.sentHistory[0].text}`,
        );
        assert.ok(cu.confirmHistory, "the server answers the history request with confirm_history");
        assert.equal(cu.sentSubscribe.length, 0, "a restored session resubscribes nothing");
        state.sid = cu.welcome.sid;

        // Replayed frames are the live frames, byte for byte: A's ext client
        // (never cut off, on s0) got the same offsets live.
        const liveByOffset = new Map(
          conversationFrames(A, state.convIdentifier, fromA).map((f) => [`${f.json.stream_id}/${f.json.offset}`, f.text]),
        );
        const bFrames = conversationFrames(B, state.convIdentifier).filter((f) => f.sock === sock);
        let compared = 0;
        for (const f of bFrames) {
          const live = liveByOffset.get(`${f.json.stream_id}/${f.json.offset}`);
          if (live === undefined) continue;
          assert.equal(f.text, live, `B's frame at offset ${f.json.offset} differs from A's live one`);
          compared++;
        }
        assert.equal(compared, got.length, "every frame B caught up with has a live twin on A's client");

        // The plain client got the same events, without position fields.
        await until(`${TOTAL} frames on the plain client`, () =>
          plain.frames.slice(fromPlain).filter((f) => DURABLE_TYPES.has(f.json?.message?.type)).length >= TOTAL,
        );
        const plainFrames = plain.frames.slice(fromPlain).filter((f) => DURABLE_TYPES.has(f.json?.message?.type));
        const aFrames = conversationFrames(A, state.convIdentifier, fromA).filter((f) => DURABLE_TYPES.has(f.json.message?.type));
        assert.equal(plainFrames.length, aFrames.length, "the plain and the ext client got as many events");
        for (let i = 0; i < plainFrames.length; i++) {
          assert.deepEqual(Object.keys(plainFrames[i].json), ["identifier", "message"], `plain frame: ${plainFrames[i].text}`);
          const stripped = { ...aFrames[i].json };
          for (const k of POSITION_KEYS) delete stripped[k];
          assert.deepEqual(plainFrames[i].json, stripped, "a plain frame is the ext frame without its position");
        }
        state.dropOK = true;
      }),
    );

    it(
      `proxy drop, back mid-burst: B (on s0) is cut again and let through to s1 after ${MID} of A's ${TOTAL} events; the history and the live events meet without a gap or a duplicate`,
      { timeout: 75_000 },
      step(async (t) => {
        need("dropOK");
        const { B } = state;
        const lb = cluster.lb;
        const base = await until("B's stream position", () => B.rec.conversation.messages.findLast((m) => m.meta)?.meta);
        const fromMsg = B.rec.conversation.messages.length;
        const fromEvent = B.log.events.length;
        const fromRequest = cluster.requests.length;
        const landed = lb.landed("B");
        const X = landed[landed.length - 1];
        const Y = 1 - X;

        lb.hold("B");
        assert.equal(lb.drop("B"), 1, `B should have one open connection to drop\n${lb.summary()}`);
        await until(
          "B's client to notice the cut",
          () => B.log.events.slice(fromEvent).find((e) => e.kind === "disconnect"),
          WAIT,
          () => describeClient(B),
        );
        // A posts MID events, waits for B's held reconnection, then lets it
        // through to the other instance and goes on posting at once: B's
        // restore and history request meet the rest of the burst.
        let releasedAt = null;
        const run = await postEvents(state.a, state.conv.id, "mid", async (n) => {
          if (n !== MID) return;
          await until(
            "B's reconnection, held by the balancer",
            () => lb.heldCount("B") > 0,
            WAIT_RECONNECT,
            () => `${describeClient(B)}\n${lb.summary()}`,
          );
          assert.equal(lb.release("B", { to: Y }), 1, "one held connection of B's released");
          releasedAt = Date.now();
        });
        t.diagnostic(`A's ${TOTAL} REST calls took ${run.ms} ms (B let through after #${MID}); messages handled by ${JSON.stringify(run.backends)}`);
        assert.ok(releasedAt, "B was let through");
        const ev = await reconnected(B, fromEvent);
        cluster.assertOn("B", Y);
        const sock = latestSock(B);

        const waited = await awaitDelivery(B, fromMsg, run.expected);
        const cu = catchUp(B, sock, state.convIdentifier);
        const how = describeCatchUp(cu, ev, Y, waited);
        t.diagnostic(how);
        assertDelivered(t, B, fromMsg, base, run.expected, how);
        noRestBy(state.b, fromRequest);
        assert.equal(cu.rejectHistory, null, `the server answered reject_history: ${JSON.stringify(cu.rejectHistory)}`);
        assert.ok(cu.welcome?.restored === true, `B's session must be restored: welcome was ${JSON.stringify(cu.welcome)}`);
        assert.ok(cu.confirmHistory, "the server answers the history request with confirm_history");
      }),
    );

    it(
      `SIGTERM: the instance holding B's socket drains while A posts ${TOTAL} events; B reconnects to the other one and gets every event once, in order, without REST; the instance comes back`,
      { timeout: WAIT_EXIT + 75_000 },
      step(async (t) => {
        need("connected");
        const { B } = state;
        const lb = cluster.lb;
        // One more message, so that B's position is fresh whatever happened before.
        const fromBase = B.rec.conversation.messages.length;
        const bm = await postMessage(state.a, state.conv.id, `before SIGTERM ${RUN}`);
        const baseMsg = await until("B's position before SIGTERM", () =>
          B.rec.conversation.messages.slice(fromBase).find((x) => x.message?.message?.id === bm.id && x.meta),
        );
        const base = baseMsg.meta;
        const fromMsg = B.rec.conversation.messages.length;
        const fromEvent = B.log.events.length;
        const fromRequest = cluster.requests.length;
        const oldSock = latestSock(B);
        const landed = lb.landed("B");
        const X = landed[landed.length - 1];
        const Y = 1 - X;

        lb.hold("B");
        const since = Date.now();
        const exit = await cluster.stopServer(instances[X], "SIGTERM");
        t.diagnostic(`s${X} (B's) exited ${Date.now() - since} ms after SIGTERM: ${JSON.stringify(exit)}`);
        assert.deepEqual(exit, { code: 0, signal: null }, "graceful shutdown exits 0");
        await until(
          "B's client to notice the drain",
          () => B.log.events.slice(fromEvent).find((e) => e.kind === "disconnect"),
          WAIT,
          () => describeClient(B),
        );
        const lastFrames = B.log.frames.filter((f) => f.sock === oldSock).slice(-3);
        t.diagnostic(
          `B's socket on s${X} closed with ${JSON.stringify(B.log.sockets[oldSock].closed)}; its last frames: ${lastFrames.map((f) => f.text).join(" ")}`,
        );

        const run = await postEvents(state.a, state.conv.id, "sigterm");
        t.diagnostic(`A's ${TOTAL} REST calls took ${run.ms} ms; messages handled by ${JSON.stringify(run.backends)}`);
        assert.deepEqual(Object.keys(run.backends), [`s${Y}`], `with s${X} down every call goes to s${Y}`);

        await until(
          "B's reconnection, held by the balancer",
          () => lb.heldCount("B") > 0,
          WAIT_RECONNECT,
          () => `${describeClient(B)}\n${lb.summary()}`,
        );
        noRestBy(state.b, fromRequest);
        assert.equal(lb.release("B"), 1, "one held connection of B's released");
        const ev = await reconnected(B, fromEvent);
        cluster.assertOn("B", Y);
        const sock = latestSock(B);

        const waited = await awaitDelivery(B, fromMsg, run.expected);
        const cu = catchUp(B, sock, state.convIdentifier);
        const how = describeCatchUp(cu, ev, Y, waited);
        t.diagnostic(how);
        assertDelivered(t, B, fromMsg, base, run.expected, how);
        noRestBy(state.b, fromRequest);

        // Either the session was restored (then a history command), or the
        // server ended it with a disconnect frame and B resubscribed with its
        // stream positions (a subscribe carrying history): both may serve.
        assert.equal(cu.rejectHistory, null, `the server answered reject_history: ${JSON.stringify(cu.rejectHistory)}`);
        const asked = ev.restored ? cu.sentHistory : cu.sentSubscribe;
        assert.ok(asked.length > 0, `B asked for nothing on s${Y}: restored=${ev.restored}`);
        assert.deepEqual(
          asked.at(-1).json.history?.streams?.[state.stream],
          { epoch: base.epoch, offset: base.offset },
          `B's ${ev.restored ? "history" : "subscribe"} names its last position: ${asked.at(-1).text}`,
        );
        assert.ok(cu.confirmHistory, "the server answers with confirm_history");

        // The drained instance comes back; a message posted through it
        // reaches B on the other one live, at the next offset.
        await cluster.startServer(instances[X]);
        const fromLive = B.rec.conversation.messages.length;
        await steer(X);
        const m = await postMessage(state.a, state.conv.id, `after restarting s${X} ${RUN}`);
        cluster.assertLanded(m, X, "the POST");
        const live = await until("the message posted on the restarted instance, on B", () =>
          B.rec.conversation.messages.slice(fromLive).find((x) => x.message?.message?.id === m.id),
        );
        await sleep(300); // a late duplicate would show
        assert.deepEqual(
          live.meta,
          { stream: state.stream, epoch: base.epoch, offset: base.offset + TOTAL + 1 },
          "the next offset, same epoch",
        );
        assert.equal(
          B.rec.conversation.messages.slice(fromLive).length,
          1,
          "nothing else arrived on B's ConversationChannel",
        );
      }),
    );
  },
);

// describeCatchUp says how B caught up after a reconnect, for the test's
// diagnostics and failure messages.
function describeCatchUp(cu, ev, instance, waited) {
  return (
    `B's welcome on s${instance}: ${JSON.stringify(cu.welcome)}; connect event ${JSON.stringify({ reconnect: ev.reconnect, restored: ev.restored })}; ` +
    `history requests sent: ${cu.sentHistory.map((f) => f.text).join(" ") || "none"}; ` +
    `subscribes sent: ${cu.sentSubscribe.map((f) => f.text).join(" ") || "none"}; confirm_history: ${cu.confirmHistory}; ` +
    `reject_history: ${JSON.stringify(cu.rejectHistory)}; ` +
    `conversation frames before confirm_history: ${cu.replayed}, after: ${cu.live}; delivery took ${waited} ms after the connect`
  );
}
