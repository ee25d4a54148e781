#!/usr/bin/env node
// Browser end-to-end test: a game page served from one origin uses a taisen
// node on another origin, in headless Chromium.
//
//   TAISEN_BIN=bin/taisen node e2e/browser/run.mjs
//
// It starts `taisen serve` (embedded NATS, SQLite in a temp dir) with
// --cors-origins set to the page's origin, serves page.html/page.js, and
// checks, in the browser: HTTP Authenticate across origins (CORS preflight,
// exposed Taisen-Error-Code), /ws?format=json&token=… with Welcome at cid 0,
// taisen.echo with base64 bytes, a push sent through the admin SendPush API,
// and, after a second login of the same account on a second page
// (subprotocol taisen.json + Hello), Disconnect REPLACED and close 4002 on the
// first page. From Node it checks that a preflight from a foreign origin gets
// no Access-Control-Allow-Origin.
//
// Environment: TAISEN_BIN (default ../../bin/taisen relative to this file),
// CHROMIUM_BIN (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 90000).
// Exit status 0 on success, 1 on failure (with the server's last log lines).

import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const taisenBin = path.resolve(process.env.TAISEN_BIN || path.join(here, "../../bin/taisen"));
const chromiumBin = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const hardTimeoutMs = Number(process.env.E2E_TIMEOUT_MS || 90000);
const deviceId = "browser-device-0001";
const t0 = Date.now();

// ---- bookkeeping ----------------------------------------------------------

const serverLog = []; // all server output lines (stdout + stderr)
const browserLog = []; // console messages and page errors
const checks = []; // passed checks, for the summary
let server = null; // child process
let context = null; // playwright persistent context
let staticServer = null;
const tmpDirs = [];

function elapsed() {
  return `${((Date.now() - t0) / 1000).toFixed(1)}s`;
}
function pass(what) {
  checks.push(what);
  console.log(`  ok   ${what}  (${elapsed()})`);
}
class Failure extends Error {}
function fail(msg) {
  throw new Failure(msg);
}
function expect(cond, what, detail) {
  if (!cond) fail(`${what}${detail === undefined ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}`);
  pass(what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function poll(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

// ---- ports ----------------------------------------------------------------

// Ports Chromium refuses to connect to (net/base/port_util.cc); the kernel's
// ephemeral range normally avoids them, but be sure.
const chromiumUnsafePorts = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110,
  111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532,
  540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061,
  6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

// freePorts returns n distinct free loopback ports (held open together, then
// released: another process could still take one before taisen binds it, so
// the server start is retried on "address already in use").
async function freePorts(n) {
  const held = [];
  try {
    while (held.length < n) {
      const s = net.createServer();
      s.listen(0, "127.0.0.1");
      await once(s, "listening");
      if (chromiumUnsafePorts.has(s.address().port)) {
        held.push({ s, skip: true });
        continue;
      }
      held.push({ s });
    }
    return held.filter((h) => !h.skip).map((h) => h.s.address().port);
  } finally {
    await Promise.all(held.map((h) => new Promise((r) => h.s.close(r))));
  }
}

// ---- static page server (the game's origin) ------------------------------

async function startStaticServer() {
  const files = {
    "/page.html": ["text/html; charset=utf-8", await readFile(path.join(here, "page.html"))],
    "/page.js": ["text/javascript; charset=utf-8", await readFile(path.join(here, "page.js"))],
  };
  const s = http.createServer((req, res) => {
    const f = files[new URL(req.url, "http://x").pathname];
    if (req.method !== "GET" || !f) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "Content-Type": f[0], "Cache-Control": "no-store" }).end(f[1]);
  });
  s.listen(0, "127.0.0.1");
  await once(s, "listening");
  if (chromiumUnsafePorts.has(s.address().port)) {
    s.close();
    return startStaticServer();
  }
  return s;
}

// ---- taisen ----------------------------------------------------------------

function collectLines(stream) {
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop();
    serverLog.push(...lines);
    if (serverLog.length > 5000) serverLog.splice(0, serverLog.length - 5000);
  });
  stream.on("end", () => {
    if (partial) serverLog.push(partial);
  });
}

