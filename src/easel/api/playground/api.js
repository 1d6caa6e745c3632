// The one way the playground talks to easel: same-origin requests to the public API, with the
// key the user typed (if any), OpenAI's error envelope read as it is, and SSE streams parsed.

const KEY = "easel.playground.key";

/** The API key, kept in session storage (this tab only, gone when it closes). */
export const key = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

/** An error easel answered with: OpenAI's `error` object, its status and when to retry. */
export class ApiError extends Error {
  constructor(status, error, retryAfterMs) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || null;
    this.code = error.code || null;
    this.param = error.param || null;
    this.retryAfterMs = retryAfterMs;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (key.get()) h.Authorization = `Bearer ${key.get()}`;
  return h;
}

/** Milliseconds to wait before a retry, from `retry-after-ms` or `retry-after` (seconds). */
function retryAfter(response) {
  const ms = Number(response.headers.get("retry-after-ms"));
  if (ms > 0) return ms;
  const s = Number(response.headers.get("retry-after"));
  return s > 0 ? s * 1000 : null;
}

async function failure(response) {
  let error = { message: `HTTP ${response.status} ${response.statusText}` };
  try {
    const body = await response.json();
    if (body && body.error) error = body.error;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, error, retryAfter(response));
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { message: `No answer from easel at ${location.origin}: ${e.message}` }, null);
  }
}

/** GET a JSON resource of the API (a path relative to the page, e.g. `v1/models`). */
export async function get(path) {
  const response = await send(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** The body of a request: JSON for generations, multipart when it carries files. */
function body(request) {
  const { fields, files } = request;
  if (!Object.keys(files).length) {
    return { body: JSON.stringify(fields), headers: headers({ "Content-Type": "application/json" }) };
  }
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  for (const [name, file] of Object.entries(files)) form.append(name, file.blob, file.name);
  return { body: form, headers: headers() };
}

/**
 * POST an images request. Whole answers resolve to the response body; a stream calls
 * `onEvent(type, data)` for each SSE event and resolves once it ends. Errors throw ApiError
 * (an `event: error` in the stream included).
 */
export async function images(request, { signal, onEvent } = {}) {
  const response = await send(`v1/images/${request.endpoint}`, { method: "POST", ...body(request), signal });
  if (!response.ok) throw await failure(response);
  if (!request.fields.stream) return response.json();
  for await (const [type, data] of events(response.body)) {
    if (type === "error" || data.type === "error") throw new ApiError(response.status, data.error || data, null);
    onEvent(type, data);
  }
  return null;
}

/** Server-sent events from a byte stream: [event type, parsed data] pairs, until it ends. */
async function* events(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      const text = data.join("\n");
      if (!text || text === "[DONE]") continue;
      yield [type, JSON.parse(text)];
    }
  }
}
