// "View code": the request the playground sends, as curl, the Python SDK and the Node SDK. Each
// snippet sends the same fields (easel's extensions through the SDKs' way for extra fields) and
// writes the images it gets back to files, so that running it gives the bytes shown here.

/** easel's own fields: the SDKs send them as extra body fields. */
const EXTENSIONS = new Set(["seed", "steps", "guidance_scale", "negative_prompt"]);
const CALLS = {
  generations: ["generate", "images.generate"],
  edits: ["edit", "images.edit"],
  variations: ["create_variation", "images.createVariation"],
};

const OUTPUTS = { generations: "image", edits: "edited", variations: "variation" };

/** What the images of the answer are written to: image.png (edited.png, variation.png), or
 *  image-1.png, image-2.png, ...; never the name of a file the request sends. */
function stem(request) {
  const base = OUTPUTS[request.endpoint];
  const inputs = Object.values(request.files).map((f) => f.name.split(".")[0]);
  return inputs.some((name) => name === base || name.startsWith(`${base}-`)) ? `new-${base}` : base;
}

export function outputName(request, index, count) {
  const ext = request.fields.output_format || "png";
  return count === 1 ? `${stem(request)}.${ext}` : `${stem(request)}-${index + 1}.${ext}`;
}

/** What a snippet's SSE events of completed images are called, for this request. */
function completedType(request) {
  return request.endpoint === "edits" ? "image_edit.completed" : "image_generation.completed";
}

function names(request) {
  const n = Number(request.fields.n || 1);
  const ext = request.fields.output_format || "png";
  return { n, ext, stem: stem(request), single: outputName(request, 0, 1) };
}

const shell = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

export function curl(request, base, keyed) {
  const url = `${base}/v1/images/${request.endpoint}`;
  const lines = [`curl -sS ${shell(url)}`];
  if (request.fields.stream) lines[0] = `curl -sSN ${shell(url)}`;
  if (keyed) lines.push(`-H "Authorization: Bearer $OPENAI_API_KEY"`);
  if (Object.keys(request.files).length) {
    for (const [k, v] of Object.entries(request.fields)) lines.push(`--form-string ${shell(`${k}=${v}`)}`);
    for (const [k, f] of Object.entries(request.files)) lines.push(`-F ${shell(`${k}=@${f.name}`)}`);
  } else {
    lines.push(`-H "Content-Type: application/json"`);
    lines.push(`-d ${shell(JSON.stringify(request.fields))}`);
  }
  const { n, ext, stem: prefix, single } = names(request);
  const pick = request.fields.stream
    ? `sed -n 's/^data: //p' | jq -r 'select(.type == "${completedType(request)}") | .b64_json'`
    : `jq -r '.data[].b64_json'`;
  const save =
    n === 1
      ? `base64 --decode > ${single}`
      : `{ i=0; while read -r b64; do i=$((i + 1)); echo "$b64" | base64 --decode > "${prefix}-$i.${ext}"; done; }`;
  return `${lines.join(" \\\n  ")} \\\n  | ${pick} | ${save}\n`;
}

/** A Python literal of a JSON value (JSON's strings and numbers are Python's as they are). */
function py(value) {
  if (typeof value === "boolean") return value ? "True" : "False";
  if (value === null) return "None";
  if (typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${py(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

export function python(request, base, keyed) {
  const [call] = CALLS[request.endpoint];
  const args = [];
  const extra = {};
  for (const [k, v] of Object.entries(request.fields)) {
    if (EXTENSIONS.has(k)) extra[k] = v;
    else args.push(`    ${k}=${py(v)},`);
  }
  for (const [k, f] of Object.entries(request.files)) args.push(`    ${k}=open(${py(f.name)}, "rb"),`);
  if (Object.keys(extra).length) args.push(`    extra_body=${py(extra)},  # easel's extensions`);
  const client = keyed
    ? `client = OpenAI(base_url=${py(`${base}/v1`)})  # the key: $OPENAI_API_KEY`
    : `client = OpenAI(base_url=${py(`${base}/v1`)}, api_key="unused")  # this easel needs no key`;
  const { n, ext, stem: prefix, single } = names(request);
  const out = [];
  if (request.fields.stream) {
    out.push(`answer = client.images.${call}(`, ...args, ")");
    out.push(`images = [event for event in answer if event.type == ${py(completedType(request))}]`);
  } else {
    out.push(`answer = client.images.${call}(`, ...args, ")", "images = answer.data");
  }
  if (n === 1) {
    out.push(`with open(${py(single)}, "wb") as f:`, "    f.write(base64.b64decode(images[0].b64_json))");
  } else {
    out.push("for i, image in enumerate(images, 1):");
    out.push(`    with open(f"${prefix}-{i}.${ext}", "wb") as f:`, "        f.write(base64.b64decode(image.b64_json))");
  }
  return ["import base64", "", "from openai import OpenAI", "", client, "", ...out, ""].join("\n");
}

const js = (value) => JSON.stringify(value);

export function node(request, base, keyed) {
  const [, call] = CALLS[request.endpoint];
  const args = Object.entries(request.fields).map(
    ([k, v]) => `  ${/^[a-z_]+$/.test(k) ? k : js(k)}: ${js(v)},${EXTENSIONS.has(k) ? " // easel's extension" : ""}`,
  );
  for (const [k, f] of Object.entries(request.files)) args.push(`  ${k}: fs.createReadStream(${js(f.name)}),`);
  const key = keyed ? "process.env.OPENAI_API_KEY" : `"unused" /* this easel needs no key */`;
  const { n, ext, stem: prefix, single } = names(request);
  const out = [`const answer = await client.${call}({`, ...args, "});"];
  if (request.fields.stream) {
    out.push("const images = [];");
    out.push(`for await (const event of answer) if (event.type === ${js(completedType(request))}) images.push(event);`);
  } else {
    out.push("const images = answer.data;");
  }
  out.push(
    n === 1
      ? `fs.writeFileSync(${js(single)}, Buffer.from(images[0].b64_json, "base64"));`
      : `images.forEach((image, i) => fs.writeFileSync(\`${prefix}-\${i + 1}.${ext}\`, Buffer.from(image.b64_json, "base64")));`,
  );
  return [
    'import fs from "node:fs";',
    'import OpenAI from "openai";',
    "",
    `const client = new OpenAI({ baseURL: ${js(`${base}/v1`)}, apiKey: ${key} });`,
    ...out,
    "",
  ].join("\n");
}

export const LANGUAGES = { curl, python, node };