async function startTaisen(pageOrigin) {
  for (let attempt = 1; ; attempt++) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "taisen-e2e-data-"));
    tmpDirs.push(dataDir);
    const [clientPort, adminPort] = await freePorts(2);
    const args = [
      "serve",
      "--data", dataDir,
      "--client-addr", `127.0.0.1:${clientPort}`,
      "--admin-addr", `127.0.0.1:${adminPort}`,
      "--cors-origins", pageOrigin,
    ];
    serverLog.push(`$ ${taisenBin} ${args.join(" ")}`);
    const child = spawn(taisenBin, args, { stdio: ["ignore", "pipe", "pipe"] });
    server = child;
    collectLines(child.stdout);
    collectLines(child.stderr);
    let exited = null;
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      serverLog.push(`[taisen exited: code ${code} signal ${signal}]`);
    });
    const spawnError = new Promise((resolve) => child.once("error", resolve));

    const adminURL = `http://127.0.0.1:${adminPort}`;
    const deadline = Date.now() + 30000;
    let lastProblem = "";
    for (;;) {
      const err = await Promise.race([spawnError, sleep(0).then(() => null)]);
      if (err) fail(`cannot start ${taisenBin}: ${err.message}`);
      if (exited) break;
      try {
        const res = await fetch(`${adminURL}/readyz`, { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        if (res.status === 200) {
          return { clientURL: `http://127.0.0.1:${clientPort}`, adminURL, dataDir };
        }
        lastProblem = `${res.status} ${body.trim()}`;
      } catch (e) {
        lastProblem = e.cause?.code || e.message;
      }
      if (Date.now() > deadline) fail(`taisen not ready within 30 s (last /readyz: ${lastProblem})`);
      await sleep(100);
    }
    // The process exited before it was ready.
    const inUse = serverLog.some((l) => /address already in use/i.test(l));
    if (inUse && attempt < 3) {
      serverLog.push(`[port taken; retrying with new ports]`);
      continue;
    }
    fail(`taisen exited before it was ready (code ${exited.code}, signal ${exited.signal})`);
  }
}

async function stopTaisen() {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const t = Date.now();
  const res = await Promise.race([exited.then(() => "exited"), sleep(10000).then(() => "timeout")]);
  if (res === "timeout") {
    console.error(`taisen did not exit 10 s after SIGTERM; killing it`);
    child.kill("SIGKILL");
    await Promise.race([exited, sleep(2000)]);
  } else if (Date.now() - t > 3000) {
    console.error(`note: taisen took ${Date.now() - t} ms to exit after SIGTERM`);
  }
}

// ---- HTTP helpers (from Node) ----------------------------------------------

async function connectJSON(url, body, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // keep null
  }
  return { status: res.status, headers: res.headers, json, text };
}

const b64 = (s) => Buffer.from(s, "utf8").toString("base64");

// ---- browser helpers -------------------------------------------------------

async function results(page) {
  return page.evaluate(() => window.__results ?? null);
}

async function waitReady(page, name) {
  const r = await poll(`${name} to finish its setup`, async () => {
    const r = await results(page);
    return r && r.phase !== "starting" ? r : null;
  }, 20000);
  if (r.phase !== "ready") fail(`${name} failed: ${r.error}\n  steps: ${r.steps.join(" | ")}`);
  return r;
}

// ---- the test --------------------------------------------------------------

