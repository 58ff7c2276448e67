// quizroom — the host page: write a quiz, open a room, run the game on the big screen.
// Commands go over HTTP (each gets its own answer, so a double click can never start twice); everything that
// happens in the room arrives on the host socket, which reconnects by itself like the players' do. Every reconnect
// (and a reload) first reads host_ws_url from GET /api/rooms/{pin}: with sharding, the worker coordinating the room
// can change after a failover (a host socket sent to the wrong worker is closed with 4421).

import {
  api, countdown, el, errorMessage, formatScore, locateHost, renderPodium, renderStandings, RoomConnection,
  ServerClock, session, shapeIcon, shapeName, showScreen,
} from "./common.js";

const SESSION_KEY = "quizroom.host";
const $ = (id) => document.getElementById(id);

const screens = {
  create: $("screen-create"),
  lobby: $("screen-lobby"),
  question: $("screen-question"),
  reveal: $("screen-reveal"),
  finished: $("screen-finished"),
};

const SAMPLE_QUIZ = {
  title: "Space, science and snacks",
  questions: [
    {
      text: "Which planet is closest to the Sun?",
      choices: ["Venus", "Mercury", "Mars", "Earth"],
      correct: [1],
      time_limit_ms: 20000,
      points: 1000,
    },
    {
      text: "Which of these are noble gases?",
      choices: ["Helium", "Nitrogen", "Neon", "Oxygen"],
      correct: [0, 2],
      time_limit_ms: 30000,
      points: 1000,
    },
    {
      text: "How many minutes does a perfect soft-boiled egg take?",
      choices: ["2", "6", "12", "20"],
      correct: [1],
      time_limit_ms: 15000,
      points: 500,
    },
  ],
};

const clock = new ServerClock();
const state = {
  room: null, // {pin, host_token, host_ws_url, join_url, title, question_count}
  conn: null,
  screen: null,
  players: new Map(), // player_id -> nickname
  count: 0,
  question: null,
  counts: null,
  stopTimer: null,
  locked: false,
  phase: null,
};

// --- quiz editor -----------------------------------------------------------------------------------------------

let editorTab = "form";

function questionEditor(q, index) {
  const fieldset = el("fieldset", { class: "qedit", "data-question": String(index) });
  fieldset.append(el("legend", { text: `Question ${index + 1}` }));
  const textId = `q${index}-text`;
  fieldset.append(
    el("label", { for: textId, text: "Question" }),
    el("input", { id: textId, class: "q-text", maxlength: "500", value: q.text || "" }),
  );
  const choices = [...(q.choices || [])];
  while (choices.length < 4) choices.push("");
  choices.forEach((choice, i) => {
    const id = `q${index}-c${i}`;
    fieldset.append(
      el(
        "div",
        { class: "choice-row" },
        el("span", { class: `swatch c${i}`, "aria-hidden": "true" }),
        el("label", { for: id, class: "visually-hidden", text: `Choice ${i + 1} (${shapeName(i)})` }),
        el("input", { id, class: "q-choice", maxlength: "120", value: choice, placeholder: `Choice ${i + 1}` }),
        el(
          "label",
          {},
          el("input", { type: "checkbox", class: "q-correct", checked: (q.correct || []).includes(i) }),
          "correct",
        ),
      ),
    );
  });
  const row = el("div", { class: "meta" });
  row.append(
    el(
      "div",
      {},
      el("label", { for: `q${index}-time`, text: "Seconds" }),
      el("input", {
        id: `q${index}-time`, class: "q-time", type: "number", min: "5", max: "300",
        value: String(Math.round((q.time_limit_ms || 20000) / 1000)),
      }),
    ),
    el(
      "div",
      {},
      el("label", { for: `q${index}-points`, text: "Points" }),
      el("input", {
        id: `q${index}-points`, class: "q-points", type: "number", min: "0", max: "2000", step: "100",
        value: String(q.points ?? 1000),
      }),
    ),
  );
  fieldset.append(row);
  fieldset.append(
    el("button", {
      type: "button", class: "secondary", text: "Remove question",
      onclick: () => {
        const quiz = readForm();
        quiz.questions.splice(index, 1);
        renderForm(quiz);
      },
    }),
  );
  return fieldset;
}

function renderForm(quiz) {
  $("f-quiz-title").value = quiz.title || "";
  $("f-questions").replaceChildren(...(quiz.questions || []).map(questionEditor));
}

