// What Chatterly's Node end-to-end tests share (ports/ws/testdata/actioncable
// and ports/ws/testdata/anycable): starting `chatterly` instances from
// CHATTERLY_BIN, the round-robin TCP balancer in front of them (with the
// controls to drop and hold chosen clients' connections), REST helpers, and
// waiting for readiness. Node built-ins only: each test's package brings its
// own client library, this file needs none.
//
//   import { createCluster, sleep, DURABLE } from "../harness.mjs";
//   const cl = createCluster({ name: "actioncable" });
//   await cl.start();             // instances (+ balancer with two or more)
//   await cl.api("GET", "/up");   // through the balancer
//   await cl.stop();              // SIGTERM to every instance, balancer closed
//
// Durable mode (PostgreSQL + Redis) is on when DATABASE_URL and REDIS_URL are
// both set: then a cluster has two instances by default, sharing the database,
// Redis and the JWT secret. Otherwise one in-memory instance, reached directly.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";

// --- Configuration ----------------------------------------------------------
export const BIN = process.env.CHATTERLY_BIN;
export const DURABLE = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
// Durable mode runs two instances behind a balancer: they must share the JWT
// secret (and restarts must keep it), so the run makes one up if none is set.
export const SECRET =
  process.env.DEVISE_JWT_SECRET_KEY || process.env.JWT_SECRET || (DURABLE ? randomBytes(32).toString("hex") : "");
export const FRONTEND_ORIGIN = (process.env.FRONTEND_URL || "http://localhost:3000")
  .split(",")[0]
  .trim()
  .replace(/\/+$/, "");
export const RUN = randomBytes(4).toString("hex"); // unique names per run
export const PASSWORD = "e2e-password-123";

export const WAIT = 5_000; // ordinary events
export const WAIT_BOOT = 30_000; // server start (durable mode runs migrations)
export const WAIT_EXIT = 30_000; // graceful shutdown must finish well within 30 s

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

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

// Polls pred() every `every` ms until it returns a truthy value (resolved
// with it) or `ms` pass (rejected with `label` and describe()'s text).
export async function until(label, pred, ms = WAIT, describe = () => "", every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() >= deadline) {
      const more = describe();
      throw new Error(`timed out after ${ms} ms waiting for ${label}${more ? `\n${more}` : ""}`);
    }
    await sleep(every);
  }
}

// Every spawned server, whatever cluster it belongs to: none is left behind,
// whatever happens to this process.
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

