// quizroom — what the player page and the host page share: HTTP calls, the reconnecting socket, the server
// clock, and a few DOM helpers. Plain ES module, no dependencies, nothing fetched from elsewhere.

/** Close codes after which reconnecting with the same token cannot help (SPEC §3). */
export const FINAL_CLOSE_CODES = new Set([1008, 1009, 4401, 4403, 4404, 4409, 4410, 4429]);

/**
 * Sharding extension: the socket reached a worker that does not hold the player's shard (or, for the host, does
 * not coordinate the room). Not final: like 1001 and a dead network, it reconnects, and every reconnect first asks
 * where to go (resume for a player, host_ws_url for the host).
 */
export const MOVED_CLOSE_CODE = 4421;

/**
 * Call the HTTP API. Resolves to {ok, status, data, response}; never throws for HTTP errors, only when the
 * network itself fails (then ok is false and status is 0).
 */
export async function api(method, path, { body, token, accept } = {}) {
  const headers = { Accept: accept || "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    return { ok: false, status: 0, data: { error: { code: "network", message: String(err) } }, response: null };
  }
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  }
  return { ok: response.ok, status: response.status, data, response };
}

/** The error body's message, or a fallback naming the status. */
export function errorMessage(result, fallback) {
  const err = result.data && result.data.error;
  if (result.status === 0) return "Can't reach the server. Check your connection and try again.";
  if (err && err.message) return `${fallback ? fallback + ": " : ""}${err.message}`;
  return fallback || `The server answered ${result.status}.`;
}

/**
 * Read the answer of a "where do I connect now" call: {url} to connect there, {url: null} to keep the old URL (the
 * network failed, or a server without the sharding extension answered without our error body), {retry: true} to
 * back off and ask again (503 during a failover), or {end: closeCode} when the server refused what the socket
 * would refuse too (unknown token, kicked, no room).
 */
function whereFrom(result, field) {
  const code = result.data && result.data.error && result.data.error.code;
  if (result.ok) return { url: (result.data && result.data[field]) || null };
  if (result.status === 401 && code === "unauthorized") return { end: 4401 };
  if (result.status === 403 && code === "kicked") return { end: 4403 };
  if (result.status === 404 && code === "not_found") return { end: 4404 };
  if (result.status >= 500 || result.status === 429) return { retry: true };
  return { url: null };
}

/** Where the player's socket must connect now: POST /api/rooms/{pin}/resume with the player's token. */
export async function resumePlayer(pin, token) {
  return whereFrom(await api("POST", `/api/rooms/${encodeURIComponent(pin)}/resume`, { token }), "ws_url");
}

/** Where the host's socket must connect now: host_ws_url from GET /api/rooms/{pin} with the host token. */
export async function locateHost(pin, token) {
  return whereFrom(await api("GET", `/api/rooms/${encodeURIComponent(pin)}`, { token }), "host_ws_url");
}

/** Turn a socket URL from the server (absolute ws(s)://, http(s)://, or a path) into an absolute ws(s) URL. */
export function socketUrl(url) {
  const resolved = new URL(url, window.location.href);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved.toString();
}

/**
 * The server's wall clock as seen from here. Each pong gives offset = now_ms − (t_send + t_recv) / 2; the sample
 * with the smallest round trip among the recent ones wins, since its midpoint guess is the tightest.
 */
export class ServerClock {
  constructor() {
    this.offset = 0;
    this.samples = [];
    this.seeded = false;
  }
  /** A rough first guess from any message with now_ms, until a ping round trip gives a better one. */
  seed(nowMs) {
    if (!this.samples.length && typeof nowMs === "number") {
      this.offset = nowMs - Date.now();
      this.seeded = true;
    }
  }
  observe(tSend, tRecv, nowMs) {
    const rtt = tRecv - tSend;
    if (rtt < 0 || typeof nowMs !== "number") return;
    this.samples.push({ rtt, offset: nowMs - (tSend + tRecv) / 2 });
    if (this.samples.length > 8) this.samples.shift();
    this.offset = this.samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
  }
  now() {
    return Date.now() + this.offset;
  }
}

/**
 * A socket that says hello with `token` and comes back by itself: on any close that is not final (1001, a dead
 * network, 4421 moved …) it reconnects with exponential backoff and jitter; an application ping doubles as clock
 * sync and as a liveness check (no answer within `deadAfterMs` → the socket is presumed dead and replaced).
 *
 * `locate()`, when given, is asked before every reconnect where to connect (see resumePlayer and locateHost); its
 * {url} replaces the socket URL, {url: null} keeps it, {retry} backs off and asks again, {end} ends the session.
 *
 * Callbacks: onMessage(msg), onStatus("connecting" | "open" | "reconnecting"), onEnd(code, reason),
 * onUrl(url) when locate moved the socket somewhere else.
 */
