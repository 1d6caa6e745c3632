// The request form: what it offers follows the chosen model's entry of /v1/models (its sizes or
// size rule, qualities, formats, background, extensions and their limits), and it turns into the
// exact request sent (only the fields set), and back again when a request is recalled.

const $ = (id) => document.getElementById(id);

/** Each select or input, the field it sets, and how its value is read. */
const FIELDS = {
  quality: ["quality", String],
  format: ["output_format", String],
  compression: ["output_compression", Number],
  background: ["background", String],
  style: ["style", String],
  complexity: ["complexity", String],
  frames: ["frame_count", Number],
  "frame-duration": ["frame_duration_ms", Number],
  seed: ["seed", Number],
  steps: ["steps", Number],
  guidance: ["guidance_scale", Number],
  negative: ["negative_prompt", String],
};
const EXTENSION_CONTROLS = { seed: "seed", steps: "steps", guidance_scale: "guidance", negative_prompt: "negative" };
const NOT_STREAMED = new Set(["gif", "svg"]);

/** Fill a select with `values` after a "default" entry, keeping the choice when it still exists. */
function choose(select, values, fallback) {
  const kept = select.value;
  select.replaceChildren();
  if (fallback !== undefined) select.append(new Option(`default (${fallback})`, ""));
  for (const v of values) select.append(new Option(v, v));
  select.value = [...select.options].some((o) => o.value === kept) ? kept : select.options[0]?.value ?? "";
}

const show = (id, on) => ($(id).closest(".field").hidden = !on);

export class Controls {
  constructor(models) {
    this.models = new Map(models.map((m) => [m.id, m]));
    const select = $("model");
    select.replaceChildren(
      ...models.map((m) => new Option(m.shutdown_date ? `${m.id} (retired ${m.shutdown_date})` : m.id, m.id)),
    );
  }

  get model() {
    return this.models.get($("model").value);
  }

  get gpt() {
    return this.model.profile === "gpt-image";
  }

  /** Offer what `model` supports for `mode` (generate or edit) and no more. */
  apply(mode) {
    const m = this.model;
    const info = [`${m.family} family`, `${m.backend} backend`];
    if (m.served_by !== m.id) info.push(`served by ${m.served_by}`);
    if (m.shutdown_date) info.push(`retired at OpenAI on ${m.shutdown_date}, served as documented then`);
    if (m.strict) info.push("strict: OpenAI's parameters exactly");
    $("model-info").textContent = info.join(" · ");

    const sizes = [...m.sizes, ...(this.gpt ? ["auto"] : []), ...(m.size_rule ? ["custom"] : [])];
    choose($("size"), sizes, m.default_size);
    const rule = m.size_rule;
    $("size-rule").textContent = rule
      ? `Width and height divisible by ${rule.multiple}, sides within 1:${rule.max_aspect}, longest edge ` +
        `${rule.max_edge}, ${rule.min_pixels}–${rule.max_pixels} pixels.`
      : "";
    if (rule) for (const id of ["width", "height"]) Object.assign($(id), { step: rule.multiple, max: rule.max_edge });
    choose($("quality"), [...m.qualities, "auto"], m.default_quality);
    choose($("format"), m.output_formats, m.output_formats.length ? "png" : undefined);
    show("format", m.output_formats.length > 0);
    choose($("background"), m.transparent_background ? ["transparent", "opaque", "auto"] : ["opaque", "auto"], "auto");
    show("background", this.gpt);
    choose($("style"), ["vivid", "natural"], "vivid");
    show("style", m.profile === "dall-e-3");
    choose($("complexity"), ["low", "medium", "high"], "auto");
    show("complexity", m.complexity);
    $("n").max = m.profile === "dall-e-3" ? 1 : 10;

    for (const [ext, id] of Object.entries(EXTENSION_CONTROLS)) show(id, m.extensions.includes(ext));
    $("steps").max = m.max_steps ?? "";
    if (m.guidance_range) Object.assign($("guidance"), { min: m.guidance_range[0], max: m.guidance_range[1] });
    $("extensions").hidden = m.extensions.length === 0;

    $("tab-edit").disabled = !m.operations.includes("edits");
    $("vary").hidden = mode !== "edit" || !m.operations.includes("variations");
    $("markup-mode-label").hidden = !m.markup;
    if (!m.markup && document.querySelector("input[name=paint-mode][value=markup]").checked) {
      document.querySelector("input[name=paint-mode][value=mask]").click();
    }
    this.refresh();
  }

  /** What depends on other choices: custom sizes, compression, GIF frames, streaming. */
  refresh() {
    const m = this.model;
    const format = $("format").value || (m.output_formats.length ? "png" : "");
    $("custom-size").hidden = $("size").value !== "custom";
    show("compression", format === "jpeg" || format === "webp");
    show("frames", format === "gif");
    show("frame-duration", format === "gif");
    const streamable = m.partial_images && !NOT_STREAMED.has(format);
    $("streaming").hidden = !m.partial_images;
    $("stream").disabled = !streamable;
    $("partials").disabled = !streamable || !$("stream").checked;
    $("stream-hint").textContent = streamable ? "" : `${format.toUpperCase()} images are not streamed.`;
  }

  get streaming() {
    return !$("stream").disabled && $("stream").checked;
  }

  /** The request the form describes: {endpoint, fields, files}, fields in the order they are sent. */
  request(endpoint, files = {}) {
    const m = this.model;
    const fields = { model: m.id };
    if (endpoint !== "variations") fields.prompt = $("prompt").value;
    const n = Number($("n").value || 1);
    if (n !== 1) fields.n = n;
    const size = $("size").value === "custom" ? `${$("width").value}x${$("height").value}` : $("size").value;
    if (size) fields.size = size;
    for (const [id, [name, read]] of Object.entries(FIELDS)) {
      const control = $(id);
      if (control.closest(".field").hidden || control.closest("fieldset").hidden || control.value === "") continue;
      if (endpoint === "variations" && name !== "seed") continue; // a variation takes no prompt options
      fields[name] = read(control.value);
    }
    if (!this.gpt) fields.response_format = "b64_json"; // DALL·E answers with URLs unless asked
    if (endpoint !== "variations" && this.streaming) {
      fields.stream = true;
      fields.partial_images = Number($("partials").value);
    }
    return { endpoint, fields, files };
  }

  /** Put a request sent before back into the form (the caller restores its files). */
  recall(request) {
    const f = request.fields;
    if (this.models.has(f.model)) $("model").value = f.model;
    this.apply(request.endpoint === "generations" ? "generate" : "edit");
    if (f.prompt !== undefined) $("prompt").value = f.prompt;
    $("n").value = f.n ?? 1;
    const size = $("size");
    if (!f.size) size.value = "";
    else if ([...size.options].some((o) => o.value === f.size)) size.value = f.size;
    else {
      size.value = "custom";
      [$("width").value, $("height").value] = f.size.split("x");
    }
    for (const [id, [name]] of Object.entries(FIELDS)) $(id).value = f[name] ?? "";
    $("stream").checked = Boolean(f.stream);
    if (f.stream) $("partials").value = String(f.partial_images ?? 0);
    this.refresh();
  }
}
