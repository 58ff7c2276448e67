// quizroom — the player page: join with PIN and nickname, then play over the player socket.
// The session (pin, token, ws_url) lives in sessionStorage, so a reload or a dropped network resumes the game
// where the server says it is (`welcome`, which carries whatever the screen shows in every phase), without the
// player doing anything. A kick is remembered in localStorage, so a reload shows "removed" again, and every join
// carries this browser's device id, which the kick bars from the room (docs/protocol.md, "Moderation"). Every reconnect (and a reload) first
// asks POST /api/rooms/{pin}/resume where the socket must go: with sharding, the worker holding the player's shard
// can change (docs/protocol.md, "Sharding extensions"; a socket sent to the wrong worker is closed with 4421).

import {
  api, countdown, deviceId, el, errorMessage, formatScore, ordinal, renderPodium, renderStandings, resumePlayer,
  RoomConnection, ServerClock, session, shapeIcon, shapeName, showScreen, stored,
} from "./common.js";
import { loadAhead, picture, pictureReady, preload, questionImages, seen } from "./images.js";

const SESSION_KEY = "quizroom.player";
const KICKED_KEY = "quizroom.kicked"; // {pin: {nickname, at}}: rooms this browser was removed from
const KICKED_KEEP_MS = 24 * 3600 * 1000;
const NICKNAME_MAX = 24;
const $ = (id) => document.getElementById(id);

const screens = {
  join: $("screen-join"),
  lobby: $("screen-lobby"),
  ready: $("screen-ready"),
  question: $("screen-question"),
  result: $("screen-result"),
  finished: $("screen-finished"),
  ended: $("screen-ended"),
};

const clock = new ServerClock();
const state = {
  session: null, // {pin, nickname, player_id, token, ws_url}
  conn: null,
  screen: null,
  title: "",
  questionCount: 0,
  score: 0,
  rank: null,
  streak: 0,
  question: null, // the open question event
  answered: false,
  selected: new Set(),
  pending: null, // an answer sent but not yet acked: {question, choice | choices | text | value}
  sent: null, // the last answer sent (what "locked in" shows)
  order: null, // a puzzle's items as the player has arranged them (displayed indexes)
  stopTimer: null,
  finished: false,
};

// --- join ------------------------------------------------------------------------------------------------------

const JOIN_ERRORS = {
  404: "There's no game with that PIN. Check the number on the big screen.",
  409: "Someone in this game already has that nickname. Pick another one.",
  422: "That nickname won't work: use 1–24 letters, digits or symbols (no invisible characters).",
  423: "This game isn't taking new players (it's locked, full or already over).",
  kicked: "The host removed you from this game.",
  429: "Too many tries from your network. Wait a minute and try again.",
};

function showJoin(message = "") {
  stopConnection();
  showing += 1;
  showScreen(screens, "join");
  state.screen = "join";
  $("me-name").hidden = true;
  $("me-score").hidden = true;
  $("join-error").textContent = message;
  const pin = $("pin");
  (pin.value ? $("nickname") : pin).focus();
}