async function main() {
  console.log(`browser e2e: taisen ${taisenBin}, chromium ${chromiumBin}`);

  staticServer = await startStaticServer();
  const pageOrigin = `http://127.0.0.1:${staticServer.address().port}`;
  const { clientURL, adminURL, dataDir } = await startTaisen(pageOrigin);
  const serverKey = (await readFile(path.join(dataDir, "server.key"), "utf8")).trim();
  pass(`taisen ready (client ${clientURL}, admin ${adminURL}, page origin ${pageOrigin})`);

  // CORS from Node: the page's origin is allowed, a foreign one is not.
  const preflight = async (origin) => {
    const res = await fetch(`${clientURL}/taisen.api.v1.AuthService/Authenticate`, {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,connect-protocol-version",
      },
      signal: AbortSignal.timeout(10000),
    });
    await res.arrayBuffer();
    return res;
  };
  const evil = await preflight("http://evil.example");
  expect(
    evil.headers.get("access-control-allow-origin") === null,
    "preflight from http://evil.example has no Access-Control-Allow-Origin",
    `status ${evil.status}, Access-Control-Allow-Origin ${evil.headers.get("access-control-allow-origin")}`,
  );
  const good = await preflight(pageOrigin);
  expect(
    good.status >= 200 && good.status < 300 &&
      good.headers.get("access-control-allow-origin") === pageOrigin &&
      /connect-protocol-version/i.test(good.headers.get("access-control-allow-headers") || ""),
    "preflight from the page's origin is allowed",
    `status ${good.status}, allow-origin ${good.headers.get("access-control-allow-origin")}, allow-headers ${good.headers.get("access-control-allow-headers")}`,
  );

  // Browser.
  const profile = await mkdtemp(path.join(os.tmpdir(), "taisen-e2e-chromium-"));
  tmpDirs.push(profile);
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumBin,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    timeout: 30000,
  });
  const newPage = async (name) => {
    const page = await context.newPage();
    page.on("console", (m) => browserLog.push(`[${name} console.${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => browserLog.push(`[${name} pageerror] ${e.message}`));
    page.on("requestfailed", (r) => browserLog.push(`[${name} requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    return page;
  };
  pass(`chromium ${context.browser()?.version() ?? "(version unknown)"} started`);

  // Page 1: HTTP auth across origins, /ws?format=json&token=…, echo.
  const page1 = await newPage("page1");
  const q1 = new URLSearchParams({ api: clientURL, device: deviceId });
  await page1.goto(`${pageOrigin}/page.html?${q1}`, { timeout: 15000 });
  const r1 = await waitReady(page1, "page 1");
  expect(
    r1.badAuth && r1.badAuth.status === 401 && r1.badAuth.errorCode === "invalid_credentials",
    "page: cross-origin error reply readable, Taisen-Error-Code exposed (invalid_credentials)",
    r1.badAuth,
  );
  expect(r1.auth && r1.auth.status === 200 && r1.auth.userId && r1.auth.created === true,
    "page: Authenticate over HTTP from another origin created the account", r1.auth);
  expect(r1.protocol === "", "page: ?format=json socket has no subprotocol", r1.protocol);
  expect(
    r1.welcome && r1.welcome.cid === 0 && r1.welcome.userId === r1.auth.userId && !!r1.welcome.sessionId &&
      !r1.welcome.resumed && r1.welcome.maxInFlight === 1 && r1.welcome.maxFrameBytes === 65536,
    "page: Welcome at cid 0 with the user's id (?format=json&token=)",
    r1.welcome,
  );
  expect(r1.echo && r1.echo.ok, "page: taisen.echo returned the same bytes (base64)", r1.echo);
  const userId = r1.auth.userId;

  // Push through the server-to-server API.
  const adminPush = (kind, text) => connectJSON(
    `${adminURL}/taisen.admin.v1.SessionService/SendPush`,
    { userId, kind, payload: b64(text) },
    { Authorization: `Bearer ${serverKey}` },
  );
  const noKey = await connectJSON(`${adminURL}/taisen.admin.v1.SessionService/SendPush`,
    { userId, kind: "hello", payload: b64("x") });
  expect(noKey.status === 401, "admin: SendPush without the server key is refused (401)", `${noKey.status} ${noKey.text}`);
  const push1 = await adminPush("hello", "hello from the backend");
  expect(push1.status === 200 && push1.json?.delivered === true && push1.json?.seq === "1",
    "admin: SendPush delivered, seq \"1\"", `${push1.status} ${push1.text}`);
  const got1 = await poll("the push on page 1", async () => (await results(page1)).pushes[0], 10000);
  expect(
    got1.seq === "1" && got1.kind === "hello" && got1.payload === b64("hello from the backend") &&
      /^\d+$/.test(got1.sentAtMs || ""),
    "page: received {push:{seq:\"1\",kind:\"hello\",…}}",
    got1,
  );

  // Second login of the same account: HTTP from Node, socket from page 2.
  const auth2 = await connectJSON(`${clientURL}/taisen.api.v1.AuthService/Authenticate`,
    { device: { id: deviceId }, create: true });
  expect(auth2.status === 200 && auth2.json?.session?.userId === userId && !auth2.json?.created,
    "node: second Authenticate of the same device (same user, not created)", `${auth2.status} ${auth2.text}`);
  const afterHTTP = await results(page1);
  expect(!afterHTTP.disconnect && !afterHTTP.close, "page 1 still connected after an HTTP-only login",
    { disconnect: afterHTTP.disconnect, close: afterHTTP.close });

  const page2 = await newPage("page2");
  const q2 = new URLSearchParams({ api: clientURL, token: auth2.json.session.token });
  await page2.goto(`${pageOrigin}/page.html?${q2}`, { timeout: 15000 });
  const r2 = await waitReady(page2, "page 2");
  expect(r2.protocol === "taisen.json", "page 2: subprotocol taisen.json echoed by the server", r2.protocol);
  expect(
    r2.welcome && r2.welcome.cid === 1 && r2.welcome.userId === userId && r2.welcome.sessionId &&
      r2.welcome.sessionId !== r1.welcome.sessionId && !r2.welcome.resumed,
    "page 2: Welcome at the Hello's cid, same user, new session",
    r2.welcome,
  );
  expect(r2.echo && r2.echo.ok, "page 2: taisen.echo over the taisen.json subprotocol", r2.echo);

  const r1b = await poll("page 1 to be closed", async () => {
    const r = await results(page1);
    return r.close ? r : null;
  }, 10000);
  expect(
    r1b.disconnect && r1b.disconnect.reason === "CLOSE_REASON_REPLACED" && !r1b.disconnect.reconnect,
    "page 1: Disconnect{reason: CLOSE_REASON_REPLACED, reconnect: false}",
    r1b.disconnect,
  );
  expect(r1b.close.code === 4002, "page 1: WebSocket close code 4002", r1b.close);

  // The new session gets pushes, with a sequence that restarts at 1.
  const push2 = await adminPush("hello", "to the new session");
  expect(push2.status === 200 && push2.json?.delivered === true && push2.json?.seq === "1",
    "admin: push to the new session delivered, seq \"1\"", `${push2.status} ${push2.text}`);
  const got2 = await poll("the push on page 2", async () => (await results(page2)).pushes[0], 10000);
  expect(got2.seq === "1" && got2.payload === b64("to the new session"), "page 2: received the push, seq \"1\"", got2);
  const r1c = await results(page1);
  expect(r1c.pushes.length === 1, "page 1: no push after it was replaced", r1c.pushes);
}

async function cleanup() {
  const jobs = [];
  if (context) {
    const c = context;
    context = null;
    jobs.push(Promise.race([c.close().catch(() => {}), sleep(10000)]));
  }
  jobs.push(stopTaisen());
  if (staticServer) {
    const s = staticServer;
    staticServer = null;
    s.closeAllConnections?.();
    jobs.push(new Promise((r) => s.close(r)));
  }
  await Promise.all(jobs);
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true }).catch(() => {})));
}

