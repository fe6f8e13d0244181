// Shared pieces of the MCP / A2A / LLM playgrounds: the routes of one kind (from
// GET /api/v1/topology), a
// route picker, the optional route credentials, and a fetch through the admin relay that
// carries them. Written with h() rather than JSX so that it stays a plain .js module.
import { h, Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, relayFetch } from "../api.js";
import "./mcp.css";

let uid = 0;
/** A stable unique id for label/aria wiring. */
export function useId(prefix = "pg") {
  const [id] = useState(() => `${prefix}-${++uid}`);
  return id;
}

function firstPath(paths) {
  return (paths && paths.find((p) => typeof p === "string" && p.startsWith("/"))) || "/";
}

/** Routes of `kind` from the topology answer: [{key, label, port, path, host, route, models}]. */
export function routesFromTopology(topo, kind) {
  const out = [];
  for (const b of (topo && topo.binds) || []) {
    for (const l of b.listeners || []) {
      for (const r of l.routes || []) {
        if (r.kind !== kind) continue;
        const path = firstPath(r.paths);
        const host = l.hostname && !String(l.hostname).includes("*") ? l.hostname : "";
        out.push({
          key: `${b.port}|${host}|${r.key || r.name}|${path}`,
          label: `${r.name || r.key} — :${b.port}${path}${host ? ` (${host})` : ""}`,
          port: b.port,
          path,
          host,
          route: r,
          models: r.models || [],
          policies: r.policies || [],
        });
      }
    }
  }
  return out;
}

/** The routes of one kind: {routes, error, loading}. */
export function useRoutes(kind) {
  const [state, setState] = useState({ routes: [], error: "", loading: true });
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const routes = routesFromTopology(await api("topology"), kind);
        if (live) setState({ routes, error: "", loading: false });
      } catch (err) {
        if (live) setState({ routes: [], error: `Could not load the routes: ${err.message}`, loading: false });
      }
    })();
    return () => {
      live = false;
    };
  }, [kind]);
  return state;
}

const CUSTOM = "__custom__";

/**
 * A labelled select. The label is not wrapped around the select (its text would then
 * include every option's): label for= id, side by side in a column.
 */
export function Select({ label, value, onChange, disabled, children }) {
  const id = useId("sel");
  return h(
    "div",
    { class: "pg-select" },
    h("label", { for: id }, label),
    h("select", { id, value, disabled, onChange: (e) => onChange(e.target.value) }, children),
  );
}

/**
 * The route picker: a select of the routes of one kind plus "Other…" (port, path and
 * Host typed in). onChange({port, path, host, models, label}) whenever the choice changes.
 */
export function RoutePicker({ kind, label = "Route", disabled, onChange }) {
  const { routes, error, loading } = useRoutes(kind);
  const [sel, setSel] = useState("");
  const [custom, setCustom] = useState({ port: "", path: "/", host: "" });
  useEffect(() => {
    if (!loading && !sel) setSel(routes.length ? routes[0].key : CUSTOM);
  }, [loading]);
  useEffect(() => {
    if (!sel) return;
    if (sel === CUSTOM) {
      const port = parseInt(custom.port, 10);
      onChange(port > 0 ? { port, path: custom.path || "/", host: custom.host.trim(), models: [], label: "custom" } : null);
    } else {
      onChange(routes.find((r) => r.key === sel) || null);
    }
  }, [sel, custom, routes]);
  const set = (k) => (e) => setCustom({ ...custom, [k]: e.target.value });
  return h(
    Fragment,
    null,
    h(
      Select,
      { label, value: sel, disabled: disabled || loading, onChange: setSel },
      loading && h("option", { value: "" }, "Loading…"),
      routes.map((r) => h("option", { key: r.key, value: r.key }, r.label)),
      h("option", { value: CUSTOM }, "Other (port and path)…"),
    ),
    error && h("p", { class: "error", role: "alert" }, error),
    !loading && !routes.length && !error && h("p", { class: "muted small" }, `No ${kind.toUpperCase()} route in the running config.`),
    sel === CUSTOM &&
      h(
        "div",
        { class: "pg-grid3" },
        h("label", null, "Port", h("input", { type: "number", min: 1, max: 65535, value: custom.port, disabled, onInput: set("port") })),
        h("label", null, "Path", h("input", { value: custom.path, disabled, onInput: set("path") })),
        h("label", null, "Host (optional)", h("input", { value: custom.host, disabled, onInput: set("host") })),
      ),
  );
}

