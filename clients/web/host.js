// quizroom — the host page: write a quiz, open a room, run the game on the projector.
// The page is what the whole class sees, so it never shows which answer is right before the reveal; the answers are
// in the "presenter notes" window (`/host?notes=<pin>`, a second host socket), for the teacher's own screen.
// Commands go over HTTP (each gets its own answer, so a double click can never start twice); everything that
// happens in the room arrives on the host socket, which reconnects by itself like the players' do. Every reconnect
// (and a reload) first reads host_ws_url from GET /api/rooms/{pin}: with sharding, the worker coordinating the room
// can change after a failover (a host socket sent to the wrong worker is closed with 4421). The host token of every
// room opened here is kept in local storage, so a closed tab or a crashed browser can reopen its game.

import {
  api, countdown, el, errorMessage, formatScore, locateHost, renderPodium, RoomConnection, ServerClock, session,
  shapeIcon, shapeName, showScreen, stored,
} from "./common.js";
import { currentQuiz, currentTab, problems, serverProblem, setUpEditor, showProblems } from "./editor.js";
import { setUpLibrary } from "./library.js";
import { loadAhead, picture, preload, questionImages, seen } from "./images.js";

const SESSION_KEY = "quizroom.host"; // this tab's room (sessionStorage): a reload resumes it at once
const ROOMS_KEY = "quizroom.host.rooms"; // every room this browser hosts (localStorage), newest first
const KEEP_ROOMS = 20;
const SCOREBOARD_N = 5;
const $ = (id) => document.getElementById(id);
const notesPin = new URLSearchParams(window.location.search).get("notes");

const screens = {
  create: $("screen-create"),
  lobby: $("screen-lobby"),
  ready: $("screen-ready"),
  question: $("screen-question"),
  reveal: $("screen-reveal"),
  scoreboard: $("screen-scoreboard"),
  finished: $("screen-finished"),
};

const clock = new ServerClock();
const state = {
  room: null, // {pin, host_token, host_ws_url, join_url, title, question_count}
  conn: null,
  screen: null,
  players: new Map(), // player_id -> nickname
  count: 0,
  question: null,
  stopTimer: null,
  locked: false,
  phase: null,
  questionIndex: null,
  boards: new Map(), // question index -> Map(nickname -> rank), for the scoreboard's rank movement
  board: null, // the latest leaderboard message
};

// --- rooms this browser hosts ------------------------------------------------------------------------------------

function hostedRooms() {
  const rooms = stored.get(ROOMS_KEY);
  return Array.isArray(rooms) ? rooms.filter((r) => r && r.pin && r.host_token) : [];
}

function keepRoom(room) {
  const rooms = hostedRooms().filter((r) => r.pin !== room.pin);
  stored.set(ROOMS_KEY, [{ ...room, saved_at: Date.now() }, ...rooms].slice(0, KEEP_ROOMS));
}

function forgetRoom(pin) {
  stored.set(ROOMS_KEY, hostedRooms().filter((r) => r.pin !== pin));
}

function renderHostedRooms() {
  const rooms = hostedRooms();
  $("mine-wrap").hidden = rooms.length === 0;
  $("mine").replaceChildren(
    ...rooms.map((room) =>
      el(
        "li",
        { "data-pin": room.pin },
        el("span", { class: "grow", text: `${room.title || "Untitled quiz"} — PIN ${room.pin}` }),
        el("button", { type: "button", text: "Reopen", onclick: () => reopen(room) }),
        el("button", {
          type: "button", class: "secondary", text: "Forget", "aria-label": `Forget the game with PIN ${room.pin}`,
          onclick: () => { forgetRoom(room.pin); renderHostedRooms(); },
        }),
      ),
    ),
  );
}

function reopen(room) {
  state.room = room;
  session.set(SESSION_KEY, room);
  setScreen("lobby");
  startHosting(true);
}

// --- creating a room ---------------------------------------------------------------------------------------------

function roomOptions() {
  const intro = $("o-intro").checked ? Math.round(Number($("o-intro-s").value || 3) * 1000) : 0;
  return {
    intro_ms: Math.max(0, Math.min(10000, intro)),
    auto_advance: $("o-auto").checked,
    friendly_names: $("o-friendly").checked,
  };
}

