// quizroom — the host page's quiz library (docs/protocol.md, "Quiz library"): the quizzes saved on the server, found
// by title, opened into the editor, saved back (a new quiz, or the next version of the one open), copied, deleted,
// exported as our JSON file, and imported from a file (our JSON, or a spreadsheet in Kahoot's template), with every
// row the server refused listed by its number. A server with an admin token needs it for every library call: the
// page asks for it in the same box as for creating a game.

import { api, el, errorMessage } from "./common.js";
import { currentQuiz, currentTab, loadQuiz, problems, serverProblem, showProblems } from "./editor.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;

const state = {
  open: null, // the saved quiz in the editor: {quiz_id, title, version}, or null for a quiz not saved yet
  shown: 0, // entries listed so far (the next page starts there)
  search: "",
  searchTimer: null,
};

function adminToken() {
  return $("admin-token").value.trim() || undefined;
}

/** A 401: the server wants its admin token, which goes in the box the create button uses too. */
function askedForToken(result) {
  if (result.status !== 401) return false;
  $("admin-wrap").hidden = false;
  $("lib-error").textContent = adminToken()
    ? "That admin token isn't right."
    : "This server keeps its library behind an admin token: enter it below.";
  return true;
}

function say(text) {
  $("lib-status").textContent = text;
  $("lib-error").textContent = "";
}

function fail(result, what) {
  if (!askedForToken(result)) $("lib-error").textContent = errorMessage(result, what);
}

function showOpen() {
  const open = state.open;
  $("lib-editing").textContent = open
    ? `Editing “${open.title}” from the library (version ${open.version}): Save replaces it.`
    : "";
  $("lib-save-new").hidden = !open;
}

// --- the list ------------------------------------------------------------------------------------------------------

function entry(item) {
  const count = `${item.question_count} ${item.question_count === 1 ? "question" : "questions"}`;
  const edited = new Date(item.updated_at_ms).toLocaleDateString();
  const button = (text, onclick, cls = "secondary") =>
    el("button", { type: "button", class: cls, text, "aria-label": `${text} “${item.title}”`, onclick });
  return el(
    "li",
    { "data-quiz-id": item.quiz_id },
    el("span", { class: "grow" }, el("strong", { text: item.title }), el("span", { class: "muted", text: ` · ${count} · ${edited}` })),
    button("Open", () => openQuiz(item.quiz_id), ""),
    button("Copy", () => copyQuiz(item)),
    button("Export", () => exportQuiz(item)),
    button("Delete", () => deleteQuiz(item), "danger"),
  );
}

export async function refresh(more = false) {
  const offset = more ? state.shown : 0;
  const query = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (state.search) query.set("q", state.search);
  const result = await api("GET", `/api/quizzes?${query}`, { token: adminToken() });
  if (!result.ok) {
    fail(result, "Couldn't read the library");
    return;
  }
  $("lib-error").textContent = "";
  const items = result.data.quizzes.map(entry);
  if (more) $("lib-list").append(...items);
  else $("lib-list").replaceChildren(...items);
  state.shown = offset + items.length;
  $("lib-more").hidden = result.data.paging.next_offset === null;
  $("lib-empty").hidden = state.shown > 0;
  $("lib-empty").textContent = state.search
    ? "No saved quiz has that in its title."
    : "No saved quizzes yet: write one below and save it.";
}

// --- one quiz ------------------------------------------------------------------------------------------------------

async function openQuiz(quizId) {
  const result = await api("GET", `/api/quizzes/${encodeURIComponent(quizId)}`, { token: adminToken() });
  if (!result.ok) {
    fail(result, "Couldn't open the quiz");
    return;
  }
  const { title, questions } = result.data;
  loadQuiz({ title, questions });
  state.open = { quiz_id: result.data.quiz_id, title, version: result.data.version };
  showOpen();
  say(`Opened “${title}”.`);
  $("f-quiz-title").scrollIntoView({ block: "center" });
}

