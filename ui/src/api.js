// The admin API client every view uses: same origin, JSON in and out, the admin
// credential (token or user/password, kept in this tab's sessionStorage) sent in
// x-agentgw-admin-authorization so that the Authorization header stays free for the
// requests the playgrounds relay to a route.

const KEY = "agentgw.admin.credential";
/** The admin API under the UI's own path: served so on the admin address and on a traffic
 * listener the config's `ui.gateways` attach the UI to. */
export const API = "/ui/api/v1/";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function credential() {
  return sessionStorage.getItem(KEY) || "";
}

export function setCredential(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn(value);
}

/** Calls fn(credential) when the credential changes; returns the unsubscribe. */
export function onCredential(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Bearer token or user/password as the header value the admin API takes. */
export function credentialFor({ token, username, password }) {
  if (token) return `Bearer ${token.trim()}`;
  if (username) return `Basic ${btoa(unescape(encodeURIComponent(`${username}:${password || ""}`)))}`;
  return "";
}

const needLogin = new Set();
/** Subscribe to "the API asked for a credential" (a 401). */
export function onUnauthorized(fn) {
  needLogin.add(fn);
  return () => needLogin.delete(fn);
}

/** Headers every admin API call carries (the playgrounds add theirs). */
export function adminHeaders(extra = {}) {
  const h = { ...extra };
  const c = credential();
  if (c) h["x-agentgw-admin-authorization"] = c;
  return h;
}

/**
 * api("config") -> the parsed JSON answer; throws ApiError(status, message, body).
 * body: an object (sent as JSON) or a string with ctype (a YAML document).
 */
export async function api(path, { method = "GET", body, ctype, signal } = {}) {
  const headers = adminHeaders();
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") {
      payload = body;
      headers["content-type"] = ctype || "application/yaml";
    } else {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
  }
  const res = await fetch(`${API}${path}`, { method, headers, body: payload, signal, cache: "no-store" });
  let doc = null;
  const text = await res.text();
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = { error: text };
  }
  if (res.status === 401) for (const fn of needLogin) fn(doc && doc.error);
  if (!res.ok) throw new ApiError(res.status, (doc && doc.error) || `${res.status} ${res.statusText}`, doc);
  return doc;
}

/**
 * The URL under which the admin API relays a request to the gateway's own bind on
 * `port` (a playground's base URL): <API>relay/<port>/<path>.
 */
export function relayUrl(port, path = "/") {
  return `${location.origin}${API}relay/${port}${path.startsWith("/") ? path : "/" + path}`;
}

/**
 * fetch for the playgrounds: goes through the relay and carries the admin credential;
 * `host` (a listener's hostname) is sent as the Host the route sees.
 */
export function relayFetch(host) {
  return (input, init = {}) => {
    const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    // the route's credential travels in x-agentgw-relay-authorization: the relay never
    // passes on Authorization (a browser may attach one of its own)
    const routeCredential = headers.get("authorization");
    if (routeCredential) {
      headers.delete("authorization");
      headers.set("x-agentgw-relay-authorization", routeCredential);
    }
    const c = credential();
    if (c) headers.set("x-agentgw-admin-authorization", c);
    if (host) headers.set("x-agentgw-relay-host", host);
    return fetch(input, { ...init, headers });
  };
}

/**
 * The Server-Sent Events of a response body, as `{event, data}` (comments skipped, CRLF
 * or LF line ends, multi-line data joined). Cancels the body when the caller stops.
 */
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const at = line.indexOf(":");
          const k = at < 0 ? line : line.slice(0, at);
          const v = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
          if (k === "event") event = v;
          else if (k === "data") data.push(v);
        }
        if (data.length) yield { event, data: data.join("\n") };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Reads an SSE endpoint of the admin API (fetch, so the credential header goes too);
 * `onOpen` is called once the answer's head arrived (the stream is live).
 */
export async function* sse(path, { signal, onOpen } = {}) {
  const res = await fetch(`${API}${path}`, { headers: adminHeaders(), signal, cache: "no-store" });
  if (res.status === 401) for (const fn of needLogin) fn();
  if (!res.ok) throw new ApiError(res.status, `${res.status} ${res.statusText}`);
  if (onOpen) onOpen();
  yield* sseEvents(res.body);
}
