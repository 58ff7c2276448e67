// quizroom — pictures on the pages (docs/protocol.md, "Images"): loading a quiz's images ahead of their question
// (the welcome's list, the "get ready" pause's list), waiting until a question's pictures are decoded before it is
// shown and its countdown starts, and the editor's uploads. Image URLs come from the server as paths on it.
//
// Why wait: the server times an answer from the question's opening (SPEC §5), so a phone still loading a picture
// would lose that time. The preload during "get ready" is what makes it fair; the wait keeps a slow phone from
// showing a question whose picture is missing. It never waits forever: after `WAIT_CAP_MS` the question shows, and
// a picture that failed shows its text (the choice's text is its alternative text).

import { el } from "./common.js";

const WAIT_CAP_MS = 8000;
const decoded = new Map(); // url -> Promise that resolves once it is decoded (or failed)
const kept = []; // the decoded images themselves: held so the browser keeps them ready

/** Start loading and decoding these URLs (nothing happens for a URL already asked for). */
export function preload(urls) {
  for (const url of urls || []) {
    if (!url || decoded.has(url)) continue;
    const image = new Image();
    image.decoding = "async";
    image.src = url;
    decoded.set(url, image.decode().then(
      () => { kept.push(image); },
      () => { decoded.delete(url); }, // failed: a later preload may try again
    ));
  }
}

const WINDOW = 12; // pictures loaded ahead of the question on screen: a few questions' worth, not a whole quiz
let ahead = []; // the welcome's `images`: the quiz's pictures in play order, from where the game is

/** Take the welcome's list and load the first pictures of it. */
export function loadAhead(urls) {
  ahead = Array.isArray(urls) ? urls : [];
  preload(ahead.slice(0, WINDOW));
}

/** A question with these pictures is on screen: load the next ones of the list. */
export function seen(urls) {
  const last = Math.max(-1, ...urls.map((url) => ahead.indexOf(url)));
  preload(ahead.slice(last + 1, last + 1 + WINDOW));
}

/** The image URLs a question shows: its own, then its choices'. */
export function questionImages(q) {
  return [q && q.image, ...((q && q.choice_images) || [])].filter(Boolean);
}

/**
 * Resolve once every <img> under `root` is decoded (or has failed), or after `capMs`. The countdown starts after.
 * The elements' own decode() is awaited: for a preloaded URL it is the browser's cache, and resolves at once.
 */
export function pictureReady(root, capMs = WAIT_CAP_MS) {
  const images = [...root.querySelectorAll("img[data-picture]")];
  if (!images.length) return Promise.resolve(true);
  const all = Promise.all(images.map((img) => img.decode().then(() => true, () => false)));
  const cap = new Promise((resolve) => { setTimeout(() => resolve(false), capMs); });
  return Promise.race([all.then((each) => each.every(Boolean)), cap]);
}

/** An <img> of a question's picture; `alt` describes it (a choice's text). */
export function picture(url, alt, className) {
  return el("img", { src: url, alt, class: className, "data-picture": "", draggable: "false" });
}

const UPLOAD_TEXT = {
  too_big: "That picture is too big to upload (10 MB at most). Pick a smaller one.",
  not_an_image: "That file isn't a picture the game can use: PNG, JPEG, GIF or WebP.",
  type_mismatch: "That file's name doesn't match what it is (a .png that is really a JPEG?). Rename it or save it again.",
  too_many_pixels: "That picture has too many pixels (40 megapixels at most). Shrink it and try again.",
  empty_file: "That file is empty.",
  rate_limited: "Too many uploads at once. Wait a moment and try again.",
};

const SHRINK_OVER = 2 * 1024 * 1024;
const SIDE = 1600; // what the server keeps anyway (server/imaging.py, MAX_SIDE)