async function join(event) {
  event.preventDefault();
  const pin = $("pin").value.replace(/\D/g, "");
  const nickname = $("nickname").value.trim();
  const error = $("join-error");
  if (pin.length !== 6) {
    error.textContent = "The game PIN has 6 digits.";
    $("pin").focus();
    return;
  }
  if (!nickname) {
    error.textContent = "Pick a nickname.";
    $("nickname").focus();
    return;
  }
  const visible = visibleLength(nickname);
  if (visible > NICKNAME_MAX) {
    error.textContent = `That nickname is ${visible} characters long; the limit is ${NICKNAME_MAX}. Shorten it a little.`;
    $("nickname").focus();
    return;
  }
  error.textContent = "";
  const button = $("join-button");
  button.disabled = true;
  button.textContent = "Joining…";
  const body = { nickname, device: deviceId() };
  let result = await api("POST", `/api/rooms/${encodeURIComponent(pin)}/players`, { body });
  // 429: a whole class behind one network joins faster than the server lets one address (Retry-After says when).
  for (let tries = 0; result.status === 429 && tries < 5; tries += 1) {
    const wait = Math.min(60, Number(result.response && result.response.headers.get("Retry-After")) || 2);
    error.textContent = `Lots of players are joining from your network. Trying again in ${wait} s…`;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    result = await api("POST", `/api/rooms/${encodeURIComponent(pin)}/players`, { body });
  }
  error.textContent = "";
  button.disabled = false;
  button.textContent = "Enter";
  if (!result.ok) {
    const err = (result.data && result.data.error) || {};
    if (result.status === 423 && err.code === "kicked" && /pick another name/.test(err.message || "")) {
      error.textContent = "The host removed a player of that name from this game. Pick another name.";
      $("nickname").focus();
      return;
    }
    if (result.status === 423 && err.code === "kicked") {  // this device was removed from this game
      rememberKick(pin, nickname);
      showRemoved();
      return;
    }
    let text = JOIN_ERRORS[result.status] || errorMessage(result, "Couldn't join");
    if (result.status === 422 && /at most 24/.test(err.message || "")) {
      text = `That nickname is too long: the limit is ${NICKNAME_MAX} characters. Shorten it a little.`;
    } else if (result.status === 422 && /not allowed/.test(err.message || "")) {
      text = "That nickname isn't allowed here. Pick a friendlier one.";
    } else if (result.status === 422 && err.message) {
      text = `${JOIN_ERRORS[422]}\n(${err.message})`;
    }
    error.textContent = text;
    (result.status === 404 ? $("pin") : $("nickname")).focus();
    return;
  }
  const { player_id, token, ws_url } = result.data;
  // The server's form of the name: NFKC, trimmed, or a generated one in a room with friendly names.
  const shown = result.data.nickname || nickname;
  state.session = { pin, nickname: shown, player_id, token, ws_url };
  session.set(SESSION_KEY, state.session);
  connect();
}

// --- connection ------------------------------------------------------------------------------------------------

/** Open the player socket; `relocate` asks resume first (a saved session may point at a worker that is gone). */
function connect(relocate = false) {
  stopConnection();
  const s = state.session;
  $("me-name").textContent = s.nickname;
  $("me-name").hidden = false;
  state.conn = new RoomConnection({
    url: s.ws_url,
    token: s.token,
    clock,
    onMessage: handle,
    onStatus: showStatus,
    onEnd: ended,
    locate: () => resumePlayer(s.pin, s.token),
    onUrl: (url) => {
      s.ws_url = url;
      if (state.session === s) session.set(SESSION_KEY, s);
    },
  });
  state.conn.start(relocate);
}

function stopConnection() {
  if (state.conn) state.conn.stop();
  state.conn = null;
  showStatus("open");
}

let statusTimer = null;
function showStatus(status) {
  const banner = $("conn");
  clearTimeout(statusTimer);
  if (status === "open") {
    banner.hidden = true;
    banner.textContent = "";
    return;
  }
  // A quick reconnect should go unnoticed: only say something if it takes a while.
  statusTimer = setTimeout(() => {
    banner.hidden = false;
    banner.className = status === "reconnecting" ? "conn bad" : "conn";
    banner.textContent = status === "reconnecting" ? "Connection lost — reconnecting…" : "Connecting…";
  }, status === "reconnecting" ? 1500 : 600);
}

const END_TEXT = {
  4401: ["Session expired", "Please join the game again."],
  4403: ["Removed from the game", "The host removed you from this game."],
  4404: ["Game not found", "This game no longer exists."],
  4409: ["Opened elsewhere", "This game is now open in another tab or window, so this one stopped."],
  4410: ["Game over", "This game has finished."],
  4429: ["Disconnected", "Too many messages — you were disconnected."],
  1008: ["Disconnected", "The server closed the connection."],
  1009: ["Disconnected", "The server closed the connection."],
};

/** Length as a reader counts it: a family emoji (several code points joined by ZWJ) is one character. */
function visibleLength(text) {
  if (typeof Intl !== "undefined" && Intl.Segmenter) {
    return [...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text)].length;
  }
  return [...text].length;
}

