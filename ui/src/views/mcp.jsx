// MCP playground: connect to an MCP route through the admin relay with the official
// TypeScript SDK (Client + StreamableHTTPClientTransport), list tools / prompts /
// resources, call a tool through a form generated from its input schema, read a
// resource, get a prompt; notifications, progress and log messages go to the log panel.
import { useEffect, useRef, useState } from "preact/hooks";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CfWorkerJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/cfworker";
import { relayUrl } from "../api.js";
import "./pg-zod.js";
import { RoutePicker, Credentials, NO_CREDENTIALS, headersFor, routeFetch, LogPanel, useLog, errorText, fmtMs } from "./pg-common.js";
import { SchemaForm, initialValues, toArguments, promptSchema } from "./pg-schema.js";

function mcpError(err) {
  if (err instanceof StreamableHTTPError && err.code) {
    const m = errorText(err).replace(/^Streamable HTTP error: /, "");
    return `HTTP ${err.code}: ${m}`;
  }
  return errorText(err);
}

function Content({ item }) {
  switch (item.type) {
    case "text":
      return <pre class="pg-out">{item.text}</pre>;
    case "image":
      return <img class="pg-img" alt="image returned by the tool" src={`data:${item.mimeType || "image/png"};base64,${item.data}`} />;
    case "audio":
      return <audio controls src={`data:${item.mimeType || "audio/wav"};base64,${item.data}`} />;
    case "resource_link":
      return (
        <p>
          Resource link <code>{item.uri}</code> {item.name && <span class="muted">{item.name}</span>}
        </p>
      );
    case "resource":
      return <ResourceContents c={item.resource || {}} />;
    default:
      return <pre class="pg-out">{JSON.stringify(item, null, 2)}</pre>;
  }
}

function ResourceContents({ c }) {
  return (
    <div class="pg-rc">
      <p class="small muted">
        <code>{c.uri}</code> {c.mimeType && <span class="badge">{c.mimeType}</span>}
      </p>
      {c.text !== undefined ? (
        <pre class="pg-out">{c.text === "" ? "(empty)" : c.text}</pre>
      ) : c.blob !== undefined && /^image\//.test(c.mimeType || "") ? (
        <img class="pg-img" alt={c.uri} src={`data:${c.mimeType};base64,${c.blob}`} />
      ) : (
        <pre class="pg-out">{c.blob !== undefined ? `(${Math.floor((c.blob.length * 3) / 4)} bytes, base64)` : JSON.stringify(c, null, 2)}</pre>
      )}
    </div>
  );
}

function Result({ r }) {
  if (!r) return null;
  if (r.error) return <p class="error" role="alert">{r.error}</p>;
  const res = r.value || {};
  return (
    <div class="pg-result" aria-label="Result" role="region">
      <p class="small">
        {r.kind === "tool" && (res.isError ? <span class="badge err">isError</span> : <span class="badge ok">ok</span>)} <span class="muted">{fmtMs(r.ms)}</span>
      </p>
      {r.kind === "tool" && (res.content || []).map((c, i) => <Content key={i} item={c} />)}
      {r.kind === "tool" && res.structuredContent !== undefined && (
        <>
          <h3>Structured content</h3>
          <pre class="pg-out">{JSON.stringify(res.structuredContent, null, 2)}</pre>
        </>
      )}
      {r.kind === "prompt" && (
        <>
          {res.description && <p class="muted">{res.description}</p>}
          <ol class="plain pg-msgs">
            {(res.messages || []).map((m, i) => (
              <li key={i}>
                <span class="badge">{m.role}</span> <Content item={m.content || {}} />
              </li>
            ))}
          </ol>
        </>
      )}
      {r.kind === "resource" && (res.contents || []).map((c, i) => <ResourceContents key={i} c={c} />)}
      <details>
        <summary>Raw answer</summary>
        <pre class="pg-out">{JSON.stringify(res, null, 2)}</pre>
      </details>
    </div>
  );
}

