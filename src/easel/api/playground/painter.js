// The edit canvas: the image at its own resolution, and two layers painted over it with pointer
// events: the mask (a tinted overlay; painted pixels are exported with alpha 0, OpenAI's meaning
// of "change this") and the markup (strokes exported as they are, on transparency).

const TINT = [255, 32, 80];
const UNDO_DEPTH = 40;

export class Painter {
  constructor({ canvas, image, mask, markup, onChange }) {
    this.box = canvas;
    this.image = image;
    this.layers = { mask, markup };
    this.mode = "mask";
    this.tool = "brush";
    this.size = 64;
    this.colour = "#ff2050";
    this.source = null; // {blob, name}: the file sent as `image`, byte for byte
    this.undos = [];
    this.onChange = onChange || (() => {});
    for (const layer of Object.values(this.layers)) {
      layer.getContext("2d", { willReadFrequently: true }); // painted, read back, painted again
      this.listen(layer);
    }
  }

  get layer() {
    return this.layers[this.mode];
  }

  get loaded() {
    return this.source !== null;
  }

  /** Show `blob` as the image to edit; the layers are cleared to its size. */
  async load(blob, name) {
    const bitmap = await createImageBitmap(blob);
    const { width, height } = bitmap;
    for (const c of [this.image, ...Object.values(this.layers)]) {
      c.width = width;
      c.height = height;
    }
    this.image.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    this.source = { blob, name: name || `image.${(blob.type.split("/")[1] || "png").replace("jpeg", "jpg")}` };
    this.undos = [];
    this.box.classList.remove("empty");
    this.onChange();
  }

  setMode(mode) {
    this.mode = mode; // the mask stays visible under a markup, for reference
    this.layers.markup.hidden = mode !== "markup";
    this.layers.mask.classList.toggle("inactive", mode !== "mask");
  }

  /** A brush size within the slider's range. */
  resize(size) {
    this.size = Math.max(2, Math.min(400, Math.round(size)));
    return this.size;
  }

  listen(layer) {
    let last = null;
    const point = (e) => {
      const r = layer.getBoundingClientRect();
      return [((e.clientX - r.left) * layer.width) / r.width, ((e.clientY - r.top) * layer.height) / r.height];
    };
    layer.addEventListener("pointerdown", (e) => {
      if (!this.loaded || e.button !== 0) return;
      layer.setPointerCapture(e.pointerId);
      this.snapshot();
      last = point(e);
      this.stroke(last, last);
    });
    layer.addEventListener("pointermove", (e) => {
      if (last === null) return;
      const next = point(e);
      this.stroke(last, next);
      last = next;
    });
    const end = () => {
      if (last !== null) this.onChange();
      last = null;
    };
    layer.addEventListener("pointerup", end);
    layer.addEventListener("pointercancel", end);
  }

  stroke([x0, y0], [x1, y1]) {
    const ctx = this.layer.getContext("2d");
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = this.mode === "mask" ? `rgb(${TINT})` : this.colour;
    ctx.lineWidth = this.size;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1 + 0.01, y1);
    ctx.stroke();
  }

  snapshot() {
    const c = this.layer;
    this.undos.push([this.mode, c.getContext("2d").getImageData(0, 0, c.width, c.height)]);
    if (this.undos.length > UNDO_DEPTH) this.undos.shift();
  }

  undo() {
    const last = this.undos.pop();
    if (!last) return;
    this.layers[last[0]].getContext("2d").putImageData(last[1], 0, 0);
    this.onChange();
  }

  clear() {
    this.snapshot();
    const c = this.layer;
    c.getContext("2d").clearRect(0, 0, c.width, c.height);
    this.onChange();
  }

  /** Painted becomes unpainted and the other way round (the mask layer). */
  invert() {
    if (!this.loaded) return;
    const previous = this.mode;
    this.mode = "mask";
    this.snapshot();
    const c = this.layers.mask;
    const ctx = c.getContext("2d");
    const data = ctx.getImageData(0, 0, c.width, c.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      const painted = px[i + 3] > 0;
      [px[i], px[i + 1], px[i + 2], px[i + 3]] = painted ? [0, 0, 0, 0] : [...TINT, 255];
    }
    ctx.putImageData(data, 0, 0);
    this.mode = previous;
    this.onChange();
  }

  painted(mode) {
    const c = this.layers[mode];
    if (!c.width) return false;
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) return true;
    return false;
  }

  /** The mask as OpenAI reads it: a PNG of the image's size, alpha 0 where painted, opaque elsewhere. */
  async mask() {
    if (!this.painted("mask")) return null;
    const c = this.layers.mask;
    const painted = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const out = new ImageData(c.width, c.height);
    for (let i = 0; i < painted.length; i += 4) {
      out.data[i + 3] = painted[i + 3] > 0 ? 0 : 255;
    }
    return { name: "mask.png", blob: await png(out) };
  }

  /** The markup: its strokes as painted, on a transparent PNG of the image's size. */
  async markup() {
    if (!this.painted("markup")) return null;
    const c = this.layers.markup;
    return { name: "markup.png", blob: await png(c.getContext("2d").getImageData(0, 0, c.width, c.height)) };
  }

  /** Paint back a mask sent before (alpha 0 = painted), as when a request is recalled. */
  async restore(mode, blob) {
    const bitmap = await createImageBitmap(blob);
    const c = this.layers[mode];
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (mode === "markup") {
      ctx.drawImage(bitmap, 0, 0, c.width, c.height);
    } else {
      const scratch = new OffscreenCanvas(c.width, c.height).getContext("2d");
      scratch.drawImage(bitmap, 0, 0, c.width, c.height);
      const data = scratch.getImageData(0, 0, c.width, c.height);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {
        const painted = px[i + 3] === 0;
        [px[i], px[i + 1], px[i + 2], px[i + 3]] = painted ? [...TINT, 255] : [0, 0, 0, 0];
      }
      ctx.putImageData(data, 0, 0);
    }
    bitmap.close();
    this.onChange();
  }
}

async function png(imageData) {
  const c = new OffscreenCanvas(imageData.width, imageData.height);
  c.getContext("2d").putImageData(imageData, 0, 0);
  return c.convertToBlob({ type: "image/png" });
}
