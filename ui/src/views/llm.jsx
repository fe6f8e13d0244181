// LLM playground: chat with a model of an LLM route through the admin relay, with the
// small OpenAI-compatible client of pg-openai.js (see there why not the `openai` SDK).
// Streaming by default (stream_options.include_usage for the token counts), or one
// answer; each reply shows prompt / completion tokens, time to first token and total.
import { useEffect, useRef, useState } from "preact/hooks";
import { chatCompletion, chatCompletionStream } from "./pg-openai.js";
import { relayUrl } from "../api.js";
import { RoutePicker, Select, Credentials, NO_CREDENTIALS, headersFor, routeFetch, errorText, fmtMs } from "./pg-common.js";
import "./llm.css";

/** The OpenAI base path of a route: its paths' prefix before /chat/completions, else /v1. */
function basePath(route) {
  if (!route) return "/v1";
  const paths = (route.route && route.route.paths) || [route.path];
  for (const p of paths) {
    const i = typeof p === "string" ? p.indexOf("/chat/completions") : -1;
    if (i >= 0) return p.slice(0, i) || "/";
  }
  const p = (route.path || "/").replace(/\/+$/, "");
  if (!p) return "/v1";
  return /\/v1$/.test(p) ? p : `${p}/v1`;
}

function Stats({ s }) {
  if (!s) return null;
  const u = s.usage || {};
  return (
    <dl class="llm-stats" aria-label="Reply statistics">
      <div>
        <dt>Prompt tokens</dt>
        <dd>{u.prompt_tokens ?? "—"}</dd>
      </div>
      <div>
        <dt>Completion tokens</dt>
        <dd>{u.completion_tokens ?? "—"}</dd>
      </div>
      <div>
        <dt>Time to first token</dt>
        <dd>{fmtMs(s.ttft)}</dd>
      </div>
      <div>
        <dt>Total time</dt>
        <dd>{fmtMs(s.total)}</dd>
      </div>
      {s.model && (
        <div>
          <dt>Model</dt>
          <dd>{s.model}</dd>
        </div>
      )}
      {s.finish && (
        <div>
          <dt>Finish</dt>
          <dd>{s.finish}</dd>
        </div>
      )}
    </dl>
  );
}