/**
 * A large photo made small before it leaves the browser: a phone's 4–8 MB JPEG takes seconds on a school network,
 * and the server would shrink it to 1600 px all the same (the upload must arrive within its request deadline). The
 * browser applies the EXIF orientation when it decodes, and the canvas keeps no metadata. Anything else, or
 * anything that fails here, goes as it is: the server checks and cleans every upload regardless.
 */
async function shrunk(file) {
  if (file.size <= SHRINK_OVER || file.type !== "image/jpeg" || typeof createImageBitmap !== "function") return file;
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = SIDE / Math.max(bitmap.width, bitmap.height);
    if (scale >= 1) {
      bitmap.close();
      return file;
    }
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => { canvas.toBlob(resolve, "image/jpeg", 0.92); });
    if (!blob || blob.size >= file.size) return file;
    return new File([blob], `${file.name.replace(/\.[^.]*$/, "") || "photo"}.jpg`, { type: "image/jpeg" });
  } catch {
    return file;
  }
}

/**
 * Upload a file chosen in the editor: POST /api/images as a form (field `image`). Resolves to {ok, image} or
 * {ok: false, status, message}; a 401 means the server wants its admin token.
 */
export async function uploadImage(chosen, token) {
  const file = await shrunk(chosen);
  const form = new FormData();
  form.append("image", file, file.name);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let response;
  try {
    response = await fetch("/api/images", { method: "POST", body: form, headers });
  } catch {
    return { ok: false, status: 0, message: "Can't reach the server. Check your connection and try again." };
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.ok && data && data.image_id) return { ok: true, image: data };
  const error = (data && data.error) || {};
  const message = UPLOAD_TEXT[error.code] || error.message || `The upload failed (${response.status}).`;
  return { ok: false, status: response.status, message };
}

// --- the editor's picture controls ---------------------------------------------------------------------------

const ACCEPT = "image/png,image/jpeg,image/gif,image/webp";
const editorHooks = { token: () => "", unauthorized: () => {}, attached: () => {} };

/** How the editor's uploads find the admin token, say it is needed, and hear of a new picture. */
export function configurePictures(hooks) {
  Object.assign(editorHooks, hooks);
}

/** The image id a control keeps on its holder (a question's fieldset, a choice's row), or null. */
export function pictureOf(holder) {
  return holder.dataset.image || null;
}

/**
 * A picture control for `holder`: a file input that uploads at once (POST /api/images) and keeps the image's id on
 * the holder (`data-image`), a thumbnail, and a button that takes the picture away again.
 */
export function pictureControl(holder, { id, label, image, compact = false }) {
  const input = el("input", { type: "file", id, class: "picture-file", accept: ACCEPT });
  const thumb = el("img", { class: "thumb", alt: label, hidden: true });
  const remove = el("button", {
    type: "button", class: "secondary picture-remove", text: "Remove picture", "aria-label": `Remove: ${label}`,
    hidden: true,
  });
  const status = el("span", { class: "upload-status", role: "status" });
  const set = (imageId) => {
    if (imageId) holder.dataset.image = imageId;
    else delete holder.dataset.image;
    thumb.hidden = !imageId;
    remove.hidden = !imageId;
    if (imageId) thumb.src = `/api/images/${imageId}`;
    else thumb.removeAttribute("src");
  };
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    status.className = "upload-status";
    status.textContent = "Uploading…";
    input.disabled = true;
    const result = await uploadImage(file, editorHooks.token());
    input.disabled = false;
    input.value = "";
    if (!result.ok) {
      status.className = "upload-status error";
      status.textContent = result.status === 401 ? "Enter the server's admin token below, then pick the file again."
        : result.message;
      if (result.status === 401) editorHooks.unauthorized();
      return;
    }
    status.textContent = "";
    set(result.image.image_id);
    editorHooks.attached();
  });
  remove.addEventListener("click", () => { set(null); input.focus(); });
  set(image || null);
  return el(
    "span",
    { class: "picture-row" },
    el("label", { for: id, class: compact ? "visually-hidden" : "", text: label }),
    input,
    thumb,
    remove,
    status,
  );
}
