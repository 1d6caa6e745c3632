// The playground page: wires the form, the edit canvas, the results, the history and the code
// view together. Everything it asks goes to this origin's /v1 API, as an application would.

import * as api from "./api.js";
import { LANGUAGES, outputName } from "./code.js";
import { Controls } from "./controls.js";
import { $, blobOf, button, download, el } from "./dom.js";
import { clearError, retryBlocked, showError, whenRetryChanges } from "./errors.js";
import * as history from "./history.js";
import { Painter } from "./painter.js";

const MAX_SEED = 2 ** 32;

let controls = null;
let mode = "generate";
let running = null; // the AbortController of the request in flight
const painter = new Painter({
  canvas: $("canvas"),
  image: $("image-layer"),
  mask: $("mask-layer"),
  markup: $("markup-layer"),
});

function status(text) {
  $("status").textContent = text;
}

/** Generate waits while a request runs, and while a refusal's retry countdown does. */
function idle() {
  $("generate").disabled = running !== null || retryBlocked();
}

// ---- sending --------------------------------------------------------------------------------

/** The request the form describes for `endpoint`, with the canvas's files. */
async function describe(endpoint) {
  const files = {};
  if (endpoint !== "generations" && painter.loaded) {
    files.image = painter.source;
    if (endpoint === "edits") {
      const layer = paintMode() === "markup" ? await painter.markup() : await painter.mask();
      if (layer) files[paintMode()] = layer;
    }
  }
  return controls.request(endpoint, files);
}

function paintMode() {
  return document.querySelector("input[name=paint-mode]:checked").value;
}

/** The seed image `i` of an answer was drawn with: the one easel reports, else the request's + i. */
function seedOf(request, item, i) {
  if (item && item.seed !== undefined) return item.seed;
  return request.fields.seed === undefined ? null : request.fields.seed + i;
}

/** Why the form cannot make a request for `endpoint` yet (shown as an error), or null. */
function missing(endpoint) {
  if (controls === null) return "No models are listed yet: enter this server's API key above.";
  if (endpoint !== "generations" && !painter.loaded) return "Choose or drop an image to edit first.";
  return null;
}

async function submit(endpoint) {
  clearError();
  if (missing(endpoint)) {
    showError({ message: missing(endpoint) });
    return;
  }
  const request = await describe(endpoint);
  if (request.fields.stream && request.fields.seed === undefined && controls.model.extensions.includes("seed")) {
    // Stream events carry no seed: choose it here, so that the history can give it back.
    request.fields.seed = Math.floor(Math.random() * MAX_SEED);
  }
  await run(request);
}

async function run(request) {
  running = new AbortController();
  idle();
  $("vary").disabled = true;
  $("cancel").hidden = false;
  $("gallery").replaceChildren();
  $("partial-strip").replaceChildren();
  $("partials-box").hidden = true;
  $("events").replaceChildren();
  const started = performance.now();
  const results = [];
  const seconds = () => ((performance.now() - started) / 1000).toFixed(2);
  status(request.fields.stream ? "Waiting for the first partial image…" : "Rendering…");
  try {
    if (request.fields.stream) {
      const preview = streamPreview();
      await api.images(request, {
        signal: running.signal,
        onEvent(type, data) {
          $("events").append(el("li", { textContent: `${seconds()} s  ${type}` }));
          const blob = blobOf(data.b64_json, data.output_format);
          if (type.endsWith(".partial_image")) {
            preview.partial(blob, data.partial_image_index);
            status(`Partial image ${data.partial_image_index + 1} received`);
          } else if (type.endsWith(".completed")) {
            const result = { blob, seed: seedOf(request, null, results.length) };
            results.push(result);
            preview.done();
            $("gallery").append(card(request, result, results.length - 1));
          }
        },
      });
    } else {
      const answer = await api.images(request, { signal: running.signal });
      const format = answer.output_format || "png";
      answer.data.forEach((item, i) => {
        const result = { blob: blobOf(item.b64_json, format), seed: seedOf(request, item, i) };
        if (item.revised_prompt) result.revised_prompt = item.revised_prompt;
        results.push(result);
        $("gallery").append(card(request, result, i));
      });
    }
    status(`${results.length} image${results.length === 1 ? "" : "s"} in ${seconds()} s`);
    await history.add({ created: Date.now(), request, results, elapsed_ms: performance.now() - started });
    await showHistory();
  } catch (e) {
    if (e.name === "AbortError") status("Cancelled.");
    else {
      status("The request failed.");
      showError(e);
    }
  } finally {
    running = null;
    $("cancel").hidden = true;
    $("vary").disabled = false;
    idle();
  }
}