function kicks() {
  const all = stored.get(KICKED_KEY);
  if (!all || typeof all !== "object") return {};
  const now = Date.now();
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v && now - v.at < KICKED_KEEP_MS));
}

function rememberKick(pin, nickname) {
  stored.set(KICKED_KEY, { ...kicks(), [pin]: { nickname: nickname || "", at: Date.now() } });
}

function showRemoved() {
  stopConnection();
  $("e-title").textContent = END_TEXT[4403][0];
  $("e-text").textContent = END_TEXT[4403][1];
  $("e-resume").hidden = true;
  setScreen("ended");
}

function ended(code) {
  state.conn = null;
  showStatus("open");
  stopTimer();
  if (code === 4403 && state.session) rememberKick(state.session.pin, state.session.nickname);
  if (code === 4401) {
    session.remove(SESSION_KEY);
    showJoin(END_TEXT[4401].join(". "));
    return;
  }
  if (code !== 4409) session.remove(SESSION_KEY);
  if (code === 4410 && state.finished) return; // the podium stays up
  const [title, text] = END_TEXT[code] || ["Disconnected", `The connection closed (${code}).`];
  $("e-title").textContent = title;
  $("e-text").textContent = text;
  $("e-resume").hidden = code !== 4409;
  setScreen("ended");
}

// --- server messages -------------------------------------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case "welcome": return welcome(msg);
    case "get_ready": return showReady(msg);
    case "question": return openQuestion(msg, false);
    case "answer_ack": return acked(msg);
    case "result": return showResult(msg);
    case "leaderboard": return showLeaderboard(msg);
    case "finished": return finished(msg);
    case "error": return refused(msg);
    default: return undefined; // pong and future extensions
  }
}

function welcome(msg) {
  loadAhead(msg.images); // the quiz's next pictures, from the lobby on
  state.title = msg.title;
  state.questionCount = msg.question_count;
  setScore(msg.score, msg.rank);
  if (typeof msg.streak === "number") state.streak = msg.streak;
  $("me-name").textContent = msg.nickname;
  $("lobby-quiz").textContent = msg.title;
  if (msg.phase === "question" && msg.question) {
    const sameQuestion = state.question && state.question.index === msg.question.index;
    if (msg.answered && msg.your_choice !== undefined && msg.your_choice !== null) {
      // A reload lost the page's memory of the pick: the server's copy restores "You picked" and the ticks.
      state.question = msg.question;
      const kind = kindOf(msg.question);
      if (kind === "type_answer") state.sent = { question: msg.question.index, text: msg.your_choice };
      else if (kind === "slider") state.sent = { question: msg.question.index, value: msg.your_choice };
      else if (kind === "puzzle") state.sent = { question: msg.question.index, choices: msg.your_choice };
      else state.selected = new Set(Array.isArray(msg.your_choice) ? msg.your_choice : [msg.your_choice]);
      openQuestion(msg.question, true, true);
    } else {
      openQuestion(msg.question, msg.answered, sameQuestion);
    }
    // An answer tapped while the socket was down goes out now, if the server has none from us yet.
    if (!msg.answered && state.pending && state.pending.question === msg.question.index) sendAnswer(state.pending);
  } else if (msg.phase === "lobby") {
    setScreen("lobby");
  } else if (msg.phase === "reveal") {
    if (msg.result) showResult(msg.result);
    if (msg.leaderboard) showLeaderboard(msg.leaderboard);
    if (state.screen !== "result") {
      showVerdict(null);
      setScreen("result");
    }
  } else if (msg.phase === "finished") {
    state.finished = true;
    $("f-me").textContent = `You finished ${ordinal(msg.rank)} with ${formatScore(msg.score)} points.`;
    setScreen("finished");
  }
  if (msg.get_ready) showReady(msg.get_ready);
}

function showReady(msg) {
  preload(msg.images); // the pause is when the question's pictures load: nobody is timed while they do
  stopTimer();
  $("g-count").textContent = `Question ${msg.index + 1} of ${msg.question_count || state.questionCount || "?"}`;
  $("g-text").textContent = msg.text || "";
  state.stopTimer = countdown({ clock, deadlineMs: msg.opens_at_ms, limitMs: msg.intro_ms, textEl: $("g-timer") });
  setScreen("ready");
}

