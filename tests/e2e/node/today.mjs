// easel through openai-node 7.59's typed arguments (CONTRACT §8). tests/e2e/test_node_sdk.py runs
// this against `easel serve` and checks the JSON it prints: one entry per call.
import { readFile } from "node:fs/promises";
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ baseURL: `${process.env.EASEL_URL}/v1`, apiKey: "sk-node", maxRetries: 0 });
const out = {};

const wide = await client.images.generate({
  model: "gpt-image-2.6-sunburst",
  prompt: "a wide harbour at dawn",
  size: "1536x864",
  quality: "xhigh",
  complexity: "high",
  safety_identifier: "node-user-1",
});
out.wide = { size: wide.size, quality: wide.quality, safety: wide.safety_identifier, b64: wide.data[0].b64_json };

const gif = await client.images.generate({
  prompt: "a spinning top",
  output_format: "gif",
  frame_count: 3,
  frame_duration_ms: 50,
});
out.gif = { format: gif.output_format, b64: gif.data[0].b64_json };

const svg = await client.images.generate({
  prompt: "a red disc",
  output_format: "svg",
  svg: { model: "node-author", reasoning: { effort: "minimal" } },
});
out.svg = { format: svg.output_format, usage: svg.svg_usage, document: Buffer.from(svg.data[0].b64_json, "base64").toString() };

const events = [];
const stream = await client.images.generate({
  prompt: "a mountain lake",
  stream: true,
  partial_images: 2,
  safety_identifier: "node-user-2",
});
for await (const event of stream) events.push({ type: event.type, safety: event.safety_identifier ?? null });
out.stream = events;

const image = await toFile(await readFile(process.env.IMAGE), "image.png", { type: "image/png" });
const markup = await toFile(await readFile(process.env.MARKUP), "markup.png", { type: "image/png" });
const edited = await client.images.edit({ image, markup, prompt: "a boat", model: "gpt-image-2.5-flare", size: "1024x1024" });
out.markup = { size: edited.size, b64: edited.data[0].b64_json };

try {
  await client.images.generate({ model: "gpt-image-2", prompt: "x", size: "9:16" });
  out.bad_size = "no error";
} catch (error) {
  out.bad_size = { status: error.status, code: error.code, param: error.param, message: error.error?.message, type: error.type };
}

const models = [];
for await (const model of client.models.list()) models.push({ id: model.id, shutdown_date: model.shutdown_date });
out.models = models;

process.stdout.write(JSON.stringify(out));