/** The quiz as the form shows it; empty choice boxes are dropped (the server wants 2–6 real ones). */
function readForm() {
  const questions = [...document.querySelectorAll("#f-questions .qedit")].map((fs) => {
    const rows = [...fs.querySelectorAll(".choice-row")];
    const choices = [];
    const correct = [];
    for (const row of rows) {
      const text = row.querySelector(".q-choice").value.trim();
      if (!text) continue;
      if (row.querySelector(".q-correct").checked) correct.push(choices.length);
      choices.push(text);
    }
    return {
      text: fs.querySelector(".q-text").value.trim(),
      choices,
      correct,
      time_limit_ms: Math.round(Number(fs.querySelector(".q-time").value || 20) * 1000),
      points: Math.round(Number(fs.querySelector(".q-points").value || 0)),
    };
  });
  return { title: $("f-quiz-title").value.trim(), questions };
}

function switchTab(tab) {
  if (tab === editorTab) return;
  const error = $("create-error");
  error.textContent = "";
  if (tab === "json") {
    $("quiz-json").value = JSON.stringify(readForm(), null, 2);
  } else {
    try {
      renderForm(JSON.parse($("quiz-json").value));
    } catch (err) {
      error.textContent = `The JSON doesn't parse, so the form can't show it: ${err.message}`;
      return;
    }
  }
  editorTab = tab;
  $("tab-form").setAttribute("aria-selected", String(tab === "form"));
  $("tab-json").setAttribute("aria-selected", String(tab === "json"));
  $("panel-form").hidden = tab !== "form";
  $("panel-json").hidden = tab !== "json";
}

async function createRoom() {
  const error = $("create-error");
  error.textContent = "";
  let quiz;
  if (editorTab === "json") {
    try {
      quiz = JSON.parse($("quiz-json").value);
    } catch (err) {
      error.textContent = `That isn't valid JSON: ${err.message}`;
      return;
    }
  } else {
    quiz = readForm();
  }
  const button = $("create");
  button.disabled = true;
  const adminToken = $("admin-token").value.trim() || undefined;
  const result = await api("POST", "/api/rooms", { body: { quiz }, token: adminToken });
  button.disabled = false;
  if (result.status === 401 || result.status === 403) {
    $("admin-wrap").hidden = false;
    $("admin-token").focus();
    error.textContent = adminToken ? "That admin token isn't right." : "Enter the server's admin token to create a game.";
    return;
  }
  if (!result.ok) {
    error.textContent = result.status === 422
      ? errorMessage(result, "The quiz needs a fix")
      : errorMessage(result, "Couldn't create the game");
    return;
  }
  const d = result.data;
  state.room = {
    pin: String(d.pin), host_token: d.host_token, host_ws_url: d.host_ws_url, join_url: d.join_url,
    title: quiz.title, question_count: (quiz.questions || []).length,
  };
  session.set(SESSION_KEY, state.room);
  startHosting();
}

// --- hosting ---------------------------------------------------------------------------------------------------