function setScore(score, rank) {
  state.score = score ?? state.score;
  state.rank = rank ?? state.rank;
  const badge = $("me-score");
  badge.hidden = false;
  badge.textContent = `${formatScore(state.score)} pts`;
}

let showing = 0; // bumped by every screen change: a question still waiting for its pictures shows only if nothing else came first
const shownLog = []; // for the browser tests: each question as it was shown, with whether its pictures were decoded

function setScreen(name) {
  showing += 1;
  if (state.screen === name) return;
  state.screen = name;
  showScreen(screens, name);
}

// --- question --------------------------------------------------------------------------------------------------

function openQuestion(q, answered, keepSelection = false) {
  state.question = q;
  state.answered = Boolean(answered);
  if (!keepSelection) {
    state.selected = new Set();
    if (!state.pending || state.pending.question !== q.index) state.pending = null;
  }
  $("q-count").textContent = `Question ${q.index + 1} of ${state.questionCount || "?"}`;
  $("q-text").textContent = q.text;
  $("q-image").replaceChildren(...(q.image ? [picture(q.image, "The question's picture", "q-picture")] : []));
  $("q-image").hidden = !q.image;
  $("q-hint").textContent = hintFor(q);
  $("q-hint").hidden = !hintFor(q);
  $("q-submit").hidden = !needsSubmit(q);
  $("q-error").textContent = "";
  if (!BY_CHOICE.has(kindOf(q))) {
    renderInputs(q, keepSelection);
  } else {
    renderChoices(q);
  }
  updateSubmit();
  showLocked(state.answered);
  // The question (and its countdown) shows once its pictures are decoded: preloaded during "get ready", that is
  // at once; on a phone that could not preload, as soon as they arrive (docs/protocol.md, "Images").
  const ticket = ++showing;
  const show = (decoded) => {
    if (ticket !== showing) return; // another screen came first
    stopTimer();
    state.stopTimer = countdown({
      clock,
      deadlineMs: q.deadline_ms,
      limitMs: q.time_limit_ms,
      textEl: $("q-timer"),
      barEl: $("q-bar"),
      onDone: () => {
        setInputsDisabled(true);
        $("q-submit").disabled = true;
      },
    });
    const images = [...$("screen-question").querySelectorAll("img[data-picture]")];
    shownLog.push({
      index: q.index, decoded, at: clock.now(), pictures: images.map((img) => img.complete && img.naturalWidth > 0),
    });
    setScreen("question");
    seen(questionImages(q));
  };
  if (questionImages(q).length) pictureReady($("screen-question")).then(show);
  else show(true);
}

// --- question types (docs/protocol.md, *Question types*) ------------------------------------------------------

const BY_CHOICE = new Set(["choice", "true_false", "poll"]);

function kindOf(q) {
  return (q && q.question_type) || "choice";
}

/** Several choices, a typed answer, a slider and a puzzle are sent with the submit button; one tap sends the rest. */
function needsSubmit(q) {
  return Boolean(q && (q.multi || !BY_CHOICE.has(kindOf(q))));
}

function hintFor(q) {
  if (q.multi) return "Pick every correct answer, then submit.";
  return {
    poll: "No right answer — just vote.",
    puzzle: "Put them in order, first at the top, then submit.",
    slider: "Slide to your answer, then submit.",
    type_answer: "Type your answer, then submit.",
  }[kindOf(q)] || "";
}

function setInputsDisabled(disabled) {
  for (const node of $("q-choices").querySelectorAll("button, input")) node.disabled = disabled;
}

/** The answer the inputs of a typed, slider or puzzle question hold now (null: nothing to send yet). */
function currentAnswer(q) {
  const kind = kindOf(q);
  if (kind === "type_answer") {
    const text = $("q-typed") ? $("q-typed").value.trim() : "";
    return text ? { question: q.index, text } : null;
  }
  if (kind === "slider") return { question: q.index, value: Number($("q-slider").value) };
  if (kind === "puzzle") return { question: q.index, choices: [...state.order] };
  return state.selected.size ? { question: q.index, choices: [...state.selected].sort((a, b) => a - b) } : null;
}