export class RoomConnection {
  constructor({ url, token, clock, onMessage, onStatus, onEnd, locate, onUrl }) {
    this.url = socketUrl(url);
    this.token = token;
    this.clock = clock;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.onEnd = onEnd || (() => {});
    this.locate = locate || null;
    this.onUrl = onUrl || (() => {});
    this.locating = 0; // bumped by every reopen: a lookup that was overtaken by a newer one is ignored
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.greeted = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.deadTimer = null;
    this.pings = new Map();
    this.deadAfterMs = 6000;
    this.pingEveryMs = 10000;
    this.welcomes = 0;
    // The browser knows before any ping times out: a socket that lived through "offline" is dead or soon will be.
    this.onOffline = () => { if (this.ws) this.reconnectNow(); };
    this.onOnline = () => { if (!this.greeted) this.reconnectNow(); };
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
  }

  /** Connect. `relocate`: ask `locate` first (a reload may come after the player's worker changed). */
  start(relocate = false) {
    this.stopped = false;
    if (relocate) this.reopen();
    else this.open();
  }

  /** Ask where to connect now (when we can), then open there. Every reconnect comes through here. */
  async reopen() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    if (!this.locate) {
      this.open();
      return;
    }
    const ticket = ++this.locating;
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    let where;
    try {
      where = await this.locate();
    } catch {
      where = { url: null };
    }
    if (this.stopped || ticket !== this.locating || this.ws) return; // stopped, overtaken, or already back
    if (where.end) {
      this.stopped = true;
      this.onEnd(where.end, "refused on reconnect");
      return;
    }
    if (where.retry) {
      this.scheduleReconnect();
      return;
    }
    if (where.url) {
      const url = socketUrl(where.url);
      if (url !== this.url) {
        this.url = url;
        this.onUrl(where.url);
      }
    }
    this.open();
  }

  open() {
    clearTimeout(this.retryTimer);
    this.locating += 1; // a lookup still in flight must not open a second socket
    this.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    this.greeted = false;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", token: this.token }));
      this.armDeadline();
    };
    ws.onmessage = (event) => this.receive(ws, event);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows
  }

  receive(ws, event) {
    if (ws !== this.ws) return;
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    clearTimeout(this.deadTimer);
    if (typeof msg.now_ms === "number") this.clock.seed(msg.now_ms);
    if (msg.type === "pong" && this.pings.has(msg.t)) {
      this.clock.observe(this.pings.get(msg.t), Date.now(), msg.now_ms);
      this.pings.delete(msg.t);
    }
    if (!this.greeted) {
      this.greeted = true;
      this.welcomes += 1;
      this.attempt = 0;
      this.onStatus("open");
      this.startPings();
    }
    this.onMessage(msg);
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return; // an old socket we already replaced
    this.ws = null;
    this.greeted = false;
    this.stopPings();
    if (this.stopped) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this.stopped = true;
      this.onEnd(code, reason);
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.onStatus("reconnecting");
    // Equal jitter: half the exponential step fixed, half random, so a room full of phones does not return at once.
    const step = Math.min(10000, 250 * 2 ** this.attempt);
    const delay = step / 2 + Math.random() * (step / 2);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.reopen(), delay);
  }

  /** Drop the current socket without waiting for a close handshake that may never come, and reconnect. */
  reconnectNow() {
    if (this.stopped) return;
    const old = this.ws;
    this.ws = null;
    this.stopPings();
    if (old) {
      old.onclose = null;
      old.onmessage = null;
      try { old.close(4000, "client reconnect"); } catch { /* already closed */ }
    }
    this.attempt = Math.min(this.attempt, 1);
    this.reopen();
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.greeted) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  ping() {
    const t = Date.now();
    if (this.send({ type: "ping", t })) {
      this.pings.set(t, t);
      if (this.pings.size > 16) this.pings.delete(this.pings.keys().next().value);
      this.armDeadline();
    }
  }

  armDeadline() {
    clearTimeout(this.deadTimer);
    const ws = this.ws;
    this.deadTimer = setTimeout(() => { if (ws === this.ws) this.reconnectNow(); }, this.deadAfterMs);
  }

  startPings() {
    this.stopPings();
    // A few quick samples for the clock right away, then a slow heartbeat.
    this.ping();
    let quick = 3;
    const next = () => {
      this.ping();
      quick -= 1;
      this.pingTimer = setTimeout(next, quick > 0 ? 700 : this.pingEveryMs);
    };
    this.pingTimer = setTimeout(next, 700);
  }

  stopPings() {
    clearTimeout(this.pingTimer);
    clearTimeout(this.deadTimer);
  }

  stop() {
    this.stopped = true;
    this.stopPings();
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      try { ws.close(1000, "bye"); } catch { /* already closed */ }
    }
  }
}