function report(err) {
  console.error(`\nFAIL browser e2e (${elapsed()}): ${err instanceof Failure ? err.message : err?.stack || err}`);
  if (checks.length) console.error(`passed before the failure: ${checks.length} checks`);
  if (browserLog.length) {
    console.error(`--- browser log (last 30) ---`);
    for (const l of browserLog.slice(-30)) console.error(l);
  }
  console.error(`--- taisen log (last 50 lines) ---`);
  for (const l of serverLog.slice(-50)) console.error(l);
  console.error(`---`);
}

let finished = false;
const hardTimer = setTimeout(async () => {
  if (finished) return;
  finished = true;
  report(new Failure(`hard timeout: the run took more than ${hardTimeoutMs / 1000} s`));
  await Promise.race([cleanup(), sleep(15000)]);
  if (server) server.kill("SIGKILL");
  process.exit(1);
}, hardTimeoutMs);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    if (finished) return;
    finished = true;
    report(new Failure(`interrupted by ${sig}`));
    await Promise.race([cleanup(), sleep(15000)]);
    process.exit(1);
  });
}
// Last resort: never leave taisen running if Node dies.
process.on("exit", () => {
  if (server && server.exitCode === null) server.kill("SIGKILL");
});

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (!finished) report(e);
}
if (finished) {
  // The hard timeout or a signal handler is cleaning up and will exit.
  await new Promise(() => {});
}
finished = true;
clearTimeout(hardTimer);
await cleanup();
if (code === 0) console.log(`PASS browser e2e: ${checks.length} checks in ${elapsed()}`);
process.exit(code);