function renderInputs(q, keep) {
  const kind = kindOf(q);
  const box = $("q-choices");
  box.className = `choices ${kind}`;
  if (kind === "type_answer") {
    const previous = keep && $("q-typed") ? $("q-typed").value : "";
    const input = el("input", {
      id: "q-typed",
      type: "text",
      maxlength: String(q.max_length || 80),
      autocomplete: "off",
      autocapitalize: "off",
      spellcheck: "false",
      enterkeyhint: "send",
      "aria-label": "Your answer",
      oninput: updateSubmit,
      onkeydown: (e) => { if (e.key === "Enter") submitMulti(); },
    });
    input.value = previous;
    box.replaceChildren(input);
  } else if (kind === "slider") {
    const middle = q.min + Math.round((q.max - q.min) / 2 / q.step) * q.step;
    const previous = keep && $("q-slider") ? $("q-slider").value : String(middle);
    const output = el("output", { id: "q-slider-value", for: "q-slider", class: "slider-value" });
    const input = el("input", {
      id: "q-slider", type: "range", min: String(q.min), max: String(q.max), step: String(q.step),
      "aria-label": "Your answer", oninput: () => { output.textContent = input.value; },
    });
    input.value = previous;
    output.textContent = input.value;
    box.replaceChildren(
      output,
      input,
      el("div", { class: "slider-ends muted", "aria-hidden": "true" }, el("span", { text: String(q.min) }), el("span", { text: String(q.max) })),
    );
  } else if (kind === "puzzle") {
    if (!keep || !state.order || state.order.length !== q.choices.length) state.order = q.choices.map((_, i) => i);
    renderPuzzle(q);
  }
}

function renderPuzzle(q) {
  const n = state.order.length;
  const rows = state.order.map((item, place) => el(
    "li",
    { class: "puzzle-item", "data-item": String(item) },
    el("span", { class: "label", text: q.choices[item] }),
    el("button", {
      type: "button", class: "move", "aria-label": `Move ${q.choices[item]} up`, disabled: place === 0,
      onclick: () => movePuzzle(place, -1),
    }, "↑"),
    el("button", {
      type: "button", class: "move", "aria-label": `Move ${q.choices[item]} down`, disabled: place === n - 1,
      onclick: () => movePuzzle(place, 1),
    }, "↓"),
  ));
  $("q-choices").replaceChildren(el("ol", { id: "q-puzzle", class: "puzzle" }, rows));
}

function movePuzzle(place, by) {
  const q = state.question;
  if (!q || state.answered) return;
  const to = place + by;
  if (to < 0 || to >= state.order.length) return;
  [state.order[place], state.order[to]] = [state.order[to], state.order[place]];
  renderPuzzle(q);
  const moved = $("q-puzzle").children[to].querySelector(by < 0 ? "button.move" : "button.move:last-child");
  if (moved && !moved.disabled) moved.focus();
}

/** What the "locked in" screen says the player sent. */
function describeAnswer(q, answer) {
  if (!answer) return "";
  if (answer.text !== undefined) return `You answered: ${answer.text}`;
  if (answer.value !== undefined) return `You picked: ${answer.value}`;
  if (kindOf(q) === "puzzle") return `Your order: ${answer.choices.map((i) => q.choices[i]).join(" → ")}`;
  const picked = (answer.choices || [answer.choice]).map((i) => q.choices[i]).filter(Boolean);
  return picked.length ? `You picked: ${picked.join(", ")}` : "";
}

function renderChoices(q) {
  const pictures = q.choice_images || [];
  $("q-choices").className = "choices";
  const buttons = q.choices.map((text, i) => {
    const button = el(
      "button",
      {
        type: "button",
        class: `choice c${i % 6}`,
        "data-choice": String(i),
        "aria-label": `${shapeName(i)}: ${text}`,
        "aria-pressed": q.multi ? String(state.selected.has(i)) : undefined,
        onclick: () => choose(i),
      },
      shapeIcon(i),
      pictures[i] ? picture(pictures[i], text, "choice-picture") : null,
      el("span", { class: pictures[i] ? "label caption" : "label", text }),
    );
    return button;
  });
  $("q-choices").replaceChildren(...buttons);
  $("q-choices").classList.toggle("pictures", pictures.some(Boolean));
}

