// Small helpers the overview, requests, config and CEL views share (no JSX here: a .js file).
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";

/** Calls fn(signal) now and then every `ms` (after the previous call ends) until unmount. */
export function usePoll(fn, ms, deps = []) {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    const ctl = new AbortController();
    let timer = null;
    let stopped = false;
    let first = true;
    async function tick() {
      try {
        // a hidden tab skips its polls (the next visible one catches up)
        if (!document.hidden || first) await fnRef.current(ctl.signal);
      } catch {
        /* the callback reports its own errors */
      }
      first = false;
      if (!stopped) timer = setTimeout(tick, ms);
    }
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctl.abort();
    };
  }, deps);
}

/** True for the error fetch throws when its AbortController aborts. */
export function isAbort(err) {
  return err && (err.name === "AbortError" || (err instanceof DOMException && err.code === 20));
}

/** A card showing an API error (role=alert), with an optional retry button. */
export function ErrorCard({ title, error, onRetry }) {
  const status = error && error.status ? ` (HTTP ${error.status})` : "";
  return h(
    "div",
    { class: "card error-card", role: "alert" },
    h("strong", null, title || "The admin API answered with an error", status),
    h("p", { class: "error" }, String((error && error.message) || error)),
    onRetry ? h("button", { type: "button", class: "secondary small", onClick: onRetry }, "Retry") : null,
  );
}

export function fmtMs(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 100) return `${v.toFixed(1)} ms`;
  if (v < 10000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}

export function fmtRate(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (v === 0) return "0/s";
  if (v < 10) return `${v.toFixed(2)}/s`;
  return `${v.toFixed(1)}/s`;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");
/** Epoch seconds (or an ISO 8601 string) -> a Date, or null. */
export function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Epoch seconds or ISO time -> local HH:MM:SS.mmm */
export function fmtTime(t) {
  const d = toDate(t);
  if (!d) return "—";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtDateTime(t) {
  const d = toDate(t);
  return d ? d.toISOString() : "";
}

/** CSS class for an HTTP status: ok (2xx/3xx), warn (4xx), err (5xx, 0). */
export function statusClass(status) {
  if (!status || status >= 500) return "err";
  if (status >= 400) return "warn";
  return "ok";
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}