/** The figure partial images are drawn into as they arrive, and the strip that keeps them. */
function streamPreview() {
  const img = el("img", { alt: "Preview" });
  const caption = el("figcaption", { textContent: "Waiting for the first partial image…" });
  const figure = el("figure", { className: "preview" }, img, caption);
  $("gallery").append(figure);
  return {
    partial(blob, index) {
      figure.hidden = false;
      img.src = URL.createObjectURL(blob);
      caption.textContent = `Partial image ${index + 1}`;
      $("partial-strip").append(el("img", { src: img.src, alt: `Partial image ${index + 1}`, className: "thumb" }));
      $("partials-box").hidden = false;
    },
    done() {
      figure.hidden = true;
    },
  };
}

/** One result: the image, its seed, and what can be done with it. */
function card(request, result, i) {
  const count = Number(request.fields.n || 1);
  const name = outputName(request, i, count);
  const caption = [result.seed !== null && `seed ${result.seed}`, request.fields.size, request.fields.output_format]
    .filter(Boolean)
    .join(" · ");
  const actions = el(
    "div",
    { className: "actions" },
    download(result.blob, name),
    button("Edit this", () => editThis(result.blob, name)),
    result.seed !== null && controls.models.get(request.fields.model)?.extensions.includes("seed")
      ? button("Use this seed", () => useSeed(request, result.seed, true))
      : null,
  );
  return el(
    "figure",
    { className: "result" },
    el("img", { src: URL.createObjectURL(result.blob), alt: `Result ${i + 1}` }),
    el("figcaption", { textContent: caption }),
    result.revised_prompt ? el("p", { className: "hint", textContent: `Revised: ${result.revised_prompt}` }) : null,
    actions,
  );
}

// ---- modes, editing, recall -----------------------------------------------------------------

function setMode(next) {
  mode = next;
  $("tab-generate").setAttribute("aria-selected", String(mode === "generate"));
  $("tab-edit").setAttribute("aria-selected", String(mode === "edit"));
  $("edit-panel").hidden = mode !== "edit";
  controls.apply(mode);
}

async function editThis(blob, name) {
  setMode("edit");
  await painter.load(blob, name);
  $("canvas").scrollIntoView({ block: "nearest" });
}

async function recall(entry) {
  const { request } = entry;
  setMode(request.endpoint === "generations" ? "generate" : "edit");
  controls.recall(request);
  const files = request.files || {};
  if (files.image) {
    await painter.load(files.image.blob, files.image.name);
    for (const layer of ["mask", "markup"]) {
      if (files[layer]) {
        document.querySelector(`input[name=paint-mode][value=${layer}]`).click();
        await painter.restore(layer, files[layer].blob);
      }
    }
  }
}

/** Recall `request` with `seed`; `alone`: for one image of it (the seed of image i is its own). */
async function useSeed(request, seed, alone = false) {
  const fields = { ...request.fields, seed };
  if (alone) delete fields.n;
  await recall({ request: { ...request, fields } });
  $("seed").focus();
  status(`Seed ${seed} is set: Generate draws the same image again.`);
}

// ---- history --------------------------------------------------------------------------------

async function showHistory() {
  const list = $("history-list");
  let entries = [];
  try {
    entries = await history.all();
  } catch (e) {
    list.replaceChildren(el("li", { textContent: `History is unavailable in this browser: ${e.message}` }));
    return;
  }
  list.replaceChildren(...entries.map(historyItem));
  updateCompare();
}