// --- Balancer -----------------------------------------------------------------
// A round-robin TCP balancer, the smallest stand-in for HAProxy: each accepted
// socket is piped to the next backend in turn; when that backend refuses the
// connection (it is restarting) the next one is tried, as with HAProxy's
// `retries` + `option redispatch`. It waits for the request's head (request
// line and headers, up to 4 KiB; every client here speaks first) before it
// picks a backend, and keeps a copy of it, so that the test sees where each
// connection landed: REST requests carry an `X-E2E-Tag` header and WebSocket
// clients an `e2e=` query parameter (the server ignores both).
//
// Controls over the connections of one tag (a client), as a flaky network or
// a proxy would treat them:
//   drop(tag)    destroys both sides of each open connection: no close frame,
//                no FIN to the server first, as when a proxy or NAT dies;
//   hold(tag)    from now on, accepts that client's new connections but
//                forwards nothing (the client waits for the upgrade answer);
//   refuse(tag)  from now on, closes that client's new connections at once;
//   release(tag) ends hold/refuse; held connections then go to the backend
//                the round robin names at that moment (so steer() first),
//                or with release(tag, {to: i}) to backend i (the next one if
//                i refuses), leaving the round robin as it is.
export function startBalancer(ports) {
  const MAX_RECORDS = 1000;
  const b = {
    backends: ports.map((port, index) => ({ index, port, accepted: 0, upgrades: 0, refused: 0 })),
    next: 0, // the number of backend choices made: the next goes to backends[next % n]
    conns: [], // { id, backend, line, tag, upgrade, state, client, up }
    sockets: new Set(),
    rules: new Map(), // tag -> "hold" | "refuse"
    held: [], // { rec, forward }
  };
  const n = b.backends.length;
  let accepted = 0;
  const track = (sock) => {
    b.sockets.add(sock);
    sock.on("close", () => b.sockets.delete(sock));
  };
  // `to`: the backend to try first instead of the round robin's choice.
  const forward = (client, rec, head, to) => {
    const first = to === undefined ? b.next++ % n : to;
    rec.state = "connecting";
    const attempt = (k) => {
      if (client.destroyed) {
        rec.state = "closed";
        return;
      }
      if (k >= n) {
        rec.state = "no backend";
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
        if (client.destroyed) {
          rec.state = "closed";
          return up.destroy();
        }
        rec.backend = backend.index;
        rec.up = up;
        rec.state = "open";
        backend.accepted++;
        if (rec.upgrade) backend.upgrades++;
        up.write(head);
        client.pipe(up);
        up.pipe(client);
        up.once("close", (hadError) => (hadError ? client.destroy() : client.end()));
        client.once("close", (hadError) => {
          if (rec.state === "open") rec.state = "closed";
          return hadError ? up.destroy() : up.end();
        });
      });
    };
    attempt(0);
  };
  b.server = net.createServer((client) => {
    const rec = {
      id: accepted++,
      backend: null,
      line: "",
      tag: null,
      upgrade: false,
      state: "reading",
      client,
      up: null,
    };
    b.conns.push(rec);
    if (b.conns.length > MAX_RECORDS) b.conns.splice(0, b.conns.length - MAX_RECORDS);
    track(client);
    client.on("error", () => {});
    client.once("close", () => {
      if (rec.state === "reading" || rec.state === "held") rec.state = "closed";
    });
    const chunks = [];
    let size = 0;
    const sniff = (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
      const buf = Buffer.concat(chunks);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0 && size < 4096) return;
      client.off("data", sniff);
      client.pause();
      const head = buf.toString("latin1", 0, end < 0 ? buf.length : end);
      rec.line = head.split("\r\n")[0];
      rec.upgrade = /^upgrade:\s*websocket\s*$/im.test(head);
      rec.tag = /^x-e2e-tag:\s*(\S+)/im.exec(head)?.[1] ?? /[?&]e2e=([^&\s]+)/.exec(rec.line)?.[1] ?? null;
      const rule = rec.tag === null ? undefined : b.rules.get(rec.tag);
      if (rule === "refuse") {
        rec.state = "refused";
        client.destroy();
        return;
      }
      if (rule === "hold") {
        rec.state = "held";
        b.held.push({ rec, forward: (to) => forward(client, rec, buf, to) });
        return;
      }
      forward(client, rec, buf);
    };
    client.on("data", sniff);
  });
  b.server.maxConnections = 400;
  // The backend the next forwarded connection goes to, if it is up.
  b.nextBackend = () => b.next % n;
  // Where the connections tagged `tag` landed, oldest first (null: not forwarded).
  b.landed = (tag) => b.conns.filter((c) => c.tag === tag && c.backend !== null).map((c) => c.backend);
  b.connections = (tag) => b.conns.filter((c) => c.tag === tag);
  b.open = (tag) => b.conns.filter((c) => c.tag === tag && c.state === "open");
  b.heldCount = (tag) => b.held.filter((h) => h.rec.tag === tag && !h.rec.client.destroyed).length;
  b.drop = (tag) => {
    let dropped = 0;
    for (const rec of b.conns) {
      if (rec.tag !== tag || rec.state !== "open") continue;
      rec.state = "dropped";
      rec.client.destroy();
      rec.up?.destroy();
      dropped++;
    }
    return dropped;
  };
  b.hold = (tag) => b.rules.set(tag, "hold");
  b.refuse = (tag) => b.rules.set(tag, "refuse");
  b.release = (tag, { to } = {}) => {
    b.rules.delete(tag);
    const mine = b.held.filter((h) => h.rec.tag === tag);
    b.held = b.held.filter((h) => h.rec.tag !== tag);
    let released = 0;
    for (const h of mine) {
      if (h.rec.client.destroyed) continue;
      h.forward(to);
      released++;
    }
    return released;
  };
  b.summary = () =>
    `--- balancer: ${b.backends
      .map((x) => `s${x.index} (port ${x.port}): ${x.accepted} sockets, ${x.upgrades} WebSocket, ${x.refused} refused`)
      .join("; ")}\nlast connections:\n  ${b.conns
      .slice(-20)
      .map(
        (c) =>
          `#${c.id} -> s${c.backend ?? "?"} ${c.state} ${c.tag ?? "-"} ${c.line.replace(/token=[^&\s]+/, "token=…")}`,
      )
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

