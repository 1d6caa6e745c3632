// Small DOM helpers the page's modules share: elements, buttons, download links, image blobs.

const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp", gif: "image/gif", svg: "image/svg+xml" };

export const $ = (id) => document.getElementById(id);

/** An element with `props` assigned and the children that are not null. */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function button(text, onclick, props = {}) {
  return el("button", { type: "button", textContent: text, onclick, ...props });
}

/** A link that saves `blob` as `name`. */
export function download(blob, name, label = "Download") {
  return el("a", { href: URL.createObjectURL(blob), download: name, textContent: label, className: "button" });
}

/** The image a `b64_json` carries, typed by its output format. */
export function blobOf(b64, format) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: MIME[format] || "image/png" });
}
