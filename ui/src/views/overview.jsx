// Overview: binds -> listeners -> routes -> policies -> backends (GET topology), with each
// route's live rate, errors and latency (GET metrics/summary, polled every 2 s; the rate
// is the difference of successive request counts) and each target's health (GET targets).
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, onCredential } from "../api.js";
import { ErrorCard, fmtMs, fmtRate, isAbort, toDate, usePoll } from "./common-util.js";
import "./overview.css";

const POLL_MS = 2000;

const HEALTH = { healthy: "ok", failing: "err", evicted: "warn", idle: "" };

function healthTitle(t) {
  const parts = [`health: ${t.state}`, `${t.requests ?? 0} requests`, `${t.errors ?? 0} errors`];
  if (t.last_status != null) parts.push(`last status ${t.last_status}`);
  const seen = toDate(t.last_seen);
  if (seen) parts.push(`last seen ${seen.toLocaleTimeString()}`);
  if (t.last_error) parts.push(`last error: ${t.last_error}`);
  return parts.join(" · ");
}

function HealthBadge({ target }) {
  if (!target || !target.state) return null;
  return (
    <span class={`badge ${HEALTH[target.state] ?? ""}`} title={healthTitle(target)}>
      {target.state}
    </span>
  );
}

function Backends({ route, targets }) {
  const backends = route.backends || [];
  if (!backends.length) return <span class="muted">— (answered by the gateway)</span>;
  return (
    <ul class="plain ov-backends">
      {backends.map((b, i) => {
        const bTargets = b.targets || [];
        const health = (t) =>
          targets.find((x) => x.route === route.key && x.target === t.name && (!b.name || !x.backend || x.backend === b.name)) ||
          targets.find((x) => x.route === route.key && x.target === t.name);
        const own = !bTargets.length && targets.find((x) => x.route === route.key && (x.backend === b.name || x.target === b.name));
        return (
          <li key={i}>
            <span class="badge">{b.kind}</span> <code>{b.name || b.address}</code>
            {b.address && b.name && b.address !== b.name && <span class="muted small-text"> {b.address}</span>}
            {(b.models || []).length > 0 && <span class="muted small-text"> models: {b.models.join(", ")}</span>}
            {own && (
              <>
                {" "}
                <HealthBadge target={own} />
              </>
            )}
            {bTargets.length > 0 && (
              <ul class="plain ov-targets">
                {bTargets.map((t) => {
                  const h = health(t);
                  return (
                    <li key={t.name}>
                      <span class="muted">↳</span> <code>{t.name}</code> <span class="muted">{t.kind}</span>{" "}
                      <HealthBadge target={h} />
                      {h && h.last_error && <span class="error small-text" title={h.last_error}> {h.last_error}</span>}
                      {t.address && <div class="muted small-text ov-addr" title={t.address}>{t.address}</div>}
                    </li>
                  );
                })}
              </ul>
            )}
          </li>
        );
      })}
    </ul>
  );
}

function Stats({ s, rate }) {
  if (!s) return <td colSpan={4} class="muted">no requests yet</td>;
  return (
    <>
      <td class="num" data-label="rate">{fmtRate(rate)}</td>
      <td class="num" data-label="requests">{s.requests}</td>
      <td class="num" data-label="errors">
        <span class={s.errors ? "error" : ""}>{s.errors}</span>
        {s.client_errors ? <span class="warn" title="4xx answers"> / {s.client_errors} 4xx</span> : null}
      </td>
      <td class="num" data-label="latency">
        {fmtMs(s.p50_ms)} <span class="muted">/ {fmtMs(s.p99_ms)}</span>
      </td>
    </>
  );
}