async function createRoom() {
  const error = $("create-error");
  error.textContent = "";
  let quiz;
  try {
    quiz = currentQuiz();
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  if (quiz && Array.isArray(quiz.questions) && showProblems(problems(quiz))) {
    if (currentTab() === "form") error.textContent = "The quiz needs a fix: see the notes by the fields.";
    return;
  }
  const button = $("create");
  button.disabled = true;
  const adminToken = $("admin-token").value.trim() || undefined;
  const result = await api("POST", "/api/rooms", { body: { quiz, ...roomOptions() }, token: adminToken });
  button.disabled = false;
  if (result.status === 401 || result.status === 403) {
    $("admin-wrap").hidden = false;
    $("admin-token").focus();
    error.textContent = adminToken ? "That admin token isn't right." : "Enter the server's admin token to create a game.";
    return;
  }
  if (!result.ok) {
    if (result.status === 422 && result.data && result.data.error) {
      showProblems([serverProblem(result.data.error)]);
      if (currentTab() === "form") error.textContent = errorMessage(result, "The quiz needs a fix");
    } else {
      error.textContent = errorMessage(result, "Couldn't create the game");
    }
    return;
  }
  const d = result.data;
  const room = {
    pin: String(d.pin), host_token: d.host_token, host_ws_url: d.host_ws_url, join_url: d.join_url,
    title: quiz.title, question_count: (quiz.questions || []).length,
  };
  keepRoom(room);
  reopen(room);
}

// --- hosting -----------------------------------------------------------------------------------------------------

/** Open the host socket; `relocate` asks for host_ws_url first (after a reload, the coordinator may have moved). */
function startHosting(relocate = false) {
  const room = state.room;
  $("h-title").textContent = room.title || "";
  $("h-title").hidden = !room.title;
  $("h-pin-badge").textContent = `PIN ${room.pin}`;
  $("h-pin-badge").hidden = false;
  for (const id of ["h-end", "h-players", "h-notes"]) $(id).hidden = false;
  $("h-notes").hidden = Boolean(notesPin);
  $("l-pin").textContent = room.pin.replace(/^(\d{3})(\d{3})$/, "$1 $2");
  const link = joinLink();
  $("l-link").textContent = link.replace(/^https?:\/\//, "");
  $("l-link").href = link;
  const qr = $("l-qr");
  qr.onload = () => { qr.hidden = false; };
  qr.onerror = () => { qr.hidden = true; };
  qr.src = `/api/rooms/${encodeURIComponent(room.pin)}/qr.svg`;
  setCount(state.count);
  if (state.conn) state.conn.stop();
  state.conn = new RoomConnection({
    url: room.host_ws_url, token: room.host_token, clock, onMessage: handle, onStatus: showStatus, onEnd: ended,
    locate: () => locateHost(room.pin, room.host_token),
    onUrl: (url) => {
      room.host_ws_url = url;
      if (state.room === room) {
        session.set(SESSION_KEY, room);
        keepRoom(room);
      }
    },
  });
  state.conn.start(relocate);
}

function joinLink() {
  const url = state.room.join_url;
  if (url) return new URL(url, window.location.href).toString();
  return new URL(`/?pin=${state.room.pin}`, window.location.href).toString();
}

let statusTimer = null;
function showStatus(status) {
  const banner = $("conn");
  clearTimeout(statusTimer);
  if (status === "open") {
    banner.hidden = true;
    return;
  }
  statusTimer = setTimeout(() => {
    banner.hidden = false;
    banner.className = "conn bad";
    banner.textContent = "Connection to the server lost — reconnecting…";
  }, 1500);
}

function ended(code) {
  state.conn = null;
  showStatus("open");
  if (code === 4410 || state.phase === "finished") return;
  const texts = {
    4401: "The host key for this game isn't valid any more.",
    4404: "This game no longer exists.",
    4409: "This game is now hosted from another tab or window.",
  };
  session.remove(SESSION_KEY);
  if (code === 4401 || code === 4404) forgetRoom(state.room.pin);
  renderHostedRooms();
  setScreen("create");
  $("create-error").textContent = texts[code] || `The connection closed (${code}).`;
}

function setScreen(name) {
  if (state.screen === name) return;
  state.screen = name;
  showScreen(screens, name);
}

function setCount(count) {
  state.count = count;
  $("l-count").textContent = String(count);
  $("l-count-word").textContent = count === 1 ? "player" : "players";
  $("h-count-badge").textContent = `${count} ${count === 1 ? "player" : "players"}`;
  $("h-count-badge").hidden = false;
  $("l-empty").hidden = count > 0;
}

function stopTimer() {
  if (state.stopTimer) state.stopTimer();
  state.stopTimer = null;
}

// --- room events -------------------------------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome": return welcome(msg);
    case "state": return applyState(msg);
    case "players": return playersChanged(msg);
    case "answers": return answersChanged(msg);
    case "get_ready": return showReady(msg);
    case "question": return showQuestion(msg);
    case "result": return showReveal(msg); // the host's copy: the correct answer and the counts
    case "leaderboard": return gotLeaderboard(msg);
    case "finished": return showFinished(msg);
    case "error": return showError(msg.message || msg.code);
    default: return undefined;
  }
}

