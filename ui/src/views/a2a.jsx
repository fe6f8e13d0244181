// A2A playground: fetch an A2A route's agent card through the admin relay, show it, and
// send a message to the agent -- in one answer (SendMessage) or streamed
// (SendStreamingMessage), the task's states shown as they change -- with the official
// JavaScript SDK (@a2a-js/sdk: A2A v1.0 JSON-RPC; its v0.3 transport for agents whose
// card advertises v0.3 only). The card's URLs name the gateway's address; requests go
// to the relay URL of the same path, so the browser stays on the admin origin.
import { useEffect, useRef, useState } from "preact/hooks";
import { Client, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { LegacyJsonRpcTransport } from "@a2a-js/sdk/compat/v0_3/client";
import { relayUrl } from "../api.js";
import { RoutePicker, Credentials, NO_CREDENTIALS, headersFor, routeFetch, httpError, errorText, fmtMs, clock, LogPanel, useLog } from "./pg-common.js";
import "./a2a.css";

const STATES = ["unspecified", "submitted", "working", "completed", "failed", "canceled", "input-required", "rejected", "auth-required"];
const FINAL = new Set(["completed", "failed", "canceled", "rejected"]);

function stateName(s) {
  if (typeof s === "number") return STATES[s] || `state ${s}`;
  if (typeof s === "string") return s.replace(/^TASK_STATE_/, "").toLowerCase().replace(/_/g, "-");
  return "unknown";
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function partText(p) {
  const c = (p && p.content) || {};
  if (c.$case === "text") return c.value;
  if (c.$case === "data") return JSON.stringify(c.value, null, 2);
  if (c.$case === "url") return c.value;
  if (c.$case === "raw") return `(${(c.value && c.value.length) || 0} bytes${p.mediaType ? " " + p.mediaType : ""})`;
  if (p && typeof p.text === "string") return p.text; // a v0.3 shape, just in case
  return JSON.stringify(p);
}

function Parts({ parts }) {
  return (parts || []).map((p, i) => (
    <pre key={i} class="pg-out">
      {partText(p)}
    </pre>
  ));
}

/** The interfaces a card advertises: v1.0 supportedInterfaces, else v0.3 url + additionalInterfaces. */
function interfaces(card) {
  if (Array.isArray(card.supportedInterfaces) && card.supportedInterfaces.length)
    return card.supportedInterfaces.map((i) => ({ url: i.url, binding: i.protocolBinding, version: i.protocolVersion || "1.0" }));
  const out = [];
  if (card.url) out.push({ url: card.url, binding: card.preferredTransport || "JSONRPC", version: card.protocolVersion || "0.3" });
  for (const i of card.additionalInterfaces || [])
    if (!out.some((o) => o.url === i.url && o.binding === i.transport)) out.push({ url: i.url, binding: i.transport, version: card.protocolVersion || "0.3" });
  return out;
}

function Card({ card }) {
  const ifaces = interfaces(card);
  const caps = card.capabilities || {};
  return (
    <section class="card" aria-label="Agent card">
      <h2>{card.name || "(unnamed agent)"}</h2>
      {card.description && <p>{card.description}</p>}
      <dl class="pg-dl">
        <dt>Version</dt>
        <dd>{card.version || "—"}</dd>
        {card.provider && (
          <>
            <dt>Provider</dt>
            <dd>{card.provider.organization || JSON.stringify(card.provider)}</dd>
          </>
        )}
        <dt>Capabilities</dt>
        <dd>
          {Object.entries(caps)
            .filter(([, v]) => v === true)
            .map(([k]) => k)
            .join(", ") || "none"}
        </dd>
        <dt>Modes</dt>
        <dd>
          in: {(card.defaultInputModes || []).join(", ") || "—"} · out: {(card.defaultOutputModes || []).join(", ") || "—"}
        </dd>
      </dl>
      <h3>Interfaces</h3>
      <ul class="plain">
        {ifaces.map((i, n) => (
          <li key={n}>
            <span class="badge">{i.binding}</span> <span class="badge">v{i.version}</span> <code class="small">{i.url}</code>
          </li>
        ))}
      </ul>
      <h3>Skills</h3>
      {(card.skills || []).length ? (
        <ul class="plain a2a-skills">
          {card.skills.map((s) => (
            <li key={s.id}>
              <strong>{s.name || s.id}</strong> {s.description && <span class="muted">— {s.description}</span>}
              {(s.tags || []).length > 0 && (
                <div class="small">
                  {s.tags.map((t) => (
                    <span key={t} class="badge">
                      {t}
                    </span>
                  ))}
                </div>
              )}
              {(s.examples || []).length > 0 && <div class="small muted">e.g. {s.examples.map((e) => `“${e}”`).join(", ")}</div>}
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">No skills listed.</p>
      )}
      <details>
        <summary>Card JSON</summary>
        <pre class="pg-out">{JSON.stringify(card, null, 2)}</pre>
      </details>
    </section>
  );
}

export default function View() {
  const [route, setRoute] = useState(null);
  const [creds, setCreds] = useState(NO_CREDENTIALS);
  const [card, setCard] = useState(null);
  const [cardError, setCardError] = useState("");
  const [loadingCard, setLoadingCard] = useState(false);
  const [text, setText] = useState("hello");
  const [rpcPath, setRpcPath] = useState("/");
  const [sameContext, setSameContext] = useState(true);
  const [busy, setBusy] = useState(false);
  const [run, setRun] = useState(null); // {mode, task, states: [{state, t}], artifacts, messages, error, ms}
  const [log, addLog, clearLog] = useLog();
  const abort = useRef(null);
  const lastContext = useRef("");

  useEffect(() => () => abort.current && abort.current.abort(), []);
  useEffect(() => {
    setCard(null);
    setCardError("");
    lastContext.current = "";
    if (route) setRpcPath(route.path.replace(/\/+$/, "") + "/");
  }, [route]);

  function fetchFn() {
    return routeFetch(route.host, headersFor(creds));
  }

  async function loadCard() {
    if (!route) return;
    setLoadingCard(true);
    setCardError("");
    setCard(null);
    setRun(null);
    const path = route.path.replace(/\/+$/, "") + "/.well-known/agent-card.json";
    try {
      const res = await fetchFn()(relayUrl(route.port, path), { headers: { accept: "application/json" }, cache: "no-store" });
      if (!res.ok) throw new Error(await httpError(res));
      const doc = await res.json();
      setCard(doc);
      addLog("card", `GET ${path}: ${doc.name || "(unnamed)"}`);
    } catch (err) {
      setCardError(`Could not fetch the agent card: ${errorText(err)}`);
      addLog("error", errorText(err));
    } finally {
      setLoadingCard(false);
    }
  }

  /** The JSON-RPC endpoint through the relay: the route's path (editable), on the route's port. */
  function endpoint() {
    const ifaces = interfaces(card);
    const rpc = ifaces.find((i) => /jsonrpc/i.test(i.binding || "")) || ifaces[0];
    const path = rpcPath.startsWith("/") ? rpcPath : "/" + rpcPath;
    return { url: relayUrl(route.port, path), path, legacy: !!rpc && String(rpc.version).startsWith("0.") };
  }

  async function send(stream) {
    if (!card || !text.trim()) return;
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    const t0 = performance.now();
    const state = { mode: stream ? "stream" : "send", task: null, states: [], artifacts: [], messages: [], error: "", ms: null };
    const push = () => setRun({ ...state, states: [...state.states], artifacts: [...state.artifacts], messages: [...state.messages] });
    const addState = (s, t) => {
      const name = stateName(s);
      const last = state.states[state.states.length - 1];
      if (!last || last.state !== name) state.states.push({ state: name, t: clock(), ts: t });
    };
    const addArtifact = (a, append) => {
      const i = state.artifacts.findIndex((x) => x.artifactId === a.artifactId);
      if (i < 0) state.artifacts.push(a);
      else state.artifacts[i] = append ? { ...a, parts: [...state.artifacts[i].parts, ...a.parts] } : a;
    };
    const onTask = (t) => {
      state.task = { id: t.id, contextId: t.contextId };
      if (t.contextId) lastContext.current = t.contextId;
      if (t.status) {
        addState(t.status.state, t.status.timestamp);
        if (t.status.message) state.messages.push(t.status.message);
      }
      for (const a of t.artifacts || []) addArtifact(a, false);
      for (const m of t.history || []) if (m.role === 2 || m.role === "ROLE_AGENT") state.messages.push(m);
    };
    push();
    try {
      const { url, path, legacy } = endpoint();
      const fetchImpl = fetchFn();
      const transport = legacy
        ? new LegacyJsonRpcTransport({ endpoint: url, fetchImpl })
        : await new JsonRpcTransportFactory({ fetchImpl }).create(url, card);
      const client = new Client(transport, card);
      const message = {
        messageId: uuid(),
        role: 1,
        parts: [{ content: { $case: "text", value: text } }],
      };
      if (sameContext && lastContext.current) message.contextId = lastContext.current;
      const params = { message, configuration: { acceptedOutputModes: ["text", "text/plain", "application/json"], returnImmediately: false } };
      addLog(stream ? "stream" : "send", `${stream ? "SendStreamingMessage" : "SendMessage"} → ${path}${legacy ? " (A2A v0.3)" : ""}: ${text}`);
      if (stream) {
        for await (const ev of client.sendMessageStream(params, { signal: ctl.signal })) {
          const p = ev.payload || {};
          const v = p.value || {};
          if (p.$case === "task") {
            onTask(v);
            addLog("task", `${v.id} ${stateName(v.status && v.status.state)}`);
          } else if (p.$case === "statusUpdate") {
            state.task = state.task || { id: v.taskId, contextId: v.contextId };
            if (v.status) {
              addState(v.status.state, v.status.timestamp);
              if (v.status.message) state.messages.push(v.status.message);
            }
            addLog("status", stateName(v.status && v.status.state));
          } else if (p.$case === "artifactUpdate") {
            addArtifact(v.artifact, v.append);
            addLog("artifact", (v.artifact.parts || []).map(partText).join(" "));
          } else if (p.$case === "message") {
            state.messages.push(v);
            addLog("message", (v.parts || []).map(partText).join(" "));
          } else addLog("event", JSON.stringify(ev));
          push();
        }
      } else {
        const r = await client.sendMessage(params, { signal: ctl.signal });
        if (r && r.status !== undefined) onTask(r);
        else if (r) state.messages.push(r);
        addLog("answer", state.task ? `${state.task.id} ${state.states.map((s) => s.state).join(" → ")}` : "message");
      }
    } catch (err) {
      if (err.name !== "AbortError") {
        state.error = errorText(err);
        addLog("error", state.error);
      } else addLog("stream", "stopped");
    } finally {
      state.ms = performance.now() - t0;
      push();
      setBusy(false);
      abort.current = null;
    }
  }

  const current = run && run.states.length ? run.states[run.states.length - 1].state : "";
  return (
    <div class="pg">
      <h1>A2A playground</h1>
      <div class="cols">
        <div>
          <section class="card" aria-label="Agent">
            <h2>Agent</h2>
            <RoutePicker kind="a2a" label="A2A route" disabled={busy || loadingCard} onChange={setRoute} />
            <Credentials value={creds} onChange={setCreds} disabled={busy || loadingCard} />
            <div class="row pg-actions">
              <button type="button" onClick={loadCard} disabled={!route || loadingCard}>
                {loadingCard ? "Fetching…" : "Fetch agent card"}
              </button>
            </div>
            {cardError && (
              <p class="error" role="alert">
                {cardError}
              </p>
            )}
          </section>
          {card && <Card card={card} />}
        </div>
        <div>
          <section class="card" aria-label="Message">
            <h2>Message</h2>
            {!card ? (
              <p class="muted">Fetch the agent card first.</p>
            ) : (
              <form
                onSubmit={(e) => {
                  e.preventDefault();
                  send(true);
                }}
              >
                <label>
                  Message text
                  <textarea
                    rows={3}
                    value={text}
                    onInput={(e) => setText(e.target.value)}
                    onKeyDown={(e) => {
                      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                        e.preventDefault();
                        if (!busy) send(true);
                      }
                    }}
                  />
                </label>
                <label>
                  JSON-RPC path <span class="muted small">(on the route's port, through the relay; the card's URLs are for clients outside)</span>
                  <input value={rpcPath} onInput={(e) => setRpcPath(e.target.value)} />
                </label>
                <label class="pg-inline">
                  <input type="checkbox" checked={sameContext} onChange={(e) => setSameContext(e.target.checked)} />
                  Continue in the same context
                </label>
                <div class="row pg-actions">
                  <button type="submit" disabled={busy || !text.trim()}>
                    Stream message
                  </button>
                  <button type="button" class="secondary" disabled={busy || !text.trim()} onClick={() => send(false)}>
                    Send message
                  </button>
                  {busy && (
                    <button type="button" class="secondary" onClick={() => abort.current && abort.current.abort()}>
                      Stop
                    </button>
                  )}
                  <span class="muted small">Ctrl+Enter streams</span>
                </div>
              </form>
            )}
            {run && (
              <div class="pg-result" role="region" aria-label="Task">
                <p>
                  {run.task ? (
                    <>
                      Task <code class="small">{run.task.id}</code>{" "}
                    </>
                  ) : (
                    run.mode === "send" && !busy && !run.error && "Message answer "
                  )}
                  {current && (
                    <span class={`badge a2a-state ${current === "completed" ? "ok" : FINAL.has(current) ? "err" : "warn"}`} role="status" aria-label="Task state">
                      {current}
                    </span>
                  )}{" "}
                  {run.ms != null && <span class="muted small">{fmtMs(run.ms)}</span>}
                </p>
                {run.states.length > 0 && (
                  <ol class="a2a-states" aria-label="Task states">
                    {run.states.map((s, i) => (
                      <li key={i}>
                        <span class="badge">{s.state}</span> <span class="muted small">{s.t}</span>
                      </li>
                    ))}
                  </ol>
                )}
                {run.error && (
                  <p class="error" role="alert">
                    {run.error}
                  </p>
                )}
                {run.artifacts.length > 0 && <h3>Artifacts</h3>}
                {run.artifacts.map((a) => (
                  <div key={a.artifactId} class="a2a-artifact">
                    {(a.name || a.description) && <p class="small muted">{[a.name, a.description].filter(Boolean).join(" — ")}</p>}
                    <Parts parts={a.parts} />
                  </div>
                ))}
                {run.messages.length > 0 && <h3>Messages</h3>}
                {run.messages.map((m, i) => (
                  <div key={i}>
                    <span class="badge">{m.role === 2 || m.role === "ROLE_AGENT" ? "agent" : "user"}</span>
                    <Parts parts={m.parts} />
                  </div>
                ))}
              </div>
            )}
          </section>
          <LogPanel entries={log} onClear={clearLog} />
        </div>
      </div>
    </div>
  );
}