/** Save the editor's quiz: the next version of the quiz open, or (`asNew`, or nothing open) a new saved quiz. */
async function save(asNew) {
  $("create-error").textContent = "";
  let quiz;
  try {
    quiz = currentQuiz();
  } catch (err) {
    $("create-error").textContent = err.message;
    return;
  }
  if (quiz && Array.isArray(quiz.questions) && showProblems(problems(quiz))) {
    if (currentTab() === "form") $("create-error").textContent = "The quiz needs a fix: see the notes by the fields.";
    return;
  }
  const replacing = state.open && !asNew;
  const result = replacing
    ? await api("PUT", `/api/quizzes/${encodeURIComponent(state.open.quiz_id)}`, { body: quiz, token: adminToken() })
    : await api("POST", "/api/quizzes", { body: quiz, token: adminToken() });
  if (result.status === 422 && result.data && result.data.error) {
    showProblems([serverProblem(result.data.error)]);
    if (currentTab() === "form") $("create-error").textContent = errorMessage(result, "The quiz needs a fix");
    return;
  }
  if (replacing && result.status === 404) {
    state.open = null; // deleted meanwhile (another tab): save it anew
    return save(true);
  }
  if (!result.ok) {
    fail(result, "Couldn't save the quiz");
    return undefined;
  }
  state.open = { quiz_id: result.data.quiz_id, title: result.data.title, version: result.data.version };
  showOpen();
  say(replacing ? `Saved “${result.data.title}” (version ${result.data.version}).` : `Saved “${result.data.title}” to the library.`);
  return refresh();
}

async function copyQuiz(item) {
  const result = await api("POST", `/api/quizzes/${encodeURIComponent(item.quiz_id)}/copy`, { token: adminToken() });
  if (!result.ok) {
    fail(result, "Couldn't copy the quiz");
    return;
  }
  say(`Copied as “${result.data.title}”.`);
  await refresh();
}

async function deleteQuiz(item) {
  if (!window.confirm(`Delete “${item.title}” from the library? Games already opened from it are not affected.`)) return;
  const result = await api("DELETE", `/api/quizzes/${encodeURIComponent(item.quiz_id)}`, { token: adminToken() });
  if (!result.ok && result.status !== 404) {
    fail(result, "Couldn't delete the quiz");
    return;
  }
  if (state.open && state.open.quiz_id === item.quiz_id) {
    state.open = null; // the editor keeps the text: Save makes it a new quiz again
    showOpen();
  }
  say(`Deleted “${item.title}”.`);
  await refresh();
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function exportQuiz(item) {
  const token = adminToken();
  let response = null;
  try {
    response = await fetch(`/api/quizzes/${encodeURIComponent(item.quiz_id)}/export`, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
  } catch {
    response = null;
  }
  if (!response || !response.ok) {
    fail({ status: response ? response.status : 0, data: null }, "Couldn't export the quiz");
    return;
  }
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  download(await response.blob(), named ? named[1] : "quiz.json");
  say(`Exported “${item.title}”.`);
}

// --- import --------------------------------------------------------------------------------------------------------

function showRefused(rows) {
  const list = $("lib-refused");
  list.replaceChildren(...rows.map((r) => el("li", { text: `Row ${r.row}: ${r.reason}` })));
  list.hidden = rows.length === 0;
}

async function importFile(file) {
  showRefused([]);
  say(`Importing ${file.name}…`);
  const token = adminToken();
  const headers = { Accept: "application/json", "Content-Type": file.type || "application/octet-stream" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let result;
  try {
    const response = await fetch(`/api/quizzes/import?filename=${encodeURIComponent(file.name)}`, {
      method: "POST", headers, body: file,
    });
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    result = { ok: response.ok, status: response.status, data };
  } catch {
    result = { ok: false, status: 0, data: null };
  }
  if (!result.ok) {
    $("lib-status").textContent = "";
    const error = result.data && result.data.error;
    if (error && Array.isArray(error.refused)) showRefused(error.refused);
    fail(result, `Couldn't import ${file.name}`);
    return;
  }
  const d = result.data;
  await refresh();
  await openQuiz(d.quiz_id);
  const left = d.refused.length;
  const note = left ? `; ${left} ${left === 1 ? "row was" : "rows were"} left out:` : ".";
  say(`Imported ${d.imported} ${d.imported === 1 ? "question" : "questions"} into “${d.title}”${note}`);
  showRefused(d.refused);
}

export function setUpLibrary() {
  $("lib-search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => {
      state.search = $("lib-search").value.trim();
      refresh();
    }, 250);
  });
  $("lib-more").addEventListener("click", () => refresh(true));
  $("lib-save").addEventListener("click", () => save(false));
  $("lib-save-new").addEventListener("click", () => save(true));
  $("lib-import").addEventListener("click", () => $("lib-file").click());
  $("lib-file").addEventListener("change", () => {
    const file = $("lib-file").files[0];
    $("lib-file").value = "";
    if (file) importFile(file);
  });
  $("admin-token").addEventListener("change", () => refresh());
  showOpen();
  refresh();
}