/** A (re)connect: the welcome carries whatever the screen shows in this phase (docs/protocol.md, "Host socket"). */
function welcome(msg) {
  loadAhead(msg.images);
  applyState(msg);
  if (msg.phase === "reveal") {
    if (msg.leaderboard) gotLeaderboard(msg.leaderboard);
    // A coordinator that has just taken the room over may not have rebuilt the reveal yet: it follows shortly.
    const result = msg.result || { question: msg.question_index, counts: [], correct: [] };
    if (state.screen !== "scoreboard" || !msg.result) showReveal(result);
  } else if (msg.phase === "finished") {
    showFinished({ podium: msg.podium || (state.board && state.board.top.slice(0, 3)) || [] });
  }
  if (msg.get_ready) showReady(msg.get_ready);
}

function applyState(msg) {
  const s = msg.state && typeof msg.state === "object" ? msg.state : msg;
  if (Array.isArray(s.player_list)) {
    state.players = new Map(s.player_list.map((p) => [String(p.player_id), p.nickname]));
    renderPlayers();
  }
  if (typeof s.question_count === "number") state.room.question_count = s.question_count;
  if (typeof s.players === "number") setCount(s.players);
  else if (typeof s.count === "number") setCount(s.count);
  if (typeof s.locked === "boolean") setLocked(s.locked);
  if (s.title) {
    $("h-title").textContent = s.title;
    if (state.room.title !== s.title) {
      state.room.title = s.title;
      keepRoom(state.room);
    }
  }
  state.phase = s.phase || state.phase;
  if (typeof s.question_index === "number") state.questionIndex = s.question_index;
  if (s.question && typeof s.question === "object") showQuestion(s.question);
  if (s.phase === "lobby" && state.screen !== "ready") setScreen("lobby");
  else if (s.phase === "question" && state.screen !== "question" && state.question) setScreen("question");
  else if (s.phase === "finished" && state.screen !== "finished" && msg.type === "state") loadFinalPodium();
  updateNextLabels();
}

function playersChanged(msg) {
  for (const p of msg.joined || []) {
    if (p && typeof p === "object") state.players.set(String(p.player_id), p.nickname || String(p.player_id));
  }
  for (const p of msg.left || []) state.players.delete(String(p && typeof p === "object" ? p.player_id : p));
  setCount(typeof msg.count === "number" ? msg.count : state.players.size);
  renderPlayers();
}

/** The lobby's names: large, plain, no controls beside them. Clicking one opens the players drawer at it. */
function renderPlayers() {
  const items = [...state.players].map(([id, nickname]) =>
    el("li", { "data-player": id }, el("button", {
      type: "button", class: "chip", text: nickname, title: `Manage ${nickname}`,
      onclick: () => openDrawer(nickname),
    })),
  );
  $("l-players").replaceChildren(...items);
  $("l-empty").hidden = state.players.size > 0 || state.count > 0;
  renderDrawer();
}

// --- moderation: the players drawer --------------------------------------------------------------------------------

function openDrawer(filter = "") {
  $("panel-players").hidden = false;
  $("h-players").setAttribute("aria-expanded", "true");
  $("pp-filter").value = filter;
  $("pp-error").textContent = "";
  renderDrawer();
  $("pp-filter").focus();
}

function closeDrawer() {
  $("panel-players").hidden = true;
  $("h-players").setAttribute("aria-expanded", "false");
}

