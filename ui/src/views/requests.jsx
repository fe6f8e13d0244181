// Requests: the gateway's recent requests (GET requests?limit=&route=&status=&q=), filtered,
// and a live tail (GET requests/stream, Server-Sent Events) that prepends each request as
// it finishes.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, sse } from "../api.js";
import { ErrorCard, fmtDateTime, fmtMs, fmtTime, isAbort, qs, statusClass } from "./common-util.js";
import "./requests.css";

const MAX_ROWS = 500;

// a stable key per row object (the API gives requests no id)
const ids = new WeakMap();
let nextId = 0;
function keyOf(r) {
  let id = ids.get(r);
  if (id === undefined) ids.set(r, (id = ++nextId));
  return id;
}
const STATUS_RE = /^(\d{3}|[1-5]xx)$/i;

function Facts({ r }) {
  const facts = [];
  if (r.mcp_target || r.mcp_tool) facts.push(["mcp", [r.mcp_target, r.mcp_tool].filter(Boolean).join(" · ")]);
  if (r.a2a_agent || r.a2a_method || r.a2a_task_id)
    facts.push(["a2a", [r.a2a_agent, r.a2a_method, r.a2a_task_id && `task ${r.a2a_task_id}`].filter(Boolean).join(" · ")]);
  if (r.llm_model || r.llm_provider) {
    const tokens =
      r.input_tokens != null || r.output_tokens != null ? `${r.input_tokens ?? "?"} → ${r.output_tokens ?? "?"} tokens` : null;
    facts.push(["llm", [r.llm_provider, r.llm_model, tokens].filter(Boolean).join(" · ")]);
  }
  if (!facts.length) return null;
  return (
    <>
      {facts.map(([k, v]) => (
        <div key={k} class="rq-fact">
          <span class="badge">{k}</span> {v}
        </div>
      ))}
    </>
  );
}

function Row({ r, fresh }) {
  return (
    <tr class={fresh ? "rq-fresh" : undefined}>
      <td class="rq-time" title={fmtDateTime(r.time)}>{fmtTime(r.time)}</td>
      <td><code>{r.method}</code></td>
      <td class="rq-path" title={r.path}><code>{r.path}</code></td>
      <td>{r.route ? <code>{r.route}</code> : <span class="muted">—</span>}</td>
      <td class="rq-backend" title={r.backend || ""}>{r.backend || <span class="muted">—</span>}</td>
      <td><span class={`badge ${statusClass(r.status)}`}>{r.status || "none"}</span></td>
      <td class="num">{fmtMs(r.duration_ms)}</td>
      <td><Facts r={r} /></td>
    </tr>
  );
}

