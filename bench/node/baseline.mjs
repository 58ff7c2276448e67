// The Node.js baseline: the same subset of the protocol as bench/baseline.py, on Node's http server and the `ws`
// library, so that the bench's load client measures quizroom, the raw Python `websockets` server and a Node `ws`
// server in one run (issue #19: "a question's fan-out no slower than a Node.js `ws` broadcast").
//
// What it speaks (as bench/baseline.py): `GET /baseline/rooms?questions=K&time_limit_ms=T`, `GET
// /baseline/join?pin=P&nickname=X`, `GET /api/rooms/{pin}/results`, `GET /healthz`; sockets on `/ws/player` and
// `/ws/host`: `hello` → `welcome`, host commands `start/close/next/end` → `state`, the `question` broadcast, `answer`
// → `answer_ack`, `ping` → `pong`.
//
// The broadcast is `ws`'s documented one: the event serialised once into a Buffer, then `send` of that Buffer (as a
// text frame) to every socket; `ws` frames it per recipient. No permessage-deflate (`ws`'s default for a server).
//
// Storage, like quizroom's contract: an answer is acked only once it is durable. Node 20 has no SQLite of its own,
// so answers go to an append-only file, one JSON line each, and an ack waits for the `fdatasync` of the batch it was
// in; the next batch starts as soon as the previous sync returns (a group commit without a window, as the Python
// baseline's). The file's writes and syncs run on libuv's thread pool, off the event loop. Results are read from
// what was synced.

import fs from "node:fs";
import http from "node:http";
import crypto from "node:crypto";
import { parseArgs } from "node:util";
import { WebSocketServer } from "ws";

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8765" },
    db: { type: "string", default: "node-baseline.log" },
  },
});

const rooms = new Map(); // pin -> room
const tokens = new Map(); // token -> room
let pending = new Map(); // "pin|question|player" -> {pin, question, player, choice, ms, waiters}
let syncing = new Map(); // the batch being synced: a repeat of one of its answers waits for it, stored once
let committing = false;
const journal = fs.openSync(args.db, "a");

function json(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

function question(room) {
  return {
    type: "question",
    seq: room.seq,
    index: room.index,
    text: `Q${room.index}`,
    choices: ["a", "b", "c", "d"],
    multi: false,
    time_limit_ms: room.timeLimitMs,
    deadline_ms: 0,
    now_ms: Date.now(),
  };
}

function broadcast(sockets, event) {
  const data = Buffer.from(JSON.stringify(event));
  for (const ws of sockets) ws.send(data, { binary: false });
}

function send(ws, event) {
  ws.send(JSON.stringify(event));
}

function command(room, name) {
  const ok = {
    start: room.phase === "lobby",
    close: room.phase === "question",
    next: room.phase === "reveal",
    end: room.phase !== "finished",
  }[name];
  if (!ok) return { type: "error", code: "bad_phase", message: name };
  room.seq += 1;
  let event;
  if (name === "close") {
    room.phase = "reveal";
    event = { type: "leaderboard", seq: room.seq, question: room.index, top: [] };
  } else if (name === "end" || room.index + 1 >= room.questions) {
    room.phase = "finished";
    event = { type: "finished", seq: room.seq, podium: [] };
  } else {
    room.phase = "question";
    room.index += 1;
    room.openedNs = process.hrtime.bigint();
    event = question(room);
  }
  broadcast([...room.sockets.values(), ...room.hosts], event);
  return { type: "state", phase: room.phase, question_index: room.index };
}

function answer(room, playerId, msg, ws) {
  const now = process.hrtime.bigint();
  if (room.phase !== "question" || msg.question !== room.index) {
    return { type: "error", code: "bad_phase", message: "" };
  }
  const done = room.stored.get(`${room.index}|${playerId}`);
  if (done !== undefined) {
    return { type: "answer_ack", question: room.index, accepted: true, duplicate: true, response_ms: done };
  }
  const key = `${room.pin}|${room.index}|${playerId}`;
  const waiting = pending.get(key) ?? syncing.get(key);
  if (waiting !== undefined) {
    waiting.waiters.push(ws);
  } else {
    const ms = Number((now - room.openedNs) / 1000000n);
    pending.set(key, { pin: room.pin, question: room.index, player: playerId, choice: msg.choice ?? 0, ms, waiters: [ws] });
    commit();
  }
  return null;
}

function commit() {
  if (committing || pending.size === 0) return;
  committing = true;
  const batch = pending;
  syncing = batch;
  pending = new Map();
  const lines = [];
  for (const a of batch.values()) {
    lines.push(JSON.stringify({ pin: a.pin, question: a.question, player: a.player, choice: a.choice, ms: a.ms }));
  }
  fs.write(journal, lines.join("\n") + "\n", (error) => {
    if (error) throw error;
    fs.fdatasync(journal, (error) => {
      if (error) throw error;
      for (const a of batch.values()) {
        const room = rooms.get(a.pin);
        room.stored.set(`${a.question}|${a.player}`, a.ms);
        room.answers.push(a);
        a.waiters.forEach((ws, i) => {
          send(ws, { type: "answer_ack", question: a.question, accepted: true, duplicate: i > 0, response_ms: a.ms });
        });
      }
      committing = false;
      syncing = new Map();
      commit();
    });
  });
}

function results(room) {
  const byPlayer = new Map();
  for (const a of room.answers) {
    if (!byPlayer.has(a.player)) byPlayer.set(a.player, []);
    byPlayer.get(a.player).push({ question: a.question, choices: [a.choice], correct: false, points: 0, response_ms: a.ms });
  }
  return {
    pin: room.pin,
    phase: room.phase,
    players: [...room.players.values()].map(([playerId, nickname]) => ({
      player_id: playerId,
      nickname,
      score: 0,
      answers: byPlayer.get(playerId) ?? [],
    })),
  };
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const q = url.searchParams;
  const parts = url.pathname.replace(/^\/+|\/+$/g, "").split("/");
  if (url.pathname === "/healthz") return json(res, 200, {});
  if (url.pathname === "/baseline/rooms") {
    const pin = `${rooms.size + 100000}`;
    const room = {
      pin,
      questions: Number(q.get("questions") ?? 1),
      timeLimitMs: Number(q.get("time_limit_ms") ?? 20000),
      hostToken: crypto.randomBytes(16).toString("hex"),
      phase: "lobby",
      index: -1,
      seq: 0,
      openedNs: 0n,
      players: new Map(), // token -> [player_id, nickname]
      sockets: new Map(), // player_id -> socket
      hosts: new Set(),
      stored: new Map(), // "question|player" -> response_ms
      answers: [],
    };
    rooms.set(pin, room);
    tokens.set(room.hostToken, room);
    const wsBase = `ws://${args.host}:${args.port}`;
    return json(res, 201, { room_id: pin, pin, host_token: room.hostToken, join_url: "", host_ws_url: `${wsBase}/ws/host` });
  }
  const room = rooms.get(q.get("pin") ?? (parts.length > 2 ? parts[2] : ""));
  if (room === undefined && (url.pathname.startsWith("/baseline/") || url.pathname.startsWith("/api/"))) {
    return json(res, 404, { error: { code: "not_found", message: "" } });
  }
  if (room !== undefined && url.pathname === "/baseline/join") {
    const token = crypto.randomBytes(16).toString("hex");
    const playerId = crypto.randomBytes(8).toString("hex");
    room.players.set(token, [playerId, q.get("nickname") ?? playerId]);
    tokens.set(token, room);
    return json(res, 201, { player_id: playerId, token, ws_url: `ws://${args.host}:${args.port}/ws/player` });
  }
  if (room !== undefined && parts[parts.length - 1] === "results") return json(res, 200, results(room));
  return json(res, 404, {});
});