function ItemList({ title, items, empty, selected, onSelect, name = (x) => x.name, desc = (x) => x.description }) {
  return (
    <section class="card" aria-label={title}>
      <h2>
        {title} <span class="muted small">({items.length})</span>
      </h2>
      {items.length ? (
        <ul class="plain pg-items">
          {items.map((x) => (
            <li key={name(x)}>
              <button type="button" class="secondary small" aria-pressed={selected === x} onClick={() => onSelect(x)}>
                {name(x)}
              </button>{" "}
              {desc(x) && <span class="muted small">{desc(x)}</span>}
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">{empty}</p>
      )}
    </section>
  );
}

export default function View() {
  const [route, setRoute] = useState(null);
  const [creds, setCreds] = useState(NO_CREDENTIALS);
  const [status, setStatus] = useState("idle"); // idle | connecting | connected | closing
  const [error, setError] = useState("");
  const [info, setInfo] = useState(null);
  const [tools, setTools] = useState([]);
  const [prompts, setPrompts] = useState([]);
  const [resources, setResources] = useState([]);
  const [templates, setTemplates] = useState([]);
  const [sel, setSel] = useState(null); // {kind: tool|prompt|resource, item}
  const [values, setValues] = useState({});
  const [uri, setUri] = useState("");
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState(null);
  const [result, setResult] = useState(null);
  const [withProgress, setWithProgress] = useState(true);
  const [log, addLog, clearLog] = useLog();
  const conn = useRef(null); // {client, transport}

  useEffect(() => () => conn.current && shutdown(conn.current, false), []);

  async function shutdown(c, report = true) {
    try {
      await c.transport.terminateSession();
      if (report) addLog("session", "closed (DELETE)");
    } catch (err) {
      if (report) addLog("error", `closing the session: ${mcpError(err)}`);
    }
    try {
      await c.client.close();
    } catch {
      /* already closed */
    }
  }

  async function refreshLists(client) {
    const caps = client.getServerCapabilities() || {};
    const all = async (fn, key) => {
      const out = [];
      let cursor;
      do {
        const page = await fn(cursor ? { cursor } : undefined);
        out.push(...(page[key] || []));
        cursor = page.nextCursor;
      } while (cursor && out.length < 5000);
      return out;
    };
    const tasks = [];
    tasks.push(caps.tools ? all((p) => client.listTools(p), "tools").then(setTools) : setTools([]));
    tasks.push(caps.prompts ? all((p) => client.listPrompts(p), "prompts").then(setPrompts) : setPrompts([]));
    if (caps.resources) {
      tasks.push(all((p) => client.listResources(p), "resources").then(setResources));
      tasks.push(
        all((p) => client.listResourceTemplates(p), "resourceTemplates")
          .then(setTemplates)
          .catch(() => setTemplates([])),
      );
    } else {
      setResources([]);
      setTemplates([]);
    }
    await Promise.all(tasks);
  }

  async function connect() {
    if (!route) return;
    setError("");
    setStatus("connecting");
    setResult(null);
    setSel(null);
    const url = new URL(relayUrl(route.port, route.path));
    const transport = new StreamableHTTPClientTransport(url, {
      fetch: routeFetch(route.host, headersFor(creds)),
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 5000, reconnectionDelayGrowFactor: 1.5 },
    });
    const client = new Client(
      { name: "agentgw-ui", title: "agentgw MCP playground", version: "1.0.0" },
      { capabilities: {}, jsonSchemaValidator: new CfWorkerJsonSchemaValidator() },
    );
    client.fallbackNotificationHandler = async (n) => {
      if (n.method === "notifications/message") {
        const p = n.params || {};
        addLog(`log ${p.level || ""}`.trim(), `${p.logger ? p.logger + ": " : ""}${typeof p.data === "string" ? p.data : JSON.stringify(p.data)}`);
      } else {
        addLog("notification", `${n.method}${n.params ? " " + JSON.stringify(n.params) : ""}`);
        if (/list_changed$/.test(n.method) && conn.current && conn.current.client === client) refreshLists(client).catch(() => {});
      }
    };
    client.onerror = (err) => addLog("error", mcpError(err));
    try {
      addLog("connect", `POST ${route.path} on :${route.port}${route.host ? ` (Host ${route.host})` : ""}`);
      await client.connect(transport);
      conn.current = { client, transport };
      const sv = client.getServerVersion() || {};
      setInfo({
        name: sv.name,
        title: sv.title,
        version: sv.version,
        protocol: transport.protocolVersion,
        session: transport.sessionId,
        caps: client.getServerCapabilities() || {},
        instructions: client.getInstructions(),
      });
      addLog("session", `${sv.name || "server"} ${sv.version || ""}, protocol ${transport.protocolVersion || "?"}, session ${transport.sessionId ? transport.sessionId.slice(0, 24) + (transport.sessionId.length > 24 ? "…" : "") : "(none)"}`);
      setStatus("connected");
      await refreshLists(client);
    } catch (err) {
      const m = mcpError(err);
      setError(`Could not connect: ${m}`);
      addLog("error", m);
      try {
        await client.close();
      } catch {
        /* nothing open */
      }
      conn.current = null;
      setStatus("idle");
    }
  }

  async function disconnect() {
    const c = conn.current;
    conn.current = null;
    setStatus("closing");
    if (c) await shutdown(c);
    setStatus("idle");
    setInfo(null);
    setTools([]);
    setPrompts([]);
    setResources([]);
    setTemplates([]);
    setSel(null);
    setResult(null);
  }

  function select(kind, item) {
    setSel({ kind, item });
    setResult(null);
    setProgress(null);
    if (kind === "tool") setValues(initialValues(item.inputSchema));
    else if (kind === "prompt") setValues(initialValues(promptSchema(item.arguments)));
    else if (kind === "resource") setUri(item.uri || "");
    else if (kind === "template") setUri(item.uriTemplate || "");
  }

  async function run(e) {
    e.preventDefault();
    const c = conn.current;
    if (!c || !sel) return;
    setBusy(true);
    setResult(null);
    setProgress(null);
    const t0 = performance.now();
    const kind = sel.kind === "template" ? "resource" : sel.kind;
    try {
      let value;
      if (kind === "tool") {
        const args = toArguments(sel.item.inputSchema, values);
        addLog("call", `tools/call ${sel.item.name} ${JSON.stringify(args)}`);
        const opts = { timeout: 120000, resetTimeoutOnProgress: true };
        if (withProgress)
          opts.onprogress = (p) => {
            setProgress(p);
            addLog("progress", `${p.progress}${p.total != null ? "/" + p.total : ""}${p.message ? " " + p.message : ""}`);
          };
        value = await c.client.callTool({ name: sel.item.name, arguments: args }, undefined, opts);
      } else if (kind === "prompt") {
        const args = toArguments(promptSchema(sel.item.arguments), values);
        addLog("call", `prompts/get ${sel.item.name} ${JSON.stringify(args)}`);
        value = await c.client.getPrompt({ name: sel.item.name, arguments: args });
      } else {
        addLog("call", `resources/read ${uri}`);
        value = await c.client.readResource({ uri });
      }
      setResult({ kind, value, ms: performance.now() - t0 });
    } catch (err) {
      const m = mcpError(err);
      addLog("error", m);
      setResult({ kind, error: m });
    } finally {
      setBusy(false);
    }
  }

  const connected = status === "connected";
  const item = sel && sel.item;
  return (
    <div class="pg">
      <h1>MCP playground</h1>
      <div class="cols">
        <div>
          <section class="card" aria-label="Connection">
            <h2>Connection</h2>
            <RoutePicker kind="mcp" label="MCP route" disabled={status !== "idle"} onChange={setRoute} />
            <Credentials value={creds} onChange={setCreds} disabled={status !== "idle"} />
            <div class="row pg-actions">
              {connected || status === "closing" ? (
                <button type="button" onClick={disconnect} disabled={status !== "connected"}>
                  Disconnect
                </button>
              ) : (
                <button type="button" onClick={connect} disabled={!route || status !== "idle"}>
                  {status === "connecting" ? "Connecting…" : "Connect"}
                </button>
              )}
              <span role="status" class={connected ? "ok" : "muted"}>
                {connected ? "Connected" : status === "connecting" ? "Connecting…" : status === "closing" ? "Closing…" : "Not connected"}
              </span>
            </div>
            {error && (
              <p class="error" role="alert">
                {error}
              </p>
            )}
            {info && (
              <dl class="pg-dl" aria-label="Server">
                <dt>Server</dt>
                <dd>
                  {info.title || info.name || "?"} {info.version && <span class="muted">{info.version}</span>}
                </dd>
                <dt>Protocol</dt>
                <dd>{info.protocol || "?"}</dd>
                <dt>Session</dt>
                <dd>
                  <code class="small" title={info.session || undefined}>
                    {info.session ? (info.session.length > 24 ? info.session.slice(0, 24) + "…" : info.session) : "(stateless)"}
                  </code>
                </dd>
                <dt>Capabilities</dt>
                <dd>{Object.keys(info.caps).join(", ") || "none"}</dd>
                {info.instructions && (
                  <>
                    <dt>Instructions</dt>
                    <dd class="pg-pre">{info.instructions}</dd>
                  </>
                )}
              </dl>
            )}
          </section>
          {connected && (
            <>
              <ItemList title="Tools" items={tools} empty="No tools." selected={item} onSelect={(x) => select("tool", x)} />
              <ItemList title="Prompts" items={prompts} empty="No prompts." selected={item} onSelect={(x) => select("prompt", x)} />
              <ItemList
                title="Resources"
                items={resources}
                empty="No resources."
                selected={item}
                name={(x) => x.uri}
                desc={(x) => [x.name, x.mimeType].filter(Boolean).join(" · ")}
                onSelect={(x) => select("resource", x)}
              />
              {templates.length > 0 && (
                <ItemList
                  title="Resource templates"
                  items={templates}
                  empty=""
                  selected={item}
                  name={(x) => x.uriTemplate}
                  desc={(x) => x.name}
                  onSelect={(x) => select("template", x)}
                />
              )}
            </>
          )}
        </div>
        <div>
          <section class="card" aria-label="Request">
            {!sel ? (
              <p class="muted">{connected ? "Pick a tool, a prompt or a resource." : "Connect to an MCP route to begin."}</p>
            ) : (
              <form onSubmit={run}>
                <h2>
                  {sel.kind === "tool" ? "Tool" : sel.kind === "prompt" ? "Prompt" : "Resource"}{" "}
                  <code>{sel.kind === "resource" ? item.uri : sel.kind === "template" ? item.uriTemplate : item.name}</code>
                </h2>
                {item.description && <p class="muted">{item.description}</p>}
                {sel.kind === "tool" && <SchemaForm schema={item.inputSchema} values={values} onChange={setValues} />}
                {sel.kind === "tool" && item.inputSchema && (
                  <details>
                    <summary>Input schema</summary>
                    <pre class="pg-out">{JSON.stringify(item.inputSchema, null, 2)}</pre>
                  </details>
                )}
                {sel.kind === "prompt" && <SchemaForm schema={promptSchema(item.arguments)} values={values} onChange={setValues} />}
                {(sel.kind === "resource" || sel.kind === "template") && (
                  <label>
                    Resource URI
                    <input value={uri} onInput={(e) => setUri(e.target.value)} />
                  </label>
                )}
                <div class="row pg-actions">
                  <button type="submit" disabled={busy || !connected}>
                    {sel.kind === "tool" ? "Call tool" : sel.kind === "prompt" ? "Get prompt" : "Read resource"}
                  </button>
                  {sel.kind === "tool" && (
                    <label class="pg-inline">
                      <input type="checkbox" checked={withProgress} onChange={(e) => setWithProgress(e.target.checked)} />
                      Ask for progress notifications
                    </label>
                  )}
                  {busy && <span class="muted">Waiting…</span>}
                  {busy && progress && (
                    <progress aria-label="Progress" value={progress.progress} max={progress.total || undefined} />
                  )}
                </div>
              </form>
            )}
            <Result r={result} />
          </section>
          <LogPanel entries={log} onClear={clearLog} label="Log" />
        </div>
      </div>
    </div>
  );
}
