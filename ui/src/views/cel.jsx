// CEL playground: an expression evaluated with the gateway's own CEL (POST cel/evaluate)
// over a request you describe and any other variables (jwt, apiKey, source, ...).
import { useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import "./cel.css";

const EXAMPLES = [
  'request.method == "POST"',
  'request.headers["x-team"] == "blue"',
  'jwt.sub == "alice"',
  'request.path.startsWith("/mcp") && jwt.sub == "alice"',
  '"x-team" in request.headers',
  "size(request.body) > 0",
];

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/** "name: value" lines -> {name: value | [values]}; throws on a line without a colon. */
export function parseHeaders(text) {
  const out = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const c = line.indexOf(":");
    if (c <= 0) throw new Error(`Headers, line ${i + 1}: expected "name: value"`);
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    if (name in out) out[name] = [].concat(out[name], value);
    else out[name] = value;
  });
  return out;
}

function show(value) {
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

export default function Cel() {
  const [expression, setExpression] = useState(EXAMPLES[0]);
  const [method, setMethod] = useState("POST");
  const [path, setPath] = useState("/mcp");
  const [headers, setHeaders] = useState("content-type: application/json\nx-team: blue");
  const [body, setBody] = useState('{"jsonrpc": "2.0", "method": "tools/list", "id": 1}');
  const [vars, setVars] = useState('{"jwt": {"sub": "alice"}}');
  const [answer, setAnswer] = useState(null); // {ok, result, type} | {ok:false, phase, error}
  const [inputError, setInputError] = useState("");
  const [busy, setBusy] = useState(false);
  const exprRef = useRef(null);
  const seq = useRef(0);

  async function evaluate(expr = expression) {
    setInputError("");
    let hdrs;
    let others = {};
    try {
      hdrs = parseHeaders(headers);
    } catch (err) {
      setInputError(err.message);
      return;
    }
    if (vars.trim()) {
      try {
        others = JSON.parse(vars);
      } catch (err) {
        setInputError(`Other variables: not JSON (${err.message})`);
        return;
      }
      if (!others || typeof others !== "object" || Array.isArray(others)) {
        setInputError('Other variables: a JSON object, e.g. {"jwt": {"sub": "alice"}}');
        return;
      }
      if ("expression" in others || "request" in others) {
        setInputError("Other variables: describe the request in the fields above, not here");
        return;
      }
    }
    if (!expr.trim()) {
      setInputError("Enter an expression.");
      return;
    }
    const my = ++seq.current;
    setBusy(true);
    try {
      const doc = await api("cel/evaluate", {
        method: "POST",
        body: { ...others, expression: expr, request: { method, path, headers: hdrs, body } },
      });
      if (my === seq.current) setAnswer(doc);
    } catch (err) {
      if (my === seq.current) setAnswer({ ok: false, phase: "request", error: `${err.message}${err.status ? ` (HTTP ${err.status})` : ""}` });
    } finally {
      if (my === seq.current) setBusy(false);
    }
  }

  function onKey(e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      evaluate();
    }
  }

  return (
    <section aria-labelledby="cel-title" onKeyDown={onKey}>
      <h1 id="cel-title">CEL playground</h1>
      <p class="muted">
        Evaluate an expression with the gateway's own CEL environment, as a policy would see it. Ctrl+Enter (⌘↵)
        evaluates.
      </p>
      <form
        class="cel-grid"
        onSubmit={(e) => {
          e.preventDefault();
          evaluate();
        }}
      >
        <div class="card cel-expr">
          <label>
            Expression
            <textarea
              ref={exprRef}
              rows={3}
              value={expression}
              spellcheck={false}
              onInput={(e) => setExpression(e.target.value)}
              aria-keyshortcuts="Control+Enter Meta+Enter"
            />
          </label>
          <div class="row">
            <button type="submit" disabled={busy}>
              {busy ? "Evaluating…" : "Evaluate"}
            </button>
            <span class="muted small-text">Examples:</span>
            <ul class="plain row cel-examples" aria-label="Example expressions">
              {EXAMPLES.map((x) => (
                <li key={x}>
                  <button
                    type="button"
                    class="secondary small"
                    title="Use this expression and evaluate it"
                    onClick={() => {
                      setExpression(x);
                      evaluate(x);
                    }}
                  >
                    <code>{x}</code>
                  </button>
                </li>
              ))}
            </ul>
          </div>
          <div class="cel-answer" role="status" aria-live="polite">
            {inputError && <p class="error">{inputError}</p>}
            {!inputError && answer && answer.ok && (
              <div class="cel-ok">
                <h2>Result</h2>
                <pre class="cel-result" data-type={answer.type}>{show(answer.result)}</pre>
                <p class="muted">
                  type <code>{answer.type}</code>
                </p>
              </div>
            )}
            {!inputError && answer && !answer.ok && (
              <div class="cel-err">
                <h2 class="error">
                  {answer.phase === "compile" ? "Compile error" : answer.phase === "eval" ? "Evaluation error" : "Error"}
                </h2>
                <pre class="error">{answer.error}</pre>
              </div>
            )}
            {!inputError && !answer && <p class="muted">Not evaluated yet.</p>}
          </div>
        </div>
        <fieldset class="card cel-request">
          <legend>Sample request</legend>
          <div class="row cel-line">
            <label>
              Method
              <select aria-label="Method" value={method} onChange={(e) => setMethod(e.target.value)}>
                {METHODS.map((m) => (
                  <option key={m} value={m}>
                    {m}
                  </option>
                ))}
              </select>
            </label>
            <label class="grow">
              Path
              <input value={path} onInput={(e) => setPath(e.target.value)} spellcheck={false} />
            </label>
          </div>
          <label>
            Headers <span class="muted small-text">(one "name: value" per line)</span>
            <textarea rows={4} value={headers} spellcheck={false} onInput={(e) => setHeaders(e.target.value)} />
          </label>
          <label>
            Body
            <textarea rows={4} value={body} spellcheck={false} onInput={(e) => setBody(e.target.value)} />
          </label>
        </fieldset>
        <div class="card cel-vars">
          <label>
            Other variables <span class="muted small-text">(JSON: jwt, apiKey, source, mcp, llm, …)</span>
            <textarea rows={6} value={vars} spellcheck={false} onInput={(e) => setVars(e.target.value)} />
          </label>
        </div>
      </form>
    </section>
  );
}