function renderDrawer() {
  if ($("panel-players").hidden) return;
  const needle = $("pp-filter").value.trim().toLowerCase();
  const rows = [...state.players]
    .filter(([, nickname]) => !needle || nickname.toLowerCase().includes(needle))
    .slice(0, 200)
    .map(([id, nickname]) =>
      el(
        "li",
        { "data-player": id },
        el("span", { class: "grow", text: nickname }),
        el("button", {
          type: "button", class: "danger", text: "Remove", "aria-label": `Remove ${nickname}`,
          onclick: (e) => kick(id, nickname, e.currentTarget),
        }),
      ),
    );
  $("pp-list").replaceChildren(...rows);
}

async function kick(playerId, nickname, button) {
  if (!window.confirm(`Remove ${nickname} from this game? They can't come back under this name or from this device.`)) {
    return;
  }
  button.disabled = true;
  const result = await api("DELETE", `/api/rooms/${state.room.pin}/players/${encodeURIComponent(playerId)}`, {
    token: state.room.host_token,
  });
  if (!result.ok && result.status !== 404) {
    button.disabled = false;
    $("pp-error").textContent = errorMessage(result, `Couldn't remove ${nickname}`);
    return;
  }
  state.players.delete(playerId);
  renderPlayers();
}

// --- the game's screens ------------------------------------------------------------------------------------------

function answersChanged(msg) {
  if (state.question && msg.question !== state.question.index) return;
  $("hq-answers-n").textContent = String(msg.answered);
  $("hq-answered").textContent = `${msg.answered} of ${msg.players} answered`;
}

function questionLabel(index) {
  return `Question ${index + 1} of ${state.room.question_count || "?"}`;
}

function showReady(msg) {
  stopTimer();
  $("hg-count").textContent = questionLabel(msg.index);
  $("hg-text").textContent = msg.text || "";
  preload(msg.images);
  showPicture($("hg-image"), msg.image);
  const limit = msg.intro_ms || 0;
  state.stopTimer = countdown({ clock, deadlineMs: msg.opens_at_ms, limitMs: limit, textEl: $("hg-timer") });
  setScreen("ready");
}

/** The question's picture, large on the projector (or nothing). */
function showPicture(box, url) {
  box.replaceChildren(...(url ? [picture(url, "The question's picture", "")] : []));
  box.hidden = !url;
}

function showQuestion(q) {
  state.question = q;
  state.phase = "question";
  state.questionIndex = q.index;
  $("hq-count").textContent = questionLabel(q.index);
  $("hq-text").textContent = q.text;
  showPicture($("hq-image"), q.image);
  seen(questionImages(q));
  const pictures = q.choice_images || [];
  $("hq-answers-n").textContent = "0";
  $("hq-answered").textContent = `0 of ${state.count} answered`;
  $("hq-error").textContent = "";
  $("hq-close").disabled = false;
  // The projector's tiles carry no hint of the answer; only the presenter notes window marks it.
  const correct = notesPin ? new Set(q.correct || []) : new Set();
  const kind = q.question_type || "choice";
  if (!["choice", "true_false", "poll"].includes(kind)) {
    $("hq-choices").replaceChildren(...typedTiles(q, kind));
  } else $("hq-choices").replaceChildren(
    ...q.choices.map((text, i) =>
      el(
        "div",
        {
          class: `choice button c${i % 6}${correct.has(i) ? " correct" : ""}`,
          role: "listitem",
          "data-choice": String(i),
          "aria-label": `${shapeName(i)}: ${text}${correct.has(i) ? " (correct)" : ""}`,
        },
        shapeIcon(i),
        pictures[i] ? picture(pictures[i], text, "choice-picture") : null,
        el("span", { class: pictures[i] ? "label caption" : "label", text }),
        correct.has(i) ? el("span", { class: "mark", "aria-hidden": "true", text: "✓" }) : null,
      ),
    ),
  );
  $("hq-choices").classList.toggle("pictures", pictures.some(Boolean));
  stopTimer();
  state.stopTimer = countdown({
    clock, deadlineMs: q.deadline_ms, limitMs: q.time_limit_ms, textEl: $("hq-timer"), barEl: $("hq-bar"),
  });
  setScreen("question");
}

/** The projector's question screen for a type without choice tiles: how to answer, never the answer (the
 * presenter notes add it). */