/**
 * Optional credentials for the route: none, a bearer token, or a header (name + value).
 * value = {mode, token, name, value}; headersFor(value) turns it into request headers.
 */
export function Credentials({ value, onChange, disabled }) {
  const set = (k) => (e) => onChange({ ...value, [k]: e.target.value });
  return h(
    "fieldset",
    { class: "pg-creds", disabled },
    h("legend", null, "Route credentials"),
    h(
      Select,
      { label: "Send", value: value.mode, onChange: (v) => onChange({ ...value, mode: v }) },
      h("option", { value: "none" }, "No credentials"),
      h("option", { value: "bearer" }, "Bearer token (Authorization)"),
      h("option", { value: "header" }, "API key header"),
    ),
    value.mode === "bearer" &&
      h("label", null, "Bearer token", h("input", { type: "password", autocomplete: "off", value: value.token, onInput: set("token") })),
    value.mode === "header" &&
      h(
        "div",
        { class: "pg-grid2" },
        h("label", null, "Header name", h("input", { value: value.name, placeholder: "x-api-key", onInput: set("name") })),
        h("label", null, "Header value", h("input", { type: "password", autocomplete: "off", value: value.value, onInput: set("value") })),
      ),
  );
}

export const NO_CREDENTIALS = { mode: "none", token: "", name: "x-api-key", value: "" };

export function headersFor(c) {
  if (!c) return {};
  if (c.mode === "bearer" && c.token.trim()) return { authorization: `Bearer ${c.token.trim()}` };
  if (c.mode === "header" && c.name.trim() && c.value) return { [c.name.trim()]: c.value };
  return {};
}

/**
 * fetch through the relay (admin credential, relay Host) that also sends `extra`
 * headers (the route credentials), unless the request already sets them.
 */
export function routeFetch(host, extra = {}, { dropAuthorization = false } = {}) {
  const relay = relayFetch(host);
  return (input, init = {}) => {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    if (dropAuthorization) headers.delete("authorization");
    for (const [k, v] of Object.entries(extra)) if (!headers.has(k)) headers.set(k, v);
    return relay(input, { ...init, headers });
  };
}

/** "HTTP 401: message" for a failed relay response (the body's error/message if JSON). */
export async function httpError(res) {
  let detail = "";
  try {
    const text = await res.text();
    try {
      const doc = JSON.parse(text);
      detail = (doc && (doc.error && (doc.error.message || doc.error))) || doc.message || text;
    } catch {
      detail = text;
    }
  } catch {
    /* no body */
  }
  if (typeof detail !== "string") detail = JSON.stringify(detail);
  return `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}${detail ? `: ${detail.slice(0, 300)}` : ""}`;
}

export function fmtMs(ms) {
  if (ms == null || Number.isNaN(ms)) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function clock(d = new Date()) {
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

/** A log panel: entries [{t, kind, text}], newest last, announced politely. */
export function LogPanel({ entries, onClear, label = "Log" }) {
  return h(
    "section",
    { class: "card pg-log-card", "aria-label": label },
    h("div", { class: "row" }, h("h2", null, label), h("span", { class: "grow" }), onClear && h("button", { type: "button", class: "secondary small", onClick: onClear }, "Clear log")),
    entries.length
      ? h(
          "ol",
          { class: "pg-log", role: "log", "aria-live": "polite" },
          entries.map((e, i) =>
            h(
              "li",
              { key: i, class: e.kind === "error" ? "error" : undefined },
              h("span", { class: "muted" }, e.t),
              " ",
              h("span", { class: "badge" }, e.kind),
              " ",
              h("span", { class: "pg-logtext" }, e.text),
            ),
          ),
        )
      : h("p", { class: "muted" }, "Nothing yet."),
  );
}

export function useLog(max = 300) {
  const [entries, setEntries] = useState([]);
  const add = (kind, text) =>
    setEntries((old) => {
      const next = [...old, { t: clock(), kind, text: typeof text === "string" ? text : JSON.stringify(text) }];
      return next.length > max ? next.slice(next.length - max) : next;
    });
  return [entries, add, () => setEntries([])];
}

export function errorText(err) {
  if (!err) return "";
  if (typeof err === "string") return err;
  return err.message || String(err);
}