function RouteRow({ route, stats, rate, targets }) {
  const models = route.models || [];
  return (
    <tr data-route={route.key}>
      <th scope="row" class="ov-route">
        <span class="ov-name">{route.name || route.key}</span> <span class={`badge kind-${route.kind}`}>{route.kind}</span>
        {route.key && route.name && route.key !== route.name && <div class="muted small-text">{route.key}</div>}
      </th>
      <td>
        {(route.paths || []).length ? (
          (route.paths || []).map((p) => (
            <div key={p}>
              <code>{p}</code>
            </div>
          ))
        ) : (
          <span class="muted">any</span>
        )}
        {(route.methods || []).length > 0 && (
          <div class="muted small-text">
            methods: {route.methods.join(", ")}
          </div>
        )}
        {models.length > 0 && (
          <div class="muted small-text">
            models: {models.map((m) => <code key={m}>{m} </code>)}
          </div>
        )}
      </td>
      <td>
        {(route.policies || []).length ? (
          <ul class="plain ov-policies">
            {route.policies.map((p) => (
              <li key={p}>
                <span class="badge">{p}</span>
              </li>
            ))}
          </ul>
        ) : (
          <span class="muted">none</span>
        )}
      </td>
      <td>
        <Backends route={route} targets={targets} />
      </td>
      <Stats s={stats} rate={rate} />
    </tr>
  );
}