function typedTiles(q, kind) {
  const notes = [];
  if (kind === "type_answer") {
    if (notesPin && q.accepted) notes.push(el("p", { class: "mark", text: `Accepted: ${q.accepted.join(", ")}` }));
    return [el("div", { class: "how", role: "listitem", text: "⌨ Type your answer on your device" }), ...notes];
  }
  if (kind === "slider") {
    if (notesPin && q.value !== undefined) notes.push(el("p", { class: "mark", text: `Answer: ${q.value}${q.tolerance ? ` (± ${q.tolerance})` : ""}` }));
    return [el("div", { class: "how", role: "listitem", text: `Slide to a number from ${q.min} to ${q.max}` }), ...notes];
  }
  // A puzzle: its items as the players see them (shuffled); the notes give the right order.
  if (notesPin && q.correct) notes.push(el("p", { class: "mark", text: `Order: ${q.correct.map((i) => q.choices[i]).join(" → ")}` }));
  return [
    el("div", { class: "how", role: "listitem", text: "Put these in order" }),
    ...q.choices.map((text, i) => el("div", { class: `choice button c${i % 6}`, role: "listitem", "data-choice": String(i) },
      el("span", { class: "label", text }))),
    ...notes,
  ];
}

/** The reveal of a type answered without choices, from the result's `tally` (docs/protocol.md). */
function tallyView(msg, q) {
  const tally = msg.tally || {};
  const kind = msg.question_type;
  if (kind === "type_answer") {
    const accepted = msg.accepted || tally.accepted || [];
    return [
      el("p", { class: "answer-line", text: `Answer: ${accepted.join(" / ")}` }),
      el("ol", { class: "tally", "aria-label": "Most common answers" },
        (tally.answers || []).map((a) => el("li", { class: a.correct ? "right" : "" },
          el("span", { text: a.text }), el("strong", { text: String(a.count) })))),
    ];
  }
  if (kind === "slider") {
    const bins = tally.bins || [];
    const max = Math.max(1, ...bins.map((b) => b.count));
    const low = msg.value - (msg.tolerance || 0);
    const high = msg.value + (msg.tolerance || 0);
    return [
      el("p", { class: "answer-line", text: `Answer: ${msg.value}${msg.tolerance ? ` (± ${msg.tolerance})` : ""}`
        + (tally.mean !== null && tally.mean !== undefined ? ` · average ${Math.round(tally.mean * 10) / 10}` : "") }),
      el("div", { class: "bins", role: "list", "aria-label": "Answers by value" },
        bins.map((b) => {
          const range = b.from === b.to ? String(b.from) : `${b.from}–${b.to}`;
          return el("div", {
            class: `bin${b.to >= low && b.from <= high ? " right" : ""}`, role: "listitem",
            "aria-label": `${range}: ${b.count}`,
          },
          el("span", { class: "bin-n", text: b.count ? String(b.count) : "" }),
          el("div", { class: "bin-col" }, el("div", { class: "bin-fill", style: `height:${Math.round((b.count / max) * 100)}%` })),
          el("span", { class: "bin-t", text: range }));
        })),
    ];
  }
  const order = (msg.correct || []).map((i) => (q ? q.choices[i] : String(i)));
  return [
    el("p", { class: "answer-line", text: `${tally.correct || 0} of ${(tally.correct || 0) + (tally.wrong || 0)} got the order right` }),
    el("ol", { class: "tally", "aria-label": "The right order" }, order.map((text) => el("li", { class: "right" }, el("span", { text })))),
  ];
}