/** Open the host socket; `relocate` asks for host_ws_url first (after a reload, the coordinator may have moved). */
function startHosting(relocate = false) {
  const room = state.room;
  $("h-title").textContent = room.title || "";
  $("h-title").hidden = !room.title;
  $("h-pin-badge").textContent = `PIN ${room.pin}`;
  $("h-pin-badge").hidden = false;
  $("h-end").hidden = false;
  $("l-pin").textContent = room.pin.replace(/^(\d{3})(\d{3})$/, "$1 $2");
  const link = joinLink();
  $("l-link").textContent = link.replace(/^https?:\/\//, "");
  $("l-link").href = link;
  setCount(state.count);
  if (state.conn) state.conn.stop();
  state.conn = new RoomConnection({
    url: room.host_ws_url, token: room.host_token, clock, onMessage: handle, onStatus: showStatus, onEnd: ended,
    locate: () => locateHost(room.pin, room.host_token),
    onUrl: (url) => {
      room.host_ws_url = url;
      if (state.room === room) session.set(SESSION_KEY, room);
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

// --- room events -----------------------------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome":
    case "state": return applyState(msg);
    case "players": return playersChanged(msg);
    case "answers": return answersChanged(msg);
    case "question": return showQuestion(msg);
    case "result": return showReveal(msg); // the host's copy: correct answer and counts, no score
    case "leaderboard": return showReveal(msg);
    case "finished": return showFinished(msg);
    case "error": return showError(msg.message || msg.code);
    default: return undefined;
  }
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
  if (s.title) $("h-title").textContent = s.title;
  state.phase = s.phase || state.phase;
  if (s.question && typeof s.question === "object") showQuestion(s.question);
  if (s.phase === "lobby") setScreen("lobby");
  else if (s.phase === "question" && state.screen !== "question" && state.question) setScreen("question");
  else if (s.phase === "question" && !state.question) showWaiting("Question in progress…");
  else if (s.phase === "reveal" && state.screen !== "reveal") {
    showWaiting("Question closed.");
    loadLeaderboard();
  }
  else if (s.phase === "finished" && state.screen !== "finished") loadFinalPodium();
  updateNextLabel(s.question_index);
}

function showWaiting(text) {
  $("hr-text").textContent = text;
  setScreen("reveal");
}

function playersChanged(msg) {
  for (const p of msg.joined || []) {
    if (p && typeof p === "object") state.players.set(String(p.player_id), p.nickname || String(p.player_id));
  }
  for (const p of msg.left || []) state.players.delete(String(p && typeof p === "object" ? p.player_id : p));
  setCount(typeof msg.count === "number" ? msg.count : state.players.size);
  renderPlayers();
}

function renderPlayers() {
  const items = [...state.players].map(([id, nickname]) =>
    el(
      "li",
      { "data-player": id },
      el("span", { text: nickname }),
      el("button", {
        type: "button", title: `Remove ${nickname}`, "aria-label": `Remove ${nickname}`, text: "×",
        onclick: (e) => kick(id, nickname, e.currentTarget),
      }),
    ),
  );
  $("l-players").replaceChildren(...items);
  $("l-empty").hidden = state.players.size > 0 || state.count > 0;
}

async function kick(playerId, nickname, button) {
  button.disabled = true;
  const result = await api("DELETE", `/api/rooms/${state.room.pin}/players/${encodeURIComponent(playerId)}`, {
    token: state.room.host_token,
  });
  if (!result.ok && result.status !== 404) {
    button.disabled = false;
    $("l-error").textContent = errorMessage(result, `Couldn't remove ${nickname}`);
    return;
  }
  state.players.delete(playerId);
  renderPlayers();
}

function answersChanged(msg) {
  if (state.question && msg.question !== state.question.index) return;
  $("hq-answered").textContent = `${msg.answered} / ${msg.players} answered`;
}

function showQuestion(q) {
  state.question = q;
  state.phase = "question";
  $("hq-count").textContent = `Question ${q.index + 1} of ${state.room.question_count || "?"}`;
  $("hq-text").textContent = q.text;
  $("hq-answered").textContent = `0 / ${state.count} answered`;
  $("hq-error").textContent = "";
  $("hq-close").disabled = false;
  const correct = new Set(q.correct || []);
  $("hq-choices").replaceChildren(
    ...q.choices.map((text, i) =>
      el(
        "div",
        {
          class: `choice button c${i % 6}${correct.has(i) ? " correct" : ""}`,
          role: "listitem",
          "data-choice": String(i),
          "data-correct": correct.has(i) ? "true" : "false",
          "aria-label": `${shapeName(i)}: ${text}${correct.has(i) ? " (correct)" : ""}`,
        },
        shapeIcon(i),
        el("span", { class: "label", text }),
        correct.has(i) ? el("span", { class: "mark", "aria-hidden": "true", text: "✓" }) : null,
      ),
    ),
  );
  if (state.stopTimer) state.stopTimer();
  state.stopTimer = countdown({
    clock, deadlineMs: q.deadline_ms, limitMs: q.time_limit_ms, textEl: $("hq-timer"), barEl: $("hq-bar"),
  });
  setScreen("question");
}

function showReveal(msg) {
  if (state.stopTimer) state.stopTimer();
  state.phase = "reveal";
  const q = state.question && state.question.index === msg.question ? state.question : null;
  const counts = msg.counts || [];
  const max = Math.max(1, ...counts);
  const correct = new Set(msg.correct || (q && q.correct) || []);
  $("hr-text").textContent = q ? q.text : `Question ${msg.question + 1}`;
  $("hr-bars").replaceChildren(
    ...counts.map((n, i) => {
      const label = q ? q.choices[i] : `Choice ${i + 1}`;
      return el(
        "div",
        { class: `bar${correct.has(i) ? " correct" : ""}`, "data-choice": String(i) },
        el("div", { class: "t" }, shapeIcon(i), el("span", { text: `${label}${correct.has(i) ? " ✓" : ""}` })),
        el(
          "div",
          { class: "track" },
          el("span", { class: `fill c${i % 6}`, style: `width:${Math.round((n / max) * 85)}%` }),
          el("span", { class: "n", text: String(n), "aria-label": `${n} answers` }),
        ),
      );
    }),
  );
  if (typeof msg.answered === "number") {
    $("hr-summary").textContent = `${msg.answered} of ${msg.players} players answered.`;
  }
  if (msg.top) renderStandings($("hr-board"), msg.top);
  else if (state.screen !== "reveal") $("hr-board").replaceChildren();
  updateNextLabel(msg.question);
  setScreen("reveal");
}

function updateNextLabel(index) {
  const last = typeof index === "number" && index + 1 >= state.room.question_count;
  $("hr-next").textContent = last ? "Show podium" : "Next question";
}

function showFinished(msg) {
  if (state.stopTimer) state.stopTimer();
  state.phase = "finished";
  renderPodium($("hf-podium"), msg.podium || []);
  $("h-end").hidden = true;
  setScreen("finished");
}

/** After a reload during a reveal, the host socket has no leaderboard to replay: ask the HTTP API. */
async function loadLeaderboard() {
  const result = await api("GET", `/api/rooms/${state.room.pin}/leaderboard?limit=10`, {
    token: state.room.host_token,
  });
  if (result.ok && result.data && Array.isArray(result.data.entries)) renderStandings($("hr-board"), result.data.entries);
}

async function loadFinalPodium() {
  const result = await api("GET", `/api/rooms/${state.room.pin}/leaderboard?limit=3`, {
    token: state.room.host_token,
  });
  showFinished({ podium: (result.ok && result.data && result.data.entries) || [] });
}

function showError(text) {
  const target = { lobby: "l-error", question: "hq-error", reveal: "hr-error", finished: "hf-error" }[state.screen];
  if (target) $(target).textContent = text;
}

// --- commands --------------------------------------------------------------------------------------------------

async function command(name, button) {
  if (button) button.disabled = true;
  const result = await api("POST", `/api/rooms/${state.room.pin}/${name}`, { token: state.room.host_token });
  if (button) button.disabled = false;
  if (!result.ok) {
    // 409 bad_phase after a retry means the room already moved on; the socket will show where it is.
    if (result.status !== 409) showError(errorMessage(result, `Couldn't ${name}`));
    return null;
  }
  return result.data;
}

function setLocked(locked) {
  state.locked = locked;
  $("l-lock").setAttribute("aria-pressed", String(locked));
  $("l-lock").textContent = locked ? "Unlock room" : "Lock room";
}

async function downloadCsv() {
  const button = $("hf-csv");
  button.disabled = true;
  const result = await api("GET", `/api/rooms/${state.room.pin}/results`, {
    token: state.room.host_token, accept: "text/csv",
  });
  button.disabled = false;
  if (!result.ok || !result.response) {
    $("hf-error").textContent = errorMessage(result, "Couldn't download the results");
    return;
  }
  const blob = await result.response.blob();
  const url = URL.createObjectURL(new Blob([blob], { type: "text/csv" }));
  const link = el("a", { href: url, download: `quizroom-${state.room.pin}-results.csv`, hidden: true });
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

// --- start -----------------------------------------------------------------------------------------------------

function boot() {
  renderForm(SAMPLE_QUIZ);
  $("quiz-json").value = JSON.stringify(SAMPLE_QUIZ, null, 2);
  $("tab-form").addEventListener("click", () => switchTab("form"));
  $("tab-json").addEventListener("click", () => switchTab("json"));
  $("f-add").addEventListener("click", () => {
    const quiz = readForm();
    quiz.questions.push({ text: "", choices: ["", "", "", ""], correct: [0], time_limit_ms: 20000, points: 1000 });
    renderForm(quiz);
    const inputs = document.querySelectorAll("#f-questions .q-text");
    inputs[inputs.length - 1].focus();
  });
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
  $("hr-next").addEventListener("click", (e) => command("next", e.currentTarget));
  $("h-end").addEventListener("click", (e) => {
    if (window.confirm("End the game for everyone now?")) command("end", e.currentTarget);
  });
  $("hf-csv").addEventListener("click", downloadCsv);
  $("hf-new").addEventListener("click", newGame);

  const saved = session.get(SESSION_KEY);
  if (saved && saved.host_token && saved.host_ws_url) {
    state.room = saved;
    setScreen("lobby");
    startHosting(true);
    return;
  }
  setScreen("create");
}

window.quizroomTest = {
  dropSocket: () => { if (state.conn && state.conn.ws) state.conn.ws.close(4000, "test drop"); },
  socketOpen: () => Boolean(state.conn && state.conn.ws && state.conn.greeted),
  welcomes: () => (state.conn ? state.conn.welcomes : 0),
  state: () => ({ screen: state.screen, phase: state.phase, count: state.count, players: [...state.players] }),
};

boot();
