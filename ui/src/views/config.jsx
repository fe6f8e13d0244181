// Config editor: the -f file's text (GET config/file), validated as you type (POST
// config/validate, debounced), errors listed and marked in the line-number gutter, and
// applied with PUT config (Ctrl/Cmd+S), after which the file is read again.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, onCredential } from "../api.js";
import { ErrorCard } from "./common-util.js";
import "./config.css";

const DEBOUNCE_MS = 400;
const CTYPE = { yaml: "application/yaml", json: "application/json" };

function lineOffset(text, line, column) {
  let start = 0;
  for (let i = 1; i < line; i++) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) break;
    start = nl + 1;
  }
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  const at = Math.min(end, start + Math.max(0, (column || 1) - 1));
  return { start, end, at };
}

function errorLabel(e) {
  if (!e.line) return null;
  return e.column ? `line ${e.line}, column ${e.column}` : `line ${e.line}`;
}

export default function ConfigEditor() {
  const [file, setFile] = useState(null); // {path, format, text}
  const [loadError, setLoadError] = useState(null);
  const [text, setText] = useState("");
  // the last validation's answer, for the document `text` it was about
  const [checked, setCheck] = useState({ state: "idle", errors: [], text: null }); // valid|invalid|unavailable
  const [applying, setApplying] = useState(false);
  const [outcome, setOutcome] = useState(null); // {kind: ok|error|info, message, errors?}
  const taRef = useRef(null);
  const gutterRef = useRef(null);
  const seq = useRef(0);

  async function load({ keepOutcome = false } = {}) {
    setLoadError(null);
    try {
      const doc = await api("config/file");
      setFile(doc);
      setText(doc.text);
      if (!keepOutcome) setOutcome(null);
    } catch (err) {
      setLoadError(err);
    }
  }

  useEffect(() => {
    load();
  }, []);

  // after signing in (the 401 raised the shell's dialog), read the file again
  const loadErrorRef = useRef(null);
  loadErrorRef.current = loadError;
  useEffect(
    () =>
      onCredential((value) => {
        const e = loadErrorRef.current;
        if (value && e && (e.status === 401 || e.status === 403)) load();
      }),
    [],
  );

  const format = (file && file.format) || "yaml";
  const ctype = CTYPE[format] || CTYPE.yaml;
  const changed = file !== null && text !== file.text;

  // validate as you type
  useEffect(() => {
    if (!file) return;
    const my = ++seq.current;
    const doc = text;
    const t = setTimeout(async () => {
      try {
        const res = await api("config/validate", { method: "POST", body: doc, ctype });
        if (my !== seq.current) return;
        setCheck({ state: res.valid ? "valid" : "invalid", errors: res.errors || [], text: doc });
      } catch (err) {
        if (my !== seq.current) return;
        setCheck({ state: "unavailable", errors: [], message: err.message, text: doc });
      }
    }, DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [text, file]);

  // an answer about another text than the editor's is being replaced: "pending"
  const check = checked.text === text ? checked : { ...checked, state: file ? "pending" : "idle" };

  const badLines = useMemo(() => {
    const m = new Map();
    for (const e of check.errors || []) if (e.line) m.set(e.line, [...(m.get(e.line) || []), `${e.path}: ${e.message}`]);
    return m;
  }, [check.errors]);

  const lineCount = useMemo(() => {
    let n = 1;
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
    return n;
  }, [text]);

  const canApply = file !== null && changed && check.state !== "invalid" && !applying;

  async function apply() {
    if (!canApply) return;
    setApplying(true);
    setOutcome({ kind: "info", message: "Applying…" });
    const sent = text;
    try {
      const doc = await api("config", { method: "PUT", body: sent, ctype });
      setOutcome({
        kind: "ok",
        message: doc.changed === false ? "Nothing to apply: the file already says this." : "Applied: the new config is serving.",
      });
      await load({ keepOutcome: true });
    } catch (err) {
      const body = err.body || {};
      if (err.status === 422) {
        setCheck({ state: "invalid", errors: body.errors || [], text: sent });
        setOutcome({ kind: "error", message: "Not applied: the config is invalid (see the errors).", errors: body.errors });
      } else if (err.status === 409) {
        setOutcome({ kind: "error", message: `Valid, but not applied: ${body.error || err.message}` });
      } else {
        setOutcome({ kind: "error", message: `Not applied: ${err.message}${err.status ? ` (HTTP ${err.status})` : ""}` });
      }
    } finally {
      setApplying(false);
    }
  }

  function revert() {
    if (!file) return;
    setText(file.text);
    setOutcome(null);
    taRef.current && taRef.current.focus();
  }

  // Ctrl/Cmd+S applies
  const applyRef = useRef(apply);
  applyRef.current = apply;
  useEffect(() => {
    const onKey = (e) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && (e.key === "s" || e.key === "S")) {
        e.preventDefault();
        applyRef.current();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  function syncScroll() {
    if (gutterRef.current && taRef.current) gutterRef.current.scrollTop = taRef.current.scrollTop;
  }

  function goTo(e) {
    const ta = taRef.current;
    if (!ta || !e.line) return;
    const { start, end, at } = lineOffset(ta.value, e.line, e.column);
    ta.focus();
    ta.setSelectionRange(at < end ? at : start, end);
    const lh = parseFloat(getComputedStyle(ta).lineHeight) || 20;
    ta.scrollTop = Math.max(0, (e.line - 1) * lh - ta.clientHeight / 3);
    syncScroll();
  }

  if (!file) {
    return (
      <section aria-labelledby="cfg-title">
        <h1 id="cfg-title">Config</h1>
        {loadError ? (
          <div class="card" role="alert">
            <strong>Cannot read the config file</strong>
            <p class="error">
              {loadError.status === 401
                ? `Reading the config file needs the admin credential (${loadError.message}). Sign in, then retry.`
                : `${loadError.message}${loadError.status ? ` (HTTP ${loadError.status})` : ""}`}
            </p>
            <button type="button" onClick={() => load()}>
              Retry
            </button>
          </div>
        ) : (
          <p class="muted">Loading the config file…</p>
        )}
      </section>
    );
  }

  const errs = check.errors || [];
  return (
    <section aria-labelledby="cfg-title" class="cfg">
      <div class="row cfg-head">
        <h1 id="cfg-title">Config</h1>
        <code class="muted cfg-path" title={file.path}>
          {file.path}
        </code>
        <span class="badge">{format}</span>
        {changed && <span class="badge warn">modified</span>}
        <span class="grow" />
        <span role="status" class={`cfg-check ${check.state}`}>
          {check.state === "pending" && "Validating…"}
          {check.state === "valid" && <span class="ok">✓ Valid</span>}
          {check.state === "invalid" && (
            <span class="error">
              ✗ {errs.length} error{errs.length === 1 ? "" : "s"}
            </span>
          )}
          {check.state === "unavailable" && <span class="warn">Cannot validate: {check.message}</span>}
        </span>
        <button type="button" class="secondary" onClick={revert} disabled={!changed || applying}>
          Revert
        </button>
        <button type="button" onClick={apply} disabled={!canApply} title="Apply (Ctrl+S)" aria-keyshortcuts="Control+S Meta+S">
          {applying ? "Applying…" : "Apply"}
        </button>
      </div>
      {outcome && (
        <div class={`card cfg-outcome ${outcome.kind}`} role={outcome.kind === "error" ? "alert" : "status"}>
          <span class={outcome.kind === "error" ? "error" : outcome.kind === "ok" ? "ok" : "muted"}>{outcome.message}</span>
        </div>
      )}
      {loadError && <ErrorCard title="Cannot read the config file again" error={loadError} onRetry={() => load({ keepOutcome: true })} />}
      <div class="cfg-main">
        <div class="cfg-editor">
          <div class="cfg-gutter" ref={gutterRef} aria-hidden="true">
            <div class="cfg-lines">
              {Array.from({ length: lineCount }, (_, i) => {
                const bad = badLines.get(i + 1);
                return (
                  <div key={i} class={bad ? "cfg-ln bad" : "cfg-ln"} title={bad ? bad.join("\n") : undefined} data-line={i + 1}>
                    {i + 1}
                  </div>
                );
              })}
            </div>
          </div>
          <label class="cfg-ta-label">
            <span class="sr-only">Config document ({format})</span>
            <textarea
              ref={taRef}
              class="cfg-ta"
              value={text}
              spellcheck={false}
              autocomplete="off"
              autocapitalize="off"
              wrap="off"
              aria-invalid={check.state === "invalid" ? "true" : undefined}
              aria-describedby="cfg-errors-title"
              onInput={(e) => setText(e.target.value)}
              onScroll={syncScroll}
            />
          </label>
        </div>
        <aside class="card cfg-side" aria-labelledby="cfg-errors-title">
          <h2 id="cfg-errors-title">{errs.length ? `Errors (${errs.length})` : "Problems"}</h2>
          {errs.length ? (
            <ul class="plain cfg-errors">
              {errs.map((e, i) => (
                <li key={i}>
                  {e.line ? (
                    <button type="button" class="cfg-err" onClick={() => goTo(e)}>
                      <span class="cfg-err-where">{errorLabel(e)}</span>
                      <code>{e.path}</code>
                      <span class="error">{e.message}</span>
                    </button>
                  ) : (
                    <div class="cfg-err">
                      <code>{e.path}</code>
                      <span class="error">{e.message}</span>
                    </div>
                  )}
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">
              {check.state === "valid" ? "None: the document is valid." : check.state === "pending" ? "Validating…" : "—"}
            </p>
          )}
          <p class="muted small-text">
            Apply writes the file and reloads the gateway (traffic keeps flowing). Ctrl+S (⌘S) applies; click an error to go
            to its line.
          </p>
        </aside>
      </div>
    </section>
  );
}