function showReveal(msg) {
  stopTimer();
  state.phase = "reveal";
  state.questionIndex = msg.question;
  const q = state.question && state.question.index === msg.question ? state.question : null;
  if (msg.tally) {
    $("hr-count").textContent = questionLabel(msg.question);
    $("hr-text").textContent = q ? q.text : `Question ${msg.question + 1}`;
    $("hr-bars").replaceChildren(el("div", { class: "tally-view" }, ...tallyView(msg, q)));
    if (typeof msg.answered === "number") $("hr-summary").textContent = `${msg.answered} of ${msg.players} players answered.`;
    $("hr-error").textContent = "";
    updateNextLabels();
    setScreen("reveal");
    return;
  }
  const poll = msg.question_type === "poll";
  const counts = msg.counts || [];
  const max = Math.max(1, ...counts);
  const correct = new Set(msg.correct || []);
  $("hr-count").textContent = questionLabel(msg.question);
  $("hr-text").textContent = q ? q.text : `Question ${msg.question + 1}`;
  $("hr-bars").replaceChildren(
    ...counts.map((n, i) => {
      const label = q ? q.choices[i] : `Choice ${i + 1}`;
      const right = correct.has(i);
      return el(
        "div",
        { class: `rbar${right ? " correct" : poll ? "" : " wrong"}`, role: "listitem", "data-choice": String(i),
          "aria-label": `${label}: ${n} ${n === 1 ? "answer" : "answers"}${right ? ", correct" : ""}` },
        el("span", { class: "rbar-n", text: String(n) }),
        el("div", { class: "rbar-col" }, el("div", {
          class: `rbar-fill c${i % 6}`, style: `height:${Math.round((n / max) * 100)}%`,
        })),
        el(
          "div",
          { class: "rbar-t" },
          shapeIcon(i),
          q && q.choice_images && q.choice_images[i] ? picture(q.choice_images[i], label, "choice-picture") : null,
          el("span", { text: label }),
          right ? el("span", { class: "mark", text: "✓" }) : null,
        ),
      );
    }),
  );
  if (typeof msg.answered === "number") {
    $("hr-summary").textContent = `${msg.answered} of ${msg.players} players answered.`;
  }
  $("hr-error").textContent = "";
  updateNextLabels();
  setScreen("reveal");
}

function gotLeaderboard(msg) {
  state.board = msg;
  state.boards.set(msg.question, new Map((msg.top || []).map((e) => [e.nickname, e.rank])));
}

/** The scoreboard step after a reveal: the top five, each with how many places it moved since the last one. */
function showScoreboard() {
  const board = state.board;
  const before = board ? state.boards.get(board.question - 1) : null;
  const entries = board ? (board.top || []).slice(0, SCOREBOARD_N) : [];
  $("hs-board").replaceChildren(
    ...entries.map((e) => {
      let move = "";
      let moveClass = "same";
      if (before) {
        const was = before.get(e.nickname);
        if (was === undefined) [move, moveClass] = ["▲", "up"];
        else if (was > e.rank) [move, moveClass] = [`▲ ${was - e.rank}`, "up"];
        else if (was < e.rank) [move, moveClass] = [`▼ ${e.rank - was}`, "down"];
      }
      return el(
        "li",
        {},
        el("span", { class: "rank", text: String(e.rank) }),
        el("span", { class: "name", text: e.nickname }),
        el("span", { class: `move ${moveClass}`, text: move, "aria-label": move ? `moved ${move}` : "" }),
        el("span", { class: "score", text: formatScore(e.score) }),
      );
    }),
  );
  updateNextLabels();
  setScreen("scoreboard");
}

function updateNextLabels() {
  const index = state.questionIndex;
  const last = typeof index === "number" && index + 1 >= state.room.question_count;
  $("hs-next").textContent = last ? "Show podium" : "Next question";
}

function showFinished(msg) {
  stopTimer();
  state.phase = "finished";
  renderPodium($("hf-podium"), msg.podium || []);
  $("h-end").hidden = true;
  setScreen("finished");
}

async function loadFinalPodium() {
  const result = await api("GET", `/api/rooms/${state.room.pin}/leaderboard?limit=3`, {
    token: state.room.host_token,
  });
  if (state.screen !== "finished") showFinished({ podium: (result.ok && result.data && result.data.entries) || [] });
}

function showError(text) {
  const target = {
    lobby: "l-error", question: "hq-error", reveal: "hr-error", scoreboard: "hs-error", finished: "hf-error",
  }[state.screen];
  if (target) $(target).textContent = text;
}

// --- commands ----------------------------------------------------------------------------------------------------

/**
 * A host command over HTTP. A 503 (the room's coordinator is moving to another worker, or storage is slow) or a
 * dropped network is asked again with a growing pause, as docs/protocol.md asks of clients; a 409 after such a
 * retry means the first try took effect, and the socket shows where the room is.
 */
