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

const TYPES = [
  ["choice", "Multiple choice"],
  ["true_false", "True or false"],
  ["poll", "Poll (no right answer)"],
  ["type_answer", "Type the answer"],
  ["slider", "Slider (a number)"],
  ["puzzle", "Puzzle (put in order)"],
];

function kindOf(q) {
  return q.type || "choice";
}

function field(id, label, input) {
  return el("div", {}, el("label", { for: id, text: label }), input);
}

function numberInput(id, cls, value, attrs = {}) {
  return el("input", { id, class: cls, type: "number", step: "any", value: value === undefined ? "" : String(value), ...attrs });
}

/** Text rows (choices, puzzle items, accepted answers): at least `least`, at most `most`, filled from `values`.
 * Choice rows (`cls` "c") also take a picture (`pictures`: the question's `choice_images`). */
function textRows(index, cls, values, least, most, label, correct, pictures = null) {
  const rows = [...values];
  while (rows.length < Math.min(most, Math.max(least, values.length))) rows.push("");
  return rows.map((value, i) => {
    const id = `q${index}-${cls}${i}`;
    const row = el("div", { class: "choice-row" });
    row.append(
      cls === "c" ? el("span", { class: `swatch c${i}`, "aria-hidden": "true" }) : "",
      el("label", { for: id, class: "visually-hidden", text: label(i) }),
      el("input", { id, class: `q-${cls === "c" ? "choice" : cls}`, maxlength: cls === "a" ? "80" : "120", value, placeholder: label(i) }),
      correct
        ? el("label", {}, el("input", { type: "checkbox", class: "q-correct", checked: correct.includes(i) }), "correct")
        : "",
      pictures
        ? pictureControl(row, { id: `${id}-image`, label: `Picture for choice ${i + 1}`, image: pictures[i], compact: true })
        : "",
    );
    return row;
  });
}

/** The fields of one question type: choices with their correct ticks, labels, accepted answers, a range, items. */
function typeFields(q, index) {
  const kind = kindOf(q);
  if (kind === "true_false") {
    const labels = q.choices && q.choices.length === 2 ? q.choices : ["True", "False"];
    const isTrue = q.correct === true || (Array.isArray(q.correct) && q.correct[0] === 0);
    const isFalse = q.correct === false || (Array.isArray(q.correct) && q.correct[0] === 1);
    return [
      ...textRows(index, "c", labels, 2, 2, (i) => (i ? "Label for false" : "Label for true"), null, q.choice_images || []),
      el("div", { class: "choice-row", role: "radiogroup", "aria-label": "The right answer" },
        el("label", {}, el("input", { type: "radio", name: `q${index}-tf`, class: "q-true", checked: isTrue }), "true is right"),
        el("label", {}, el("input", { type: "radio", name: `q${index}-tf`, class: "q-false", checked: isFalse }), "false is right")),
    ];
  }
  if (kind === "poll") {
    return textRows(index, "c", q.choices || [], 4, CHOICE_ROWS, (i) => `Choice ${i + 1} (${shapeName(i)})`, null, q.choice_images || []);
  }
  if (kind === "type_answer") {
    return [
      ...textRows(index, "a", q.accepted || [], 3, 10, (i) => `Accepted answer ${i + 1}`),
      el("label", {}, el("input", { type: "checkbox", class: "q-typo", checked: Boolean(q.typo_tolerance) }), "forgive one typo"),
    ];
  }
  if (kind === "slider") {
    const meta = el("div", { class: "meta" });
    meta.append(
      field(`q${index}-min`, "From", numberInput(`q${index}-min`, "q-min", q.min ?? 0)),
      field(`q${index}-max`, "To", numberInput(`q${index}-max`, "q-max", q.max ?? 100)),
      field(`q${index}-step`, "Step", numberInput(`q${index}-step`, "q-step", q.step ?? 1)),
      field(`q${index}-value`, "Right value", numberInput(`q${index}-value`, "q-value", q.value)),
      field(`q${index}-tolerance`, "Give or take", numberInput(`q${index}-tolerance`, "q-tolerance", q.tolerance ?? 0)),
      field(`q${index}-scoring`, "Points", el("select", { id: `q${index}-scoring`, class: "q-scoring" },
        el("option", { value: "closeness", selected: q.scoring !== "all_or_nothing", text: "closer scores more" }),
        el("option", { value: "all_or_nothing", selected: q.scoring === "all_or_nothing", text: "all or nothing" }))),
    );
    return [meta];
  }
  if (kind === "puzzle") return textRows(index, "i", q.items || [], 4, CHOICE_ROWS, (i) => `Item ${i + 1} (in the right order)`);
  const correct = Array.isArray(q.correct) ? q.correct : [];
  return textRows(index, "c", q.choices || [], 4, CHOICE_ROWS, (i) => `Choice ${i + 1} (${shapeName(i)})`, correct, q.choice_images || []);
}