export default function Requests() {
  const [route, setRoute] = useState("");
  const [status, setStatus] = useState("");
  const [q, setQ] = useState("");
  const [limit, setLimit] = useState("100");
  const [rows, setRows] = useState([]);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const [live, setLive] = useState(false);
  const [liveState, setLiveState] = useState("");
  const [reconnect, setReconnect] = useState(0);
  const [routes, setRoutes] = useState([]);
  const seq = useRef(0);
  // the live stream's controller: "Live" going off aborts it at once, in the click's
  // handler, not when the effect's cleanup runs after the next paint
  const liveCtl = useRef(null);
  const fresh = useRef(new WeakSet());

  const statusOk = !status || STATUS_RE.test(status.trim());
  const filters = { route: route.trim(), status: statusOk ? status.trim().toLowerCase() : "", q: q.trim() };

  async function load() {
    const my = ++seq.current;
    setLoading(true);
    try {
      const doc = await api(`requests${qs({ limit, ...filters })}`);
      if (my !== seq.current) return;
      fresh.current = new WeakSet();
      setRows(doc.requests || []);
      setError(null);
    } catch (err) {
      if (my === seq.current) setError(err);
    } finally {
      if (my === seq.current) setLoading(false);
    }
  }

  // (re)load when a filter changes, debounced while typing
  useEffect(() => {
    if (!statusOk) return;
    const t = setTimeout(load, 300);
    return () => clearTimeout(t);
  }, [filters.route, filters.status, filters.q, limit, statusOk]);

  // route names for the filter's suggestions
  useEffect(() => {
    api("metrics/summary")
      .then((doc) => setRoutes((doc.routes || []).map((r) => r.route).filter(Boolean)))
      .catch(() => {});
  }, []);

  // the live tail: one stream per set of filters while "Live" is on; closed on unmount
  useEffect(() => {
    if (!live || !statusOk) {
      setLiveState("");
      return;
    }
    const ctl = new AbortController();
    liveCtl.current = ctl;
    let again = null;
    // the stream ends when the gateway shuts down or when this page fell too far behind:
    // connect again in a moment while "Live" stays on
    const retry = () => {
      if (!ctl.signal.aborted) again = setTimeout(() => setReconnect((n) => n + 1), 2000);
    };
    (async () => {
      setLiveState("connecting");
      try {
        const stream = sse(`requests/stream${qs(filters)}`, {
          signal: ctl.signal,
          onOpen: () => setLiveState("live"),
        });
        for await (const ev of stream) {
          // (an event the reader had buffered when "Live" went off is not shown)
          if (ctl.signal.aborted) break;
          if (ev.event !== "request") continue;
          let r;
          try {
            r = JSON.parse(ev.data);
          } catch {
            continue;
          }
          fresh.current.add(r);
          setRows((old) => [r, ...old].slice(0, MAX_ROWS));
        }
        if (!ctl.signal.aborted) {
          setLiveState("ended, reconnecting…");
          retry();
        }
      } catch (err) {
        if (isAbort(err) || ctl.signal.aborted) return;
        setLiveState("ended");
        setError(err);
        if (err.status !== 401 && err.status !== 403) retry();
      }
    })();
    return () => {
      clearTimeout(again);
      ctl.abort();
    };
  }, [live, filters.route, filters.status, filters.q, statusOk, reconnect]);

  return (
    <section aria-labelledby="rq-title">
      <div class="row rq-head">
        <h1 id="rq-title">Requests</h1>
        <span class="grow" />
        <span class="muted" role="status">
          {rows.length} shown{live && liveState && <> · tail {liveState}</>}
          {loading && " · loading…"}
        </span>
      </div>
      <form
        class="card row rq-filters"
        role="search"
        aria-label="Filter requests"
        onSubmit={(e) => {
          e.preventDefault();
          load();
        }}
      >
        <label>
          Route
          <input list="rq-routes" value={route} onInput={(e) => setRoute(e.target.value)} placeholder="any" size={14} />
          <datalist id="rq-routes">
            {routes.map((r) => (
              <option key={r} value={r} />
            ))}
          </datalist>
        </label>
        <label>
          Status
          <input
            value={status}
            onInput={(e) => setStatus(e.target.value)}
            placeholder="404 or 5xx"
            size={8}
            aria-invalid={statusOk ? undefined : "true"}
            aria-describedby={statusOk ? undefined : "rq-status-err"}
          />
        </label>
        <label class="rq-q">
          Search
          <input type="search" value={q} onInput={(e) => setQ(e.target.value)} placeholder="method, path, backend, tool…" />
        </label>
        <label>
          Limit
          <select value={limit} onChange={(e) => setLimit(e.target.value)}>
            {["50", "100", "250", "500", "1000"].map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" class="secondary">Refresh</button>
        <label class="rq-live">
          <span>
            <input type="checkbox" checked={live} onChange={(e) => {
                if (!e.target.checked && liveCtl.current) liveCtl.current.abort();
                setLive(e.target.checked);
              }} /> Live
          </span>
        </label>
        {!statusOk && (
          <p id="rq-status-err" class="error rq-wide">
            Status: a code (404) or a class (5xx).
          </p>
        )}
      </form>
      {error && <ErrorCard title="Cannot read the requests" error={error} onRetry={() => (setError(null), load())} />}
      <div class="card rq-card">
        <div class="rq-scroll">
          <table class="rq-table">
            <caption class="sr-only">Recent requests, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Method</th>
                <th scope="col">Path</th>
                <th scope="col">Route</th>
                <th scope="col">Backend</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">Duration</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <Row key={keyOf(r)} r={r} fresh={fresh.current.has(r)} />
              ))}
            </tbody>
          </table>
        </div>
        {!rows.length && !loading && <p class="muted">No requests{filters.route || filters.status || filters.q ? " match" : " yet"}.</p>}
      </div>
    </section>
  );
}