async function command(name, button) {
  if (button) button.disabled = true;
  let result = null;
  let wait = 250;
  for (let attempt = 0; attempt < 6; attempt += 1) {
    result = await api("POST", `/api/rooms/${state.room.pin}/${name}`, { token: state.room.host_token });
    if (result.status !== 503 && result.status !== 0) break;
    showError("The server is busy — trying again…");
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(4000, wait * 2);
  }
  if (button) button.disabled = false;
  if (!result.ok) {
    if (result.status !== 409) showError(errorMessage(result, `Couldn't ${name}`));
    return null;
  }
  showError("");
  return result.data;
}

function setLocked(locked) {
  state.locked = locked;
  $("l-lock").setAttribute("aria-pressed", String(locked));
  $("l-lock").textContent = locked ? "Unlock room" : "Lock room";
}

/** Results for the teacher: one row per player (docs/protocol.md, "Results exports"), as CSV or an Excel file. */
async function download(format, button) {
  button.disabled = true;
  $("hf-error").textContent = "";
  let response = null;
  try {
    response = await fetch(`/api/rooms/${state.room.pin}/results?layout=players&format=${format}`, {
      headers: { Authorization: `Bearer ${state.room.host_token}` },
    });
  } catch {
    response = null;
  }
  button.disabled = false;
  if (!response || !response.ok) {
    $("hf-error").textContent = response ? `Couldn't download the results (${response.status}).`
      : "Can't reach the server. Check your connection and try again.";
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: `quizroom-${state.room.pin}-results.${format}`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function newGame() {
  if (state.conn) state.conn.stop();
  session.remove(SESSION_KEY);
  window.location.assign(window.location.pathname);
}

// --- start -------------------------------------------------------------------------------------------------------

function boot() {
  setUpEditor();
  setUpLibrary();
  $("create").addEventListener("click", createRoom);
  $("l-start").addEventListener("click", (e) => command("start", e.currentTarget));
  $("l-lock").addEventListener("click", async (e) => {
    const data = await command(state.locked ? "unlock" : "lock", e.currentTarget);
    if (data) setLocked(typeof data.locked === "boolean" ? data.locked : !state.locked);
  });
  $("l-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(joinLink());
      $("l-copy").textContent = "Copied!";
    } catch {
      $("l-copy").textContent = "Copy failed — select the link";
    }
    setTimeout(() => { $("l-copy").textContent = "Copy join link"; }, 2000);
  });
  $("hq-close").addEventListener("click", (e) => command("close", e.currentTarget));
  $("hr-next").addEventListener("click", showScoreboard);
  $("hs-next").addEventListener("click", (e) => command("next", e.currentTarget));
  $("h-end").addEventListener("click", (e) => {
    if (window.confirm("End the game for everyone now?")) command("end", e.currentTarget);
  });
  $("h-players").addEventListener("click", () => ($("panel-players").hidden ? openDrawer() : closeDrawer()));
  $("pp-close").addEventListener("click", closeDrawer);
  $("pp-filter").addEventListener("input", renderDrawer);
  $("h-notes").addEventListener("click", () => {
    window.open(`/host?notes=${encodeURIComponent(state.room.pin)}`, `quizroom-notes-${state.room.pin}`, "popup");
  });
  $("hf-csv").addEventListener("click", (e) => download("csv", e.currentTarget));
  $("hf-xlsx").addEventListener("click", (e) => download("xlsx", e.currentTarget));
  $("hf-new").addEventListener("click", newGame);

  if (notesPin) {
    document.body.classList.add("notes");
    document.title = "quizroom — presenter notes";
    const room = hostedRooms().find((r) => r.pin === notesPin);
    if (room) {
      state.room = room;
      setScreen("lobby");
      startHosting(true);
      return;
    }
  }
  const saved = session.get(SESSION_KEY);
  if (saved && saved.host_token && saved.host_ws_url) {
    state.room = saved;
    setScreen("lobby");
    startHosting(true);
    return;
  }
  renderHostedRooms();
  setScreen("create");
}

window.quizroomTest = {
  dropSocket: () => { if (state.conn && state.conn.ws) state.conn.ws.close(4000, "test drop"); },
  socketOpen: () => Boolean(state.conn && state.conn.ws && state.conn.greeted),
  welcomes: () => (state.conn ? state.conn.welcomes : 0),
  state: () => ({ screen: state.screen, phase: state.phase, count: state.count, players: [...state.players] }),
};

boot();