function stopTimer() {
  if (state.stopTimer) state.stopTimer();
  state.stopTimer = null;
}

function choose(i) {
  const q = state.question;
  if (!q || state.answered || !BY_CHOICE.has(kindOf(q))) return;
  if (q.multi) {
    if (state.selected.has(i)) state.selected.delete(i);
    else state.selected.add(i);
    const button = $("q-choices").children[i];
    button.setAttribute("aria-pressed", String(state.selected.has(i)));
    updateSubmit();
    return;
  }
  state.selected = new Set([i]);
  sendAnswer({ question: q.index, choice: i });
}

function submitMulti() {
  const q = state.question;
  if (!q || state.answered) return;
  const answer = currentAnswer(q);
  if (!answer) return;
  state.sent = answer;
  sendAnswer(answer);
}

function updateSubmit() {
  const q = state.question;
  $("q-submit").disabled = state.answered || !q || !currentAnswer(q);
}

function sendAnswer(answer) {
  state.pending = answer;
  state.sent = answer;
  setInputsDisabled(true);
  $("q-submit").disabled = true;
  // If the socket is down the answer waits in `pending` and goes out after the reconnect's welcome.
  state.conn && state.conn.send({ type: "answer", ...answer });
}

function acked(msg) {
  if (!state.question || msg.question !== state.question.index) return;
  if (msg.accepted) {
    state.answered = true;
    state.pending = null;
    showLocked(true);
    $("q-locked-title").focus({ preventScroll: true });
    announce("Answer locked in.");
  } else {
    state.pending = null;
    showLocked(false);
    $("q-error").textContent = "Your answer wasn't accepted.";
  }
}

function refused(msg) {
  const texts = {
    too_late: "Too late — time was up.",
    bad_phase: "This question is already closed.",
    wrong_question: "That question is already over.",
    bad_choice: "That choice isn't valid.",
    rate_limited: "Slow down a little.",
  };
  if (state.pending) {
    state.pending = null;
    if (msg.code !== "too_late") showLocked(false);
  }
  $("q-error").textContent = texts[msg.code] || msg.message || "Something went wrong.";
}

function showLocked(locked) {
  const q = state.question;
  $("q-choices").hidden = locked;
  $("q-submit").hidden = locked || !needsSubmit(q);
  $("q-hint").hidden = locked || !(q && hintFor(q));
  $("q-locked").hidden = !locked;
  if (locked && q) {
    const answer = state.sent && state.sent.question === q.index ? state.sent
      : { question: q.index, choices: [...state.selected] };
    $("q-locked-choice").textContent = describeAnswer(q, answer);
  } else if (q && clock.now() < q.deadline_ms) {
    setInputsDisabled(false);
    if (kindOf(q) === "puzzle") renderPuzzle(q);  // the first and last arrows stay disabled
    updateSubmit();
  }
}

// --- reveal and end --------------------------------------------------------------------------------------------

