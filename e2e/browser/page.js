// A minimal browser "game" that uses taisen from another origin, with plain
// browser APIs only (fetch, WebSocket, JSON frames). run.mjs opens it in
// headless Chromium and polls window.__results.
//
// Two modes, chosen by the query string:
//   ?api=<client API URL>&device=<device id>
//     HTTP Authenticate (CORS), then /ws?format=json&token=… (option A),
//     Welcome with cid 0, taisen.echo.
//   ?api=<client API URL>&token=<session token>
//     /ws with subprotocol taisen.json, Hello{token} (option B), Welcome with
//     the Hello's cid, taisen.echo.
// Both then keep reading: pushes, Disconnect and the close event are recorded.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const api = (params.get("api") || "").replace(/\/+$/, "");
  const device = params.get("device");
  const givenToken = params.get("token");

  const R = (window.__results = {
    mode: givenToken ? "hello" : "query-token",
    phase: "starting", // starting → ready, or failed
    error: null,
    steps: [],
    auth: null,
    badAuth: null,
    welcome: null,
    protocol: null,
    echo: null,
    pushes: [],
    disconnect: null,
    close: null,
    frames: [], // every server frame, parsed
  });

  const logEl = document.getElementById("log");
  function step(msg) {
    R.steps.push(msg);
    logEl.textContent += msg + "\n";
  }

  // bytes <-> standard base64 with padding (protojson's bytes encoding).
  function toBase64(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }
  function fromBase64(b64) {
    const s = atob(b64 || "");
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  // Connect protocol, unary, JSON.
  async function connectCall(method, body) {
    const res = await fetch(`${api}/taisen.api.v1.AuthService/${method}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // left null; the caller reports the text
    }
    return { status: res.status, errorCode: res.headers.get("Taisen-Error-Code"), json, text };
  }

  // Frame plumbing: every frame is recorded, then offered to the waiters.
  let waiters = [];
  function onFrame(f) {
    R.frames.push(f);
    if (f.push) R.pushes.push(f.push);
    if (f.disconnect) R.disconnect = f.disconnect;
    waiters = waiters.filter((w) => {
      if (!w.match(f)) return true;
      clearTimeout(w.timer);
      w.resolve(f);
      return false;
    });
  }
  function waitFrame(what, match, ms = 10000) {
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      w.timer = setTimeout(() => {
        waiters = waiters.filter((x) => x !== w);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      waiters.push(w);
    });
  }

  function openSocket(url, protocols) {
    return new Promise((resolve, reject) => {
      const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve(ws);
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") {
          R.frames.push({ nonText: true });
          return;
        }
        try {
          onFrame(JSON.parse(ev.data));
        } catch (e) {
          R.frames.push({ unparsable: String(ev.data).slice(0, 200) });
        }
      };
      ws.onerror = () => {
        if (!opened) reject(new Error("WebSocket handshake failed"));
      };
      ws.onclose = (ev) => {
        R.close = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
        step(`close ${ev.code} ${ev.reason}`);
        if (!opened) reject(new Error(`WebSocket closed before open (${ev.code})`));
      };
    });
  }

  async function echo(ws, cid) {
    const sent = new TextEncoder().encode(`héllo taisen ✓ ${R.mode} \u0000\u00ff`);
    const reply = waitFrame(`echo reply cid ${cid}`, (f) => f.cid === cid);
    ws.send(JSON.stringify({ cid, rpc: { name: "taisen.echo", payload: toBase64(sent) } }));
    const f = await reply;
    if (!f.rpc) throw new Error(`echo: unexpected reply ${JSON.stringify(f)}`);
    const got = fromBase64(f.rpc.payload);
    const same = got.length === sent.length && got.every((b, i) => b === sent[i]);
    R.echo = { ok: same, sentBase64: toBase64(sent), gotBase64: f.rpc.payload };
    if (!same) throw new Error(`echo: sent ${toBase64(sent)}, got ${f.rpc.payload}`);
    step("echo ok");
  }

  async function runQueryToken() {
    // An unknown device without create: the error code header must be
    // readable cross-origin (Access-Control-Expose-Headers).
    const bad = await connectCall("Authenticate", { device: { id: "browser-device-unknown" } });
    R.badAuth = { status: bad.status, errorCode: bad.errorCode, body: bad.json };
    step(`bad authenticate: ${bad.status} ${bad.errorCode}`);

    const res = await connectCall("Authenticate", { device: { id: device }, create: true });
    if (res.status !== 200 || !res.json || !res.json.session || !res.json.session.token) {
      throw new Error(`authenticate: HTTP ${res.status} ${res.errorCode || ""} ${res.text.slice(0, 300)}`);
    }
    const s = res.json.session;
    R.auth = { status: res.status, userId: s.userId, username: s.username, created: !!res.json.created };
    step(`authenticated ${s.userId} (created ${!!res.json.created})`);

    const wsURL = api.replace(/^http/, "ws") + "/ws?format=json&token=" + encodeURIComponent(s.token);
    const welcome = waitFrame("Welcome (cid 0)", (f) => !!f.welcome || !!f.error);
    const ws = await openSocket(wsURL);
    R.protocol = ws.protocol;
    const f = await welcome;
    if (!f.welcome) throw new Error(`expected Welcome, got ${JSON.stringify(f)}`);
    R.welcome = { cid: f.cid || 0, ...f.welcome };
    step(`welcome session ${f.welcome.sessionId}`);

    await echo(ws, 1);
  }

  async function runHello() {
    const wsURL = api.replace(/^http/, "ws") + "/ws";
    const ws = await openSocket(wsURL, "taisen.json");
    R.protocol = ws.protocol;
    const welcome = waitFrame("Welcome (cid 1)", (f) => f.cid === 1);
    ws.send(JSON.stringify({ cid: 1, hello: { token: givenToken, clientVersion: "e2e-browser" } }));
    const f = await welcome;
    if (!f.welcome) throw new Error(`expected Welcome, got ${JSON.stringify(f)}`);
    R.welcome = { cid: f.cid || 0, ...f.welcome };
    step(`welcome session ${f.welcome.sessionId}`);

    await echo(ws, 2);
  }

  (async () => {
    if (!api) throw new Error("no ?api= in the page URL");
    if (givenToken) await runHello();
    else if (device) await runQueryToken();
    else throw new Error("need ?device= or ?token=");
    R.phase = "ready";
    step("ready");
  })().catch((e) => {
    R.error = String((e && e.stack) || e);
    R.phase = "failed";
    step("FAILED: " + e);
  });
})();
