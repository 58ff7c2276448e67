// quizroom — the host page's quiz editor: a form (or raw JSON) for a quiz, checked here before it is sent, with
// every problem written next to the field it is about ("Question 1: tick at least one correct answer"). The server
// checks again (SPEC §1); its 422 names the field (`questions[2].choices`), which lands next to the same field.

import { el, shapeName } from "./common.js";
import { configurePictures, pictureControl, pictureOf } from "./images.js";

const $ = (id) => document.getElementById(id);
const CHOICE_ROWS = 6; // SPEC §1: up to six choices

export const SAMPLE_QUIZ = {
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

let tab = "form";

function questionEditor(q, index) {
  const fieldset = el("fieldset", { class: "qedit", "data-question": String(index) });
  fieldset.append(el("legend", { text: `Question ${index + 1}` }));
  const textId = `q${index}-text`;
  const errorId = `q${index}-error`;
  fieldset.append(
    el("label", { for: textId, text: "Question" }),
    el("textarea", {
      id: textId, class: "q-text", maxlength: "500", rows: "2", "aria-describedby": errorId, text: q.text || "",
    }),
    pictureControl(fieldset, { id: `q${index}-image`, label: "Picture (optional)", image: q.image }),
  );
  const choices = [...(q.choices || [])];
  const rows = Math.min(CHOICE_ROWS, Math.max(4, choices.length));
  while (choices.length < rows) choices.push("");
  choices.forEach((choice, i) => {
    const id = `q${index}-c${i}`;
    const row = el("div", { class: "choice-row" });
    const image = (q.choice_images || [])[i];
    row.append(
      el("span", { class: `swatch c${i}`, "aria-hidden": "true" }),
      el("label", { for: id, class: "visually-hidden", text: `Choice ${i + 1} (${shapeName(i)})` }),
      el("input", { id, class: "q-choice", maxlength: "120", value: choice, placeholder: `Choice ${i + 1}` }),
      el(
        "label",
        {},
        el("input", { type: "checkbox", class: "q-correct", checked: (q.correct || []).includes(i) }),
        "correct",
      ),
      pictureControl(row, { id: `${id}-image`, label: `Picture for choice ${i + 1}`, image, compact: true }),
    );
    fieldset.append(row);
  });
  const meta = el("div", { class: "meta" });
  meta.append(
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
  fieldset.append(meta, el("p", { id: errorId, class: "error field-error q-error", role: "alert" }));
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

export function renderForm(quiz) {
  $("f-quiz-title").value = quiz.title || "";
  $("f-questions").replaceChildren(...(quiz.questions || []).map(questionEditor));
}

/** The quiz as the form shows it; empty choice boxes are dropped (the server wants 2–6 real ones). */
export function readForm() {
  const questions = [...document.querySelectorAll("#f-questions .qedit")].map((fs) => {
    const choices = [];
    const correct = [];
    const pictures = [];
    for (const row of fs.querySelectorAll(".choice-row")) {
      const text = row.querySelector(".q-choice").value.trim();
      if (!text && !pictureOf(row)) continue; // a picture without its words stays, so the editor can ask for them
      if (row.querySelector(".q-correct").checked) correct.push(choices.length);
      choices.push(text);
      pictures.push(pictureOf(row));
    }
    const question = {
      text: fs.querySelector(".q-text").value.trim(),
      choices,
      correct,
      time_limit_ms: Math.round(Number(fs.querySelector(".q-time").value || 20) * 1000),
      points: Math.round(Number(fs.querySelector(".q-points").value || 0)),
    };
    if (pictureOf(fs)) question.image = pictureOf(fs);
    if (pictures.some(Boolean)) question.choice_images = pictures;
    return question;
  });
  return { title: $("f-quiz-title").value.trim(), questions };
}

/** What is wrong with a quiz, as `[{question (index or null), message}]`, in SPEC §1's terms a teacher reads. */
export function problems(quiz) {
  const found = [];
  if (!quiz.title) found.push({ question: null, message: "Give the quiz a title." });
  if (!quiz.questions.length) found.push({ question: null, message: "Add at least one question." });
  quiz.questions.forEach((q, i) => {
    const say = (message) => found.push({ question: i, message: `Question ${i + 1}: ${message}` });
    const choices = Array.isArray(q.choices) ? q.choices : [];
    const time = q.time_limit_ms ?? 20000; // SPEC §1's defaults
    const points = q.points ?? 1000;
    if (!q.text) say("write the question.");
    const pictures = Array.isArray(q.choice_images) ? q.choice_images : [];
    if (choices.some((c, j) => !c && pictures[j])) {
      say("describe each picture answer in words too (players who can't see it hear them).");
    }
    if (choices.length < 2) say("give at least two answers.");
    if (choices.length >= 2 && !(Array.isArray(q.correct) && q.correct.length)) say("tick at least one correct answer.");
    if (!(time >= 5000 && time <= 300000)) say("the time must be 5 to 300 seconds.");
    if (!(points >= 0 && points <= 2000)) say("points must be 0 to 2000.");
  });
  return found;
}

/** Write each problem next to its field (or under the title); focus the first. Returns whether there were any. */
export function showProblems(list) {
  for (const p of document.querySelectorAll(".field-error")) p.textContent = "";
  if (tab === "json") {
    $("create-error").textContent = list.map((p) => p.message).join("\n");
    return list.length > 0;
  }
  const questions = [...document.querySelectorAll("#f-questions .qedit")];
  let first = null;
  for (const problem of list) {
    const fieldset = problem.question === null ? null : questions[problem.question];
    const target = fieldset ? fieldset.querySelector(".q-error") : $("f-quiz-title-error");
    target.textContent = target.textContent ? `${target.textContent}\n${problem.message}` : problem.message;
    first = first || (fieldset ? fieldset.querySelector(".q-text") : $("f-quiz-title"));
  }
  if (first && tab === "form") first.focus();
  return list.length > 0;
}

/** A server 422 (`field`: `questions[2].choices`, `quiz.title`) as a problem next to its field. */
export function serverProblem(error) {
  const field = String((error && error.field) || "");
  const match = /questions\[(\d+)\]/.exec(field);
  const message = String((error && error.message) || "The quiz needs a fix.");
  if (match) {
    const index = Number(match[1]);
    return { question: index, message: `Question ${index + 1}: ${message.replace(/^[^:]*: /, "")}` };
  }
  return { question: null, message };
}

/** The quiz from whichever tab is showing; throws a readable Error for JSON that does not parse. */
export function currentQuiz() {
  if (tab === "json") {
    try {
      return JSON.parse($("quiz-json").value);
    } catch (err) {
      throw new Error(`That isn't valid JSON: ${err.message}`);
    }
  }
  return readForm();
}

export function currentTab() {
  return tab;
}

function switchTab(next) {
  if (next === tab) return;
  const error = $("create-error");
  error.textContent = "";
  if (next === "json") {
    $("quiz-json").value = JSON.stringify(readForm(), null, 2);
  } else {
    try {
      renderForm(JSON.parse($("quiz-json").value));
    } catch (err) {
      error.textContent = `The JSON doesn't parse, so the form can't show it: ${err.message}`;
      return;
    }
  }
  tab = next;
  $("tab-form").setAttribute("aria-selected", String(next === "form"));
  $("tab-json").setAttribute("aria-selected", String(next === "json"));
  $("panel-form").hidden = next !== "form";
  $("panel-json").hidden = next !== "json";
}

export function setUpEditor() {
  // A quiz with pictures wants the "get ready" pause (the phones load the pictures during it): the first picture
  // switches it on, unless the host has chosen about it already.
  let introChosen = false;
  $("o-intro").addEventListener("change", () => { introChosen = true; });
  configurePictures({
    token: () => $("admin-token").value.trim(),
    unauthorized: () => { $("admin-wrap").hidden = false; },
    attached: () => { if (!introChosen) $("o-intro").checked = true; },
  });
  renderForm(SAMPLE_QUIZ);
  $("quiz-json").value = JSON.stringify(SAMPLE_QUIZ, null, 2);
  $("tab-form").addEventListener("click", () => switchTab("form"));
  $("tab-json").addEventListener("click", () => switchTab("json"));
  $("f-add").addEventListener("click", () => {
    const quiz = readForm();
    quiz.questions.push({ text: "", choices: ["", "", "", ""], correct: [], time_limit_ms: 20000, points: 1000 });
    renderForm(quiz);
    const inputs = document.querySelectorAll("#f-questions .q-text");
    inputs[inputs.length - 1].focus();
  });
}