/** Say something to screen readers without moving focus. */
function announce(text) {
  const region = $("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

function showResult(msg) {
  stopTimer();
  state.streak = msg.streak;
  state.pending = null;
  setScore(msg.score, msg.rank);
  showVerdict(msg);
  $("r-board-wrap").hidden = true;
  setScreen("result");
  announce(`${$("r-title").textContent} ${$("r-points").textContent}. Score ${formatScore(state.score)}, rank ${ordinal(state.rank)}.`);
}

function showVerdict(msg) {
  const verdict = $("r-verdict");
  if (!msg) {
    verdict.className = "verdict none";
    $("r-title").textContent = "Question closed";
    $("r-points").textContent = "";
    $("r-points").hidden = true;
  } else {
    const noAnswer = msg.your_choice === null || msg.your_choice === undefined;
    if (msg.is_correct === null) {
      // A poll has no right answer: no verdict, no points.
      verdict.className = "verdict none";
      $("r-title").textContent = noAnswer ? "Poll closed" : "Thanks for voting!";
      $("r-points").hidden = true;
    } else {
      verdict.className = `verdict ${msg.is_correct ? "ok" : noAnswer ? "none" : "bad"}`;
      $("r-title").textContent = msg.is_correct ? "Correct!" : noAnswer ? "Time's up" : "Not quite";
      $("r-points").hidden = false;
      $("r-points").textContent = `+ ${formatScore(msg.points)} points`;
    }
  }
  $("r-score").textContent = formatScore(state.score);
  $("r-rank").textContent = ordinal(state.rank);
  $("r-streak").textContent = String(state.streak || 0);
  const behind = $("r-behind");
  if (!msg) {
    behind.hidden = true;
  } else if (msg.behind) {
    const who = msg.behind.nickname ? ` behind ${msg.behind.nickname}` : " behind the next player";
    behind.textContent = `You're ${ordinal(msg.rank)}, ${formatScore(msg.behind.points)} points${who}.`;
    behind.hidden = false;
  } else {
    behind.textContent = msg.rank === 1 ? "You're in the lead!" : "";
    behind.hidden = msg.rank !== 1;
  }
}

function showLeaderboard(msg) {
  stopTimer();
  renderStandings($("r-board"), msg.top || [], state.session && state.session.nickname);
  $("r-board-wrap").hidden = false;
  if (state.screen !== "result") {
    showVerdict(null);
    setScreen("result");
  }
}

function finished(msg) {
  stopTimer();
  state.finished = true;
  setScore(msg.score, msg.rank);
  renderPodium($("f-podium"), msg.podium || []);
  $("f-me").textContent = msg.rank
    ? `You finished ${ordinal(msg.rank)} with ${formatScore(msg.score)} points.`
    : `You scored ${formatScore(msg.score)} points.`;
  setScreen("finished");
  session.remove(SESSION_KEY);
}

// --- start -----------------------------------------------------------------------------------------------------

function leave() {
  session.remove(SESSION_KEY);
  state.session = null;
  state.finished = false;
  state.question = null;
  showJoin();
}

function boot() {
  $("join-form").addEventListener("submit", join);
  $("pin").addEventListener("input", (e) => { e.target.value = e.target.value.replace(/\D/g, "").slice(0, 6); });
  $("q-submit").addEventListener("click", submitMulti);
  $("f-again").addEventListener("click", leave);
  $("e-join").addEventListener("click", leave);
  $("e-resume").addEventListener("click", () => connect(true));
  document.addEventListener("keydown", (e) => {
    // Keys 1–6 pick a choice, for keyboards and remote presenters.
    if (state.screen !== "question" || e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    const i = Number(e.key) - 1;
    if (Number.isInteger(i) && i >= 0 && state.question && i < state.question.choices.length) choose(i);
  });

  const params = new URLSearchParams(window.location.search);
  const pin = (params.get("pin") || "").replace(/\D/g, "").slice(0, 6);
  const saved = session.get(SESSION_KEY);
  const removedFrom = pin || (saved && saved.pin);
  if (removedFrom && kicks()[removedFrom]) {
    state.session = null;
    session.remove(SESSION_KEY);
    $("pin").value = removedFrom;
    showRemoved();
    return;
  }
  if (saved && saved.token && saved.ws_url && (!pin || pin === saved.pin)) {
    state.session = saved;
    $("pin").value = saved.pin;
    $("nickname").value = saved.nickname || "";
    connect(true);
    return;
  }
  if (pin) $("pin").value = pin;
  showJoin();
}

// A hook for the browser tests (and for curious people): cut the socket as a network failure would.
window.quizroomTest = {
  dropSocket: () => { if (state.conn && state.conn.ws) state.conn.ws.close(4000, "test drop"); },
  socketOpen: () => Boolean(state.conn && state.conn.ws && state.conn.greeted),
  welcomes: () => (state.conn ? state.conn.welcomes : 0),
  clockOffset: () => clock.offset,
  state: () => ({ screen: state.screen, score: state.score, rank: state.rank, answered: state.answered }),
  shown: () => shownLog.slice(),
  question: () => (state.question ? state.question.index : null), // the latest question received, shown or not
};

boot();