/** Build an element: el("p", {class: "x", text: "hi"}, child, …). Attributes starting with "on" become listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SHAPES = [
  "M12 3 L22 21 L2 21 Z", // triangle
  "M12 2 L22 12 L12 22 L2 12 Z", // diamond
  "M12 2 A10 10 0 1 0 12.01 2 Z", // circle
  "M3 3 H21 V21 H3 Z", // square
  "M12 2 L14.9 8.6 L22 9.3 L16.6 14 L18.2 21 L12 17.3 L5.8 21 L7.4 14 L2 9.3 L9.1 8.6 Z", // star
  "M7 3 H17 L22 12 L17 21 H7 L2 12 Z", // hexagon
];
const SHAPE_NAMES = ["triangle", "diamond", "circle", "square", "star", "hexagon"];

/** The shape drawn on choice `i`, so colours are never the only cue. */
export function shapeIcon(i) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "shape");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", SHAPES[i % SHAPES.length]);
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

export function shapeName(i) {
  return SHAPE_NAMES[i % SHAPE_NAMES.length];
}

/** Fill an <ol class="board"> with standings; the entry whose nickname is `me` is highlighted. */
export function renderStandings(list, entries, me) {
  list.replaceChildren(
    ...entries.map((e) =>
      el(
        "li",
        { class: me && e.nickname === me ? "me" : "" },
        el("span", { class: "rank", text: `${e.rank}` }),
        el("span", { class: "name", text: e.nickname }),
        el("span", { class: "score", text: formatScore(e.score) }),
      ),
    ),
  );
}

/** Fill a podium container with the top three, drawn 2-1-3 like the real thing. */
export function renderPodium(container, podium) {
  const byPlace = [1, 0, 2].map((i) => podium[i]).filter(Boolean);
  container.replaceChildren(
    ...byPlace.map((e) =>
      el(
        "div",
        { class: `place p${Math.min(e.rank, 3)}`, role: "listitem" },
        el("div", { class: "name", text: e.nickname }),
        el("div", { class: "block" }, `${ordinal(e.rank)}`, el("small", { text: `${formatScore(e.score)} pts` })),
      ),
    ),
  );
}

export function formatScore(n) {
  return Number(n || 0).toLocaleString("en-US");
}

export function ordinal(n) {
  if (n === null || n === undefined) return "–";
  const s = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

/**
 * Run a countdown to `deadlineMs` (server clock): updates `textEl` with whole seconds left and scales `barEl`;
 * calls onDone once at zero. Returns a function that stops it.
 */
export function countdown({ clock, deadlineMs, limitMs, textEl, barEl, onDone }) {
  let done = false;
  let frame = null;
  const tick = () => {
    const left = Math.max(0, deadlineMs - clock.now());
    const seconds = Math.ceil(left / 1000);
    if (textEl.textContent !== String(seconds)) textEl.textContent = String(seconds);
    textEl.classList.toggle("urgent", left <= 5000);
    if (barEl) barEl.style.transform = `scaleX(${Math.min(1, left / (limitMs || 1))})`;
    if (left <= 0 && !done) {
      done = true;
      if (onDone) onDone();
    }
    if (!done) frame = setTimeout(tick, Math.min(100, left % 1000 || 100));
  };
  tick();
  return () => { done = true; clearTimeout(frame); };
}

/** Web storage that never throws (private modes may refuse it), as JSON. */
function jsonStorage(area) {
  return {
    get(key) {
      try { return JSON.parse(area().getItem(key) || "null"); } catch { return null; }
    },
    set(key, value) {
      try { area().setItem(key, JSON.stringify(value)); } catch { /* not available */ }
    },
    remove(key) {
      try { area().removeItem(key); } catch { /* not available */ }
    },
  };
}

/** This tab's storage: a reload resumes the game it was in. */
export const session = jsonStorage(() => sessionStorage);

/** What this browser keeps across tabs and restarts: the rooms it hosts, its device id, the kicks it got. */
export const stored = jsonStorage(() => localStorage);

/**
 * This browser's device id: random, kept in local storage, sent with every join (docs/protocol.md, "Moderation").
 * A host's kick bars it from that room, so a kicked player who reloads or clears the form stays out. It identifies
 * nothing outside quizroom and is never shown.
 */
export function deviceId() {
  let id = stored.get("quizroom.device");
  if (typeof id !== "string" || !/^[A-Za-z0-9_-]{8,128}$/.test(id)) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    stored.set("quizroom.device", id);
  }
  return id;
}

/** Show the element of `screens` named `name`, hide the others; body[data-screen] tells tests where we are. */
export function showScreen(screens, name) {
  for (const [key, node] of Object.entries(screens)) node.hidden = key !== name;
  document.body.dataset.screen = name;
  const heading = screens[name] && screens[name].querySelector("h1, h2, [data-focus]");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}