function questionEditor(q, index) {
  const fieldset = el("fieldset", { class: "qedit", "data-question": String(index), "data-type": kindOf(q) });
  fieldset.append(el("legend", { text: `Question ${index + 1}` }));
  const textId = `q${index}-text`;
  const errorId = `q${index}-error`;
  const typeId = `q${index}-type`;
  fieldset.append(
    el("label", { for: typeId, text: "Type" }),
    el("select", {
      id: typeId, class: "q-type",
      onchange: (e) => {
        const quiz = readForm();
        quiz.questions[index] = { ...quiz.questions[index], type: e.target.value };
        renderForm(quiz);
        document.getElementById(typeId).focus();
      },
    }, TYPES.map(([value, text]) => el("option", { value, text, selected: value === kindOf(q) }))),
    el("label", { for: textId, text: "Question" }),
    el("textarea", {
      id: textId, class: "q-text", maxlength: "500", rows: "2", "aria-describedby": errorId, text: q.text || "",
    }),
    pictureControl(fieldset, { id: `q${index}-image`, label: "Picture (optional)", image: q.image }),
  );
  fieldset.append(...typeFields(q, index));
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
  );
  if (kindOf(q) !== "poll") {
    meta.append(
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
  }
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

/** Show a quiz in the editor, in the form and in the JSON tab alike (the library's "Open"), with no old notes. */
export function loadQuiz(quiz) {
  renderForm(quiz);
  $("quiz-json").value = JSON.stringify(quiz, null, 2);
  for (const p of document.querySelectorAll(".field-error")) p.textContent = "";
}

export function renderForm(quiz) {
  $("f-quiz-title").value = quiz.title || "";
  $("f-questions").replaceChildren(...(quiz.questions || []).map(questionEditor));
}

const texts = (fs, cls) => [...fs.querySelectorAll(`.${cls}`)].map((input) => input.value.trim());
const num = (fs, cls) => {
  const input = fs.querySelector(`.${cls}`);
  return input && input.value !== "" ? Number(input.value) : undefined;
};

/** One question as its form shows it, in its type's document (docs/protocol.md, *Question types*). */
function readQuestion(fs) {
  const kind = fs.dataset.type || "choice";
  const q = { text: fs.querySelector(".q-text").value.trim() };
  const pictures = []; // the choices' pictures, parallel to `choices`
  if (kind !== "choice") q.type = kind;
  if (kind === "choice" || kind === "poll") {
    q.choices = [];
    const correct = [];
    for (const row of fs.querySelectorAll(".choice-row")) {
      const text = row.querySelector(".q-choice").value.trim();
      if (!text && !pictureOf(row)) continue; // a picture without its words stays, so the editor can ask for them
      const tick = row.querySelector(".q-correct");
      if (tick && tick.checked) correct.push(q.choices.length);
      q.choices.push(text);
      pictures.push(pictureOf(row));
    }
    if (kind === "choice") q.correct = correct;
  } else if (kind === "true_false") {
    q.choices = texts(fs, "q-choice");
    pictures.push(...[...fs.querySelectorAll(".choice-row")].map(pictureOf).slice(0, 2));
    if (fs.querySelector(".q-true").checked) q.correct = true;
    else if (fs.querySelector(".q-false").checked) q.correct = false;
  } else if (kind === "type_answer") {
    q.accepted = texts(fs, "q-a").filter(Boolean);
    q.typo_tolerance = fs.querySelector(".q-typo").checked;
  } else if (kind === "slider") {
    for (const key of ["min", "max", "step", "value", "tolerance"]) {
      const value = num(fs, `q-${key}`);
      if (value !== undefined) q[key] = value;
    }
    q.scoring = fs.querySelector(".q-scoring").value;
  } else if (kind === "puzzle") {
    q.items = texts(fs, "q-i").filter(Boolean);
  }
  q.time_limit_ms = Math.round(Number(fs.querySelector(".q-time").value || 20) * 1000);
  if (kind !== "poll") q.points = Math.round(Number(fs.querySelector(".q-points").value || 0));
  if (pictureOf(fs)) q.image = pictureOf(fs);
  if (pictures.some(Boolean)) q.choice_images = pictures;
  return q;
}

/** The quiz as the form shows it; empty choice boxes are dropped (the server wants 2–6 real ones). */
export function readForm() {
  const questions = [...document.querySelectorAll("#f-questions .qedit")].map(readQuestion);
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
    const kind = kindOf(q);
    if (!q.text) say("write the question.");
    const pictures = Array.isArray(q.choice_images) ? q.choice_images : [];
    if (choices.some((c, j) => !c && pictures[j])) {
      say("describe each picture answer in words too (players who can't see it hear them).");
    }
    if (kind === "choice" || kind === "poll") {
      if (choices.length < 2) say("give at least two answers.");
      if (kind === "choice" && choices.length >= 2 && !(Array.isArray(q.correct) && q.correct.length)) {
        say("tick at least one correct answer.");
      }
    } else if (kind === "true_false") {
      if (choices.length === 2 && choices.some((c) => !c)) say("give both labels.");
      if (typeof q.correct !== "boolean" && !Array.isArray(q.correct)) say("say whether true or false is right.");
    } else if (kind === "type_answer") {
      if (!(q.accepted || []).length) say("give at least one accepted answer.");
    } else if (kind === "slider") {
      if (!(Number.isFinite(q.min) && Number.isFinite(q.max) && q.max > q.min)) say("the slider needs a range, from below to above.");
      else if (!(q.step > 0)) say("the step must be more than 0.");
      else if (!Number.isFinite(q.value) || q.value < q.min || q.value > q.max) say("the right value must be within the range.");
    } else if (kind === "puzzle") {
      const items = q.items || [];
      if (items.length < 2) say("give at least two items to put in order.");
      if (new Set(items).size !== items.length) say("each item must be different.");
    }
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
