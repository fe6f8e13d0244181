// A minimal OpenAI-compatible chat client (POST <base>/chat/completions, JSON or
// server-sent events). The official `openai` package was tried first: its client class
// pulls in every API resource (about 390 kB minified, unshakeable), for one endpoint.
import { sseEvents } from "../api.js";

export class LlmError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function post(fetchFn, baseUrl, body, signal, stream) {
  const res = await fetchFn(baseUrl.replace(/\/+$/, "") + "/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", accept: stream ? "text/event-stream" : "application/json" },
    body: JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    let doc = null;
    try {
      doc = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    const e = doc && doc.error;
    const msg = (e && (e.message || (typeof e === "string" ? e : ""))) || (doc && doc.message) || text.slice(0, 300) || res.statusText;
    throw new LlmError(res.status, `HTTP ${res.status}: ${msg}`, doc || text);
  }
  return res;
}

/** One answer: the parsed chat.completion. */
export async function chatCompletion({ fetchFn, baseUrl, body, signal }) {
  const res = await post(fetchFn, baseUrl, { ...body, stream: false }, signal, false);
  return res.json();
}

/** Streamed: yields each chat.completion.chunk until [DONE] (or the end of the stream). */
export async function* chatCompletionStream({ fetchFn, baseUrl, body, signal }) {
  const res = await post(fetchFn, baseUrl, { ...body, stream: true }, signal, true);
  const ctype = res.headers.get("content-type") || "";
  if (!ctype.includes("text/event-stream")) {
    // a server that ignores `stream`: one JSON answer, given as one chunk
    const doc = await res.json();
    const c = (doc.choices || [])[0] || {};
    yield { ...doc, choices: [{ index: 0, delta: c.message || {}, finish_reason: c.finish_reason }] };
    return;
  }
  for await (const { event, data: payload } of sseEvents(res.body)) {
    if (payload.trim() === "[DONE]") return;
    let doc;
    try {
      doc = JSON.parse(payload);
    } catch {
      continue;
    }
    if (event === "error" || (doc && doc.error && !doc.choices)) {
      const e = doc.error || doc;
      throw new LlmError(0, `stream error: ${e.message || JSON.stringify(e)}`, doc);
    }
    yield doc;
  }
}