// --- Cluster ------------------------------------------------------------------
// createCluster({ instances, env }) describes the servers of one test file:
// `instances` defaults to two in durable mode and one otherwise (the in-memory
// mode is one process by nature); `env` is added to the servers' environment
// (the rest of this process's environment is passed on, plus PORT).
//
// Every function of the returned object is a closure: destructure freely.
export function createCluster({ instances: count = DURABLE ? 2 : 1, env: extraEnv = {} } = {}) {
  const c = {
    instances: [], // { index, port, proc }, proc = { child, exited: Promise<{code, signal}>, done }
    lb: null, // the balancer in front of the instances (two or more only)
    address: null, // host:port every client uses: the balancer's, or the only instance's
    outputTail: [],
    count,
    requests: [], // every REST call: { tag, method, path, token, status, backend }
  };

  const remember = (stream, chunk) => {
    for (const line of String(chunk).split("\n")) {
      if (line.trim() === "") continue;
      c.outputTail.push(`[${stream}] ${line}`);
    }
    if (c.outputTail.length > 120) c.outputTail.splice(0, c.outputTail.length - 120);
  };
  c.remember = remember;

  c.serverTail = () => {
    const what = count > 1 ? "chatterly output, all instances (s0, s1…)" : "chatterly output";
    let text = `--- ${what} (last ${c.outputTail.length} lines) ---\n${c.outputTail.join("\n")}\n--- end of chatterly output ---`;
    if (c.lb) text += `\n${c.lb.summary()}`;
    return text;
  };

  const serverEnv = (inst) => {
    const env = { ...process.env, ...extraEnv, PORT: String(inst.port) };
    if (!DURABLE) {
      // In-memory mode: never half-configure the server.
      delete env.DATABASE_URL;
      delete env.DATABASE_REPLICA_URL;
      delete env.REDIS_URL;
    }
    if (SECRET && !env.DEVISE_JWT_SECRET_KEY && !env.JWT_SECRET) env.DEVISE_JWT_SECRET_KEY = SECRET;
    return env;
  };

  // Starts (or restarts, on the same port) one instance and waits until its
  // GET /up answers 200.
  c.startServer = async (inst) => {
    const label = count > 1 ? `s${inst.index} ` : "";
    const child = spawn(BIN, [], { env: serverEnv(inst), stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    const s = { child, done: false };
    s.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        s.done = true;
        children.delete(child);
        remember(`${label}exit`, `code=${code} signal=${signal}`);
        resolve({ code, signal });
      });
      child.on("error", (err) => {
        s.done = true;
        children.delete(child);
        remember(`${label}spawn`, String(err));
        resolve({ code: null, signal: null, error: err });
      });
    });
    child.stdout.on("data", (ch) => remember(`${label}stdout`, ch));
    child.stderr.on("data", (ch) => remember(`${label}stderr`, ch));
    inst.proc = s;

    const deadline = Date.now() + WAIT_BOOT;
    let last = "no answer yet";
    while (Date.now() < deadline) {
      if (s.done) throw new Error(`chatterly ${label}exited before answering GET /up\n${c.serverTail()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${inst.port}/up`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return s;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = String(err.cause?.code || err.message);
      }
      await sleep(100);
    }
    throw new Error(`GET /up on ${label}did not answer 200 within ${WAIT_BOOT} ms (last: ${last})\n${c.serverTail()}`);
  };

  // Signals one instance and waits for it to exit (SIGKILL and an error after
  // WAIT_EXIT). Resolves with { code, signal }.
  c.stopServer = async (inst, signal = "SIGTERM") => {
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
  };

  // Starts every instance and, with two or more, the balancer in front.
  c.start = async () => {
    assert.ok(
      BIN,
      "CHATTERLY_BIN is not set: build the server (go build -o /tmp/chatterly ./cmd/chatterly) and run with CHATTERLY_BIN=/tmp/chatterly",
    );
    const ports = new Set();
    while (ports.size < count) ports.add(await freePort());
    for (const port of ports) c.instances.push({ index: c.instances.length, port, proc: null });
    await Promise.all(c.instances.map((inst) => c.startServer(inst)));
    if (count > 1) {
      c.lb = await startBalancer(c.instances.map((inst) => inst.port));
      c.address = `127.0.0.1:${c.lb.port}`;
    } else {
      c.address = `127.0.0.1:${c.instances[0].port}`;
    }
  };

  // SIGTERM to every instance still running, then the balancer closed.
  // Resolves with the errors (an instance that had to be killed).
  c.stop = async () => {
    const results = await Promise.allSettled(c.instances.map((inst) => c.stopServer(inst, "SIGTERM")));
    if (c.lb) await c.lb.close();
    return results.filter((r) => r.status === "rejected").map((r) => r.reason);
  };

  // --- REST ---------------------------------------------------------------------
  // One TCP connection per request (no keep-alive), so that through the
  // balancer each request is a connection of its own, sent to the next backend.
  c.api = (method, path, { token, body, timeout = WAIT } = {}) => {
    const tag = `rest-${c.requests.length + 1}`;
    const entry = { tag, method, path, token, status: null, backend: null };
    c.requests.push(entry);
    const headers = { Accept: "application/json", "X-E2E-Tag": tag };
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = String(payload.length);
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    const [host, port] = c.address.split(":");
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host, port: Number(port), method, path, headers, agent: false, signal: AbortSignal.timeout(timeout) },
        (res) => {
          const chunks = [];
          res.on("data", (ch) => chunks.push(ch));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            const backend = c.lb ? c.lb.landed(tag)[0] : 0;
            entry.status = res.statusCode;
            entry.backend = backend;
            resolve({ status: res.statusCode, headers: res.headers, json, text, backend });
          });
        },
      );
      req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`)));
      req.end(payload);
    });
  };

  // Makes the next connection through the balancer go to instance `want`, by
  // sending GET /up requests until the round robin points at it. A no-op with
  // one instance.
  c.steer = async (want) => {
    if (!c.lb) return;
    for (let i = 0; i < 2 * count && c.lb.nextBackend() !== want; i++) await c.api("GET", "/up");
    assert.equal(c.lb.nextBackend(), want, "steering the round robin");
  };

  c.register = async (tag, displayName) => {
    const username = `e2e_${RUN}_${tag}`;
    const res = await c.api("POST", "/auth/register", {
      body: { user: { email: `${username}@example.com`, password: PASSWORD, username, display_name: displayName } },
    });
    assert.equal(res.status, 201, `register ${username}: ${res.status} ${res.text}`);
    const auth = res.headers.authorization || "";
    const m = /^Bearer (\S+)$/.exec(auth);
    assert.ok(m, `register ${username}: no "Authorization: Bearer <jwt>" header (got ${JSON.stringify(auth)})`);
    return { ...res.json.user, token: m[1] };
  };

  c.createConversation = async (owner, name, memberIds) => {
    const res = await c.api("POST", "/api/v1/conversations", {
      token: owner.token,
      body: { conversation_type: "group", name, member_ids: memberIds },
    });
    assert.equal(res.status, 201, `create conversation: ${res.status} ${res.text}`);
    return { ...res.json.data, backend: res.backend };
  };

  c.postMessage = async (author, conversationId, content) => {
    const res = await c.api("POST", `/api/v1/conversations/${conversationId}/messages`, {
      token: author.token,
      body: { content },
    });
    assert.equal(res.status, 201, `post message: ${res.status} ${res.text}`);
    return { ...res.json.data, backend: res.backend };
  };

  c.editMessage = async (author, conversationId, messageId, content) => {
    const res = await c.api("PATCH", `/api/v1/conversations/${conversationId}/messages/${messageId}`, {
      token: author.token,
      body: { content },
    });
    assert.equal(res.status, 200, `edit message ${messageId}: ${res.status} ${res.text}`);
    return { ...res.json, backend: res.backend };
  };

  c.deleteMessage = async (user, conversationId, messageId) => {
    const res = await c.api("DELETE", `/api/v1/conversations/${conversationId}/messages/${messageId}`, {
      token: user.token,
    });
    assert.equal(res.status, 200, `delete message ${messageId}: ${res.status} ${res.text}`);
    return { backend: res.backend };
  };

  c.react = async (user, messageId, emoji) => {
    const res = await c.api("POST", "/api/v1/reactions", {
      token: user.token,
      body: { reaction: { message_id: messageId, emoji } },
    });
    assert.equal(res.status, 201, `react to ${messageId}: ${res.status} ${res.text}`);
    return { ...res.json, backend: res.backend };
  };

  // The value of an unlabelled gauge or counter on one instance's /metrics.
  c.metric = async (inst, name) => {
    const res = await fetch(`http://127.0.0.1:${inst.port}/metrics`, { signal: AbortSignal.timeout(WAIT) });
    const text = await res.text();
    const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    assert.ok(m, `${name} not found on s${inst.index}'s /metrics`);
    return Number(m[1]);
  };

  // Asserts that the latest socket tagged `name` went to instance `want`.
  c.assertOn = (name, want) => {
    if (!c.lb) return;
    const landed = c.lb.landed(name);
    assert.ok(landed.length > 0, `the balancer saw no connection tagged ${name}`);
    assert.equal(landed[landed.length - 1], want, `${name}'s latest connection: ${JSON.stringify(landed)} (s0, s1…)`);
  };

  c.assertLanded = (res, want, what) => {
    if (!c.lb) return;
    assert.equal(res.backend, want, `${what} went to s${res.backend}, wanted s${want}`);
  };

  return c;
}