export default function View() {
  const [route, setRoute] = useState(null);
  const [creds, setCreds] = useState(NO_CREDENTIALS);
  const [base, setBase] = useState("/v1");
  const [model, setModel] = useState("");
  const [system, setSystem] = useState("");
  const [stream, setStream] = useState(true);
  const [temperature, setTemperature] = useState("");
  const [maxTokens, setMaxTokens] = useState("");
  const [input, setInput] = useState("");
  const [history, setHistory] = useState([]); // [{role, content, stats?, error?}]
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const abort = useRef(null);
  const endRef = useRef(null);

  useEffect(() => () => abort.current && abort.current.abort(), []);
  useEffect(() => {
    setBase(basePath(route));
    const models = (route && route.models) || [];
    if (models.length && !models.includes(model)) setModel(models[0]);
  }, [route]);
  useEffect(() => {
    if (endRef.current && endRef.current.scrollIntoView) endRef.current.scrollIntoView({ block: "nearest" });
  }, [history]);

  async function send(e) {
    if (e) e.preventDefault();
    const text = input.trim();
    if (!route || !model.trim() || !text || busy) return;
    setError("");
    const msgs = [...history.filter((m) => !m.error), { role: "user", content: text }];
    const wire = [...(system.trim() ? [{ role: "system", content: system.trim() }] : []), ...msgs.map((m) => ({ role: m.role, content: m.content }))];
    const reply = { role: "assistant", content: "", pending: true };
    setHistory([...msgs, reply]);
    setInput("");
    setBusy(true);
    const ctl = new AbortController();
    abort.current = ctl;
    const fetchFn = routeFetch(route.host, headersFor(creds));
    const baseUrl = relayUrl(route.port, base || "/v1");
    const body = { model: model.trim(), messages: wire };
    if (temperature !== "") body.temperature = Number(temperature);
    if (maxTokens !== "") body.max_tokens = parseInt(maxTokens, 10);
    const t0 = performance.now();
    const stats = { ttft: null, total: null, usage: null, model: "", finish: "" };
    const update = (patch) => setHistory((h) => [...h.slice(0, -1), { ...h[h.length - 1], ...patch }]);
    try {
      if (stream) {
        const s = chatCompletionStream({ fetchFn, baseUrl, body: { ...body, stream_options: { include_usage: true } }, signal: ctl.signal });
        let content = "";
        for await (const chunk of s) {
          if (chunk.model) stats.model = chunk.model;
          if (chunk.usage) stats.usage = chunk.usage;
          const c = (chunk.choices || [])[0];
          if (c) {
            const d = (c.delta && c.delta.content) || "";
            if (d) {
              if (stats.ttft == null) stats.ttft = performance.now() - t0;
              content += d;
              update({ content });
            }
            if (c.finish_reason) stats.finish = c.finish_reason;
          }
        }
        stats.total = performance.now() - t0;
        update({ content: content.replace(/\s+$/, ""), pending: false, stats });
      } else {
        const r = await chatCompletion({ fetchFn, baseUrl, body, signal: ctl.signal });
        stats.total = stats.ttft = performance.now() - t0;
        stats.usage = r.usage || null;
        stats.model = r.model || "";
        const c = (r.choices || [])[0] || {};
        stats.finish = c.finish_reason || "";
        const m = c.message || {};
        let content = m.content || "";
        if (m.tool_calls && m.tool_calls.length) content += (content ? "\n" : "") + JSON.stringify(m.tool_calls, null, 2);
        update({ content, pending: false, stats });
      }
    } catch (err) {
      const m = err.name === "AbortError" ? "stopped" : errorText(err);
      stats.total = performance.now() - t0;
      update({ pending: false, error: m, stats });
      if (m !== "stopped") setError(m);
    } finally {
      setBusy(false);
      abort.current = null;
    }
  }

  const models = (route && route.models) || [];
  const last = [...history].reverse().find((m) => m.role === "assistant" && m.stats);
  return (
    <div class="pg">
      <h1>LLM playground</h1>
      <div class="cols">
        <div>
          <section class="card" aria-label="Model settings">
            <h2>Model</h2>
            <RoutePicker kind="llm" label="LLM route" disabled={busy} onChange={setRoute} />
            <label>
              Base path <span class="muted small">(OpenAI-compatible, relative to the route's port)</span>
              <input value={base} disabled={busy} onInput={(e) => setBase(e.target.value)} />
            </label>
            {models.length ? (
              <Select label="Model" value={model} disabled={busy} onChange={setModel}>
                {models.map((m) => (
                  <option key={m} value={m}>
                    {m}
                  </option>
                ))}
              </Select>
            ) : (
              <label>
                Model
                <input value={model} disabled={busy} onInput={(e) => setModel(e.target.value)} placeholder="model name" />
              </label>
            )}
            <Credentials value={creds} onChange={setCreds} disabled={busy} />
            <label>
              System prompt <span class="muted small">(optional)</span>
              <textarea rows={2} value={system} disabled={busy} onInput={(e) => setSystem(e.target.value)} />
            </label>
            <div class="pg-grid2">
              <label>
                Temperature
                <input type="number" min="0" max="2" step="0.1" value={temperature} placeholder="default" onInput={(e) => setTemperature(e.target.value)} />
              </label>
              <label>
                Max tokens
                <input type="number" min="1" step="1" value={maxTokens} placeholder="default" onInput={(e) => setMaxTokens(e.target.value)} />
              </label>
            </div>
            <label class="pg-inline">
              <input type="checkbox" checked={stream} disabled={busy} onChange={(e) => setStream(e.target.checked)} />
              Stream the answer
            </label>
          </section>
        </div>
        <div>
          <section class="card llm-chat" aria-label="Chat">
            <div class="row">
              <h2>Chat</h2>
              <span class="grow" />
              <button type="button" class="secondary small" disabled={busy || !history.length} onClick={() => setHistory([])}>
                Clear chat
              </button>
            </div>
            <ol class="llm-history" aria-label="Messages">
              {!history.length && <li class="muted">No messages yet.</li>}
              {history.map((m, i) => (
                <li key={i} class={`llm-msg llm-${m.role}`}>
                  <span class="badge">{m.role}</span>
                  <div class="llm-content" aria-busy={m.pending ? "true" : undefined}>
                    {m.content || (m.pending ? <span class="muted">…</span> : "")}
                  </div>
                  {m.error && (
                    <p class={m.error === "stopped" ? "muted" : "error"}>
                      {m.error}
                    </p>
                  )}
                  {m.stats && !m.pending && (
                    <p class="small muted">
                      {m.stats.usage ? `${m.stats.usage.prompt_tokens ?? "?"} prompt + ${m.stats.usage.completion_tokens ?? "?"} completion tokens · ` : ""}
                      first token {fmtMs(m.stats.ttft)} · total {fmtMs(m.stats.total)}
                    </p>
                  )}
                </li>
              ))}
              <li ref={endRef} class="llm-end" aria-hidden="true" />
            </ol>
            {last && (
              <div class="llm-last" role="region" aria-label="Last reply">
                <h3>Last reply</h3>
                <Stats s={last.stats} />
              </div>
            )}
            <form onSubmit={send}>
              <label>
                Your message
                <textarea
                  rows={3}
                  value={input}
                  onInput={(e) => setInput(e.target.value)}
                  onKeyDown={(e) => {
                    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
                  }}
                />
              </label>
              <div class="row pg-actions">
                <button type="submit" disabled={busy || !route || !model.trim() || !input.trim()}>
                  Send
                </button>
                {busy && (
                  <button type="button" class="secondary" onClick={() => abort.current && abort.current.abort()}>
                    Stop
                  </button>
                )}
                <span class="muted small">Enter sends, Shift+Enter for a new line</span>
              </div>
            </form>
            {error && (
              <p class="error" role="alert">
                {error}
              </p>
            )}
          </section>
        </div>
      </div>
    </div>
  );
}