function historyItem(entry) {
  const { request, results } = entry;
  const f = request.fields;
  const when = new Date(entry.created).toLocaleString();
  const label = f.prompt || `${request.endpoint} of ${request.files.image?.name ?? "an image"}`;
  const first = results[0];
  const seed = first && first.seed;
  const pick = el("input", { type: "checkbox", className: "pick", value: String(entry.id) });
  pick.onchange = updateCompare;
  return el(
    "li",
    { className: "entry", ariaLabel: `History entry: ${label}` },
    el("div", { className: "thumbs" },
      ...results.map((r, i) => el("img", { src: URL.createObjectURL(r.blob), alt: `${label} (${i + 1})`, className: "thumb" }))),
    el("p", { className: "what", textContent: label }),
    el("p", { className: "hint", textContent: `${f.model} · ${request.endpoint} · ${when}${seed != null ? ` · seed ${seed}` : ""}` }),
    el(
      "div",
      { className: "actions" },
      button("Recall", () => recall(entry)),
      seed != null ? button("Use this seed", () => useSeed(request, seed)) : null,
      first ? download(first.blob, outputName(request, 0, results.length)) : null,
      button("View code", () => showCode(request)),
      el("label", { className: "check" }, pick, " Compare"),
      button("Delete", async () => {
        await history.remove(entry.id);
        await showHistory();
      }),
    ),
  );
}

function picked() {
  return [...document.querySelectorAll("#history-list .pick:checked")].map((c) => Number(c.value));
}

function updateCompare() {
  $("compare").disabled = picked().length !== 2;
}

async function compare() {
  const [a, b] = await Promise.all(picked().map((id) => history.get(id)));
  const keys = [...new Set([...Object.keys(a.request.fields), ...Object.keys(b.request.fields)])];
  const rows = keys.map((k) => {
    const [x, y] = [a.request.fields[k], b.request.fields[k]].map((v) => (v === undefined ? "—" : String(v)));
    return el("tr", { className: x === y ? "" : "differs" }, el("th", { textContent: k }), el("td", { textContent: x }), el("td", { textContent: y }));
  });
  const side = (entry, name) =>
    el("figure", {}, el("img", { src: URL.createObjectURL(entry.results[0].blob), alt: `Compared ${name}` }),
      el("figcaption", { textContent: `${name}: seed ${entry.results[0].seed ?? "?"}` }));
  $("compare-body").replaceChildren(
    el("div", { className: "pair" }, side(a, "A"), side(b, "B")),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { textContent: "field" }), el("th", { textContent: "A" }), el("th", { textContent: "B" }))), el("tbody", {}, ...rows)),
  );
  $("compare-dialog").showModal();
}

// ---- code -----------------------------------------------------------------------------------

let shown = null;

function showCode(request) {
  shown = request;
  renderCode("curl");
  const files = Object.values(request.files || {});
  $("code-files").replaceChildren(
    ...(files.length ? ["Save next to the code: ", ...files.flatMap((f) => [download(f.blob, f.name, f.name), " "])] : []),
  );
  $("code-dialog").showModal();
}