const sockets = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });

server.on("upgrade", (req, socket, head) => {
  if (!req.url.startsWith("/ws/")) {
    socket.destroy();
    return;
  }
  sockets.handleUpgrade(req, socket, head, (ws) => player(ws));
});

function player(ws) {
  let room = null;
  let playerId = null;
  let isHost = false;
  const hello = setTimeout(() => ws.close(4401), 5000);
  ws.on("message", (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      if (room === null) ws.close(4401);
      return;
    }
    if (room === null) {
      clearTimeout(hello);
      room = (msg !== null && typeof msg === "object" && tokens.get(msg.token)) || null;
      if (room === null) return ws.close(4401);
      isHost = msg.token === room.hostToken;
      let nickname;
      [playerId, nickname] = isHost ? ["host", "host"] : room.players.get(msg.token);
      const welcome = {
        type: "welcome",
        player_id: playerId,
        nickname,
        pin: room.pin,
        phase: room.phase,
        question_count: room.questions,
        score: 0,
        rank: 1,
        now_ms: Date.now(),
      };
      if (room.phase === "question") {
        welcome.question = question(room);
        welcome.answered = room.stored.has(`${room.index}|${playerId}`);
      }
      send(ws, welcome);
      if (isHost) {
        room.hosts.add(ws);
      } else {
        const old = room.sockets.get(playerId);
        room.sockets.set(playerId, ws);
        if (old !== undefined) old.close(4409);
      }
      return;
    }
    if (msg === null || typeof msg !== "object") {
      send(ws, { type: "error", code: "bad_message", message: "a message must be a JSON object" });
      return;
    }
    let reply = null;
    if (msg.type === "answer" && !isHost) reply = answer(room, playerId, msg, ws);
    else if (msg.type === "ping") reply = { type: "pong", t: msg.t, now_ms: Date.now() };
    else if (isHost && ["start", "close", "next", "end"].includes(msg.type)) reply = command(room, msg.type);
    else reply = { type: "error", code: "unknown_type", message: String(msg.type) };
    if (reply !== null) send(ws, reply);
  });
  ws.on("close", () => {
    clearTimeout(hello);
    if (room === null) return;
    room.hosts.delete(ws);
    if (room.sockets.get(playerId) === ws) room.sockets.delete(playerId);
  });
}

server.listen({ host: args.host, port: Number(args.port), backlog: 4096 }, () => {
  console.log(`node baseline listening on ${args.host}:${args.port}`);
});