function RouteTable({ routes, byRoute, rates, targets, caption }) {
  return (
    <div class="ov-scroll">
      <table class="ov-table">
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Route</th>
            <th scope="col">Paths</th>
            <th scope="col">Policies</th>
            <th scope="col">Backends</th>
            <th scope="col" class="num">Rate</th>
            <th scope="col" class="num">Requests</th>
            <th scope="col" class="num">Errors</th>
            <th scope="col" class="num">p50 / p99</th>
          </tr>
        </thead>
        <tbody>
          {routes.map((r) => (
            <RouteRow key={r.key} route={r} stats={byRoute[r.key]} rate={rates[r.key]} targets={targets} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function Overview() {
  const [topology, setTopology] = useState(null);
  const [topoError, setTopoError] = useState(null);
  const [summary, setSummary] = useState(null);
  const [sumError, setSumError] = useState(null);
  const [targets, setTargets] = useState([]);
  const [targetsError, setTargetsError] = useState(null);
  const [rates, setRates] = useState({});
  const [updated, setUpdated] = useState(null);
  const prev = useRef(null);
  // after a 401 the shell asks for the credential once: polls wait until it changes (or Retry)
  const [needAuth, setNeedAuth] = useState(false);
  const needAuthRef = useRef(false);
  needAuthRef.current = needAuth;
  useEffect(() => onCredential(() => setNeedAuth(false)), []);

  usePoll(async (signal) => {
    if (needAuthRef.current) return;
    const [t, s, g] = await Promise.allSettled([
      api("topology", { signal }),
      api("metrics/summary", { signal }),
      api("targets", { signal }),
    ]);
    if (signal.aborted) return;
    if ([t, s, g].some((x) => x.status === "rejected" && x.reason && x.reason.status === 401)) setNeedAuth(true);
    if (t.status === "fulfilled") {
      setTopology(t.value);
      setTopoError(null);
    } else if (!isAbort(t.reason)) setTopoError(t.reason);
    if (s.status === "fulfilled") {
      const now = performance.now();
      const counts = {};
      for (const r of s.value.routes || []) counts[r.route] = r.requests;
      const p = prev.current;
      if (p) {
        const dt = (now - p.at) / 1000;
        const next = {};
        for (const [k, n] of Object.entries(counts)) next[k] = dt > 0 ? Math.max(0, n - (p.counts[k] || 0)) / dt : null;
        setRates(next);
      }
      prev.current = { at: now, counts };
      setSummary(s.value);
      setSumError(null);
      setUpdated(new Date());
    } else if (!isAbort(s.reason)) setSumError(s.reason);
    if (g.status === "fulfilled") {
      setTargets(g.value.targets || []);
      setTargetsError(null);
    } else if (!isAbort(g.reason)) setTargetsError(g.reason);
  }, POLL_MS);

  const byRoute = {};
  for (const r of (summary && summary.routes) || []) byRoute[r.route] = r;
  const known = new Set();
  for (const b of (topology && topology.binds) || [])
    for (const l of b.listeners || []) for (const r of l.routes || []) known.add(r.key);
  // routes the metrics know and the topology does not (no route matched: "", removed routes)
  const others = Object.values(byRoute).filter((s) => !known.has(s.route));
  const totals = Object.values(byRoute).reduce(
    (a, s) => ({ requests: a.requests + s.requests, errors: a.errors + s.errors }),
    { requests: 0, errors: 0 },
  );
  const totalRate = Object.values(rates).reduce((a, v) => a + (v || 0), 0);

  return (
    <section aria-labelledby="ov-title">
      <div class="row ov-head">
        <h1 id="ov-title">Overview</h1>
        <span class="grow" />
        <span class="muted" aria-live="off">
          {summary ? (
            <>
              <span class="ov-total">{fmtRate(totalRate)}</span> · {totals.requests} requests · {totals.errors} errors
              {updated && <> · updated {updated.toLocaleTimeString()}</>}
            </>
          ) : (
            "loading…"
          )}
        </span>
      </div>
      {needAuth && (
        <div class="card" role="alert">
          <strong>The admin API needs the admin credential to show this.</strong>
          <p class="muted">Sign in (top right), or retry.</p>
          <button type="button" class="secondary small" onClick={() => setNeedAuth(false)}>
            Retry
          </button>
        </div>
      )}
      {topoError && !needAuth && <ErrorCard title="Cannot read the topology (GET /api/v1/topology)" error={topoError} />}
      {sumError && !needAuth && <ErrorCard title="Cannot read the metrics (GET /api/v1/metrics/summary)" error={sumError} />}
      {targetsError && !needAuth && !(targetsError instanceof ApiError && targetsError.status === 404) && (
        <ErrorCard title="Cannot read target health (GET /api/v1/targets)" error={targetsError} />
      )}
      {!topology && !topoError && <p class="muted">Loading the topology…</p>}
      {topology &&
        (topology.binds || []).map((b) => (
          <div class="card ov-bind" key={b.port}>
            <h2>
              Bind <code>:{b.port}</code> {b.tls ? <span class="badge ok">TLS</span> : <span class="badge">plain</span>}
            </h2>
            {(b.listeners || []).map((l, i) => (
              <div class="ov-listener" key={l.name || i}>
                <h3>
                  Listener <code>{l.name || `#${i}`}</code> <span class="badge">{l.protocol}</span>{" "}
                  {l.hostname ? <code class="muted">{l.hostname}</code> : <span class="muted">any host</span>}
                </h3>
                {(l.routes || []).length ? (
                  <RouteTable
                    routes={l.routes}
                    byRoute={byRoute}
                    rates={rates}
                    targets={targets}
                    caption={`Routes of listener ${l.name || i} on port ${b.port}`}
                  />
                ) : (
                  <p class="muted">No HTTP routes.</p>
                )}
                {(l.tcpRoutes || []).length > 0 && (
                  <p>
                    TCP routes:{" "}
                    {l.tcpRoutes.map((t, j) => (
                      <code key={j}>{t.name || `#${j}`} </code>
                    ))}
                  </p>
                )}
              </div>
            ))}
          </div>
        ))}
      {topology && !(topology.binds || []).length && <p class="muted">No binds configured.</p>}
      {others.length > 0 && (
        <div class="card">
          <h2>{topology ? "Other traffic" : "Routes"}</h2>
          {topology && <p class="muted">Requests counted under routes the topology does not show (empty: no route matched).</p>}
          <table class="ov-table">
            <thead>
              <tr>
                <th scope="col">Route</th>
                <th scope="col" class="num">Rate</th>
                <th scope="col" class="num">Requests</th>
                <th scope="col" class="num">Errors</th>
                <th scope="col" class="num">p50 / p99</th>
              </tr>
            </thead>
            <tbody>
              {others.map((s) => (
                <tr key={s.route} data-route={s.route}>
                  <th scope="row">{s.route ? <code>{s.route}</code> : <span class="muted">(no route matched)</span>}</th>
                  <Stats s={s} rate={rates[s.route]} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