function renderCode(lang) {
  for (const tab of document.querySelectorAll("#code-dialog [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.lang === lang));
  }
  const base = new URL(".", location.href).href.replace(/\/$/, "");
  $("code").textContent = LANGUAGES[lang](shown, base, Boolean(api.key.get()));
}

// ---- start ----------------------------------------------------------------------------------

async function loadModels() {
  try {
    const models = (await api.get("v1/models")).data;
    const current = controls && controls.model.id;
    controls = new Controls(models);
    if (current && controls.models.has(current)) $("model").value = current;
    setMode(mode);
    clearError();
  } catch (e) {
    showError(e);
    status("The models could not be listed: see the message above.");
  }
}

function wire() {
  whenRetryChanges(idle);
  $("key").value = api.key.get();
  $("key-form").addEventListener("submit", (e) => e.preventDefault());
  $("key").addEventListener("change", () => {
    api.key.set($("key").value.trim());
    loadModels();
  });
  $("request").addEventListener("submit", (e) => {
    e.preventDefault();
    submit(mode === "generate" ? "generations" : "edits");
  });
  $("vary").onclick = () => submit("variations");
  $("cancel").onclick = () => running && running.abort();
  $("tab-generate").onclick = () => setMode("generate");
  $("tab-edit").onclick = () => setMode("edit");
  $("model").addEventListener("change", () => {
    controls.apply(mode);
    if (mode === "edit" && $("tab-edit").disabled) setMode("generate"); // a model without edits
  });
  for (const id of ["size", "format", "stream"]) $(id).addEventListener("change", () => controls.refresh());
  $("view-code").onclick = async () => {
    const endpoint = mode === "generate" ? "generations" : "edits";
    clearError();
    if (missing(endpoint)) showError({ message: missing(endpoint) });
    else showCode(await describe(endpoint));
  };
  $("close-code").onclick = () => $("code-dialog").close();
  $("close-compare").onclick = () => $("compare-dialog").close();
  for (const tab of document.querySelectorAll("#code-dialog [role=tab]")) tab.onclick = () => renderCode(tab.dataset.lang);
  $("copy-code").onclick = async () => {
    try {
      await navigator.clipboard.writeText($("code").textContent);
      $("copy-code").textContent = "Copied";
    } catch {
      getSelection().selectAllChildren($("code")); // no clipboard here (plain http): select it instead
    }
  };
  $("compare").onclick = compare;
  $("clear-history").onclick = async () => {
    await history.clear();
    await showHistory();
  };

  // The canvas: a file, a drop, the tools and their keys.
  const open = (file) =>
    file &&
    painter.load(file, file.name).catch((e) => showError({ message: `That file is not an image this browser can read: ${e.message}` }));
  $("image-file").addEventListener("change", () => open($("image-file").files[0]));
  const canvas = $("canvas");
  canvas.addEventListener("dragover", (e) => e.preventDefault());
  canvas.addEventListener("drop", (e) => {
    e.preventDefault();
    open(e.dataTransfer.files[0]);
  });
  const tool = (name) => {
    painter.tool = name;
    $("brush").setAttribute("aria-pressed", String(name === "brush"));
    $("eraser").setAttribute("aria-pressed", String(name === "eraser"));
  };
  $("brush").onclick = () => tool("brush");
  $("eraser").onclick = () => tool("eraser");
  const size = (value) => {
    $("brush-size").value = painter.resize(value);
    $("brush-size-value").textContent = String(painter.size);
  };
  $("brush-size").addEventListener("input", () => size(Number($("brush-size").value)));
  $("undo").onclick = () => painter.undo();
  $("clear").onclick = () => painter.clear();
  $("invert").onclick = () => painter.invert();
  $("markup-colour").addEventListener("input", () => (painter.colour = $("markup-colour").value));
  for (const radio of document.querySelectorAll("input[name=paint-mode]")) {
    radio.addEventListener("change", () => {
      const markup = paintMode() === "markup";
      painter.setMode(paintMode());
      $("brush").textContent = markup ? "Markup pen" : "Mask brush";
      $("eraser").textContent = markup ? "Markup eraser" : "Mask eraser";
      $("clear").textContent = markup ? "Clear markup" : "Clear mask";
      $("markup-colour-label").hidden = !markup;
      $("invert").hidden = markup;
    });
  }
  document.addEventListener("keydown", (e) => {
    if (mode !== "edit" || e.target.closest("input, textarea, select")) return;
    if (e.key === "[") size(painter.size * 0.8);
    if (e.key === "]") size(painter.size * 1.25);
    if (e.key === "z" && (e.ctrlKey || e.metaKey)) painter.undo();
  });
}

wire();
await loadModels();
await showHistory();
document.body.dataset.ready = "true";
