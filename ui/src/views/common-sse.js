// A Server-Sent Events reader for the admin API like api.js' sse(), which also tells when
// the stream is open (onOpen: the answer's headers arrived), so a view can say "live" only
// once it really is.
import { adminHeaders, api, API, ApiError } from "../api.js";

export async function* sseWithOpen(path, { signal, onOpen } = {}) {
  const res = await fetch(`${API}${path}`, { headers: adminHeaders(), signal, cache: "no-store" });
  if (!res.ok) {
    if (res.status === 401) {
      // let api() raise the shell's sign-in dialog (and the view its error)
      await api(path.split("/")[0], { signal });
    }
    throw new ApiError(res.status, `${res.status} ${res.statusText}`);
  }
  if (onOpen) onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
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
          const k = line.includes(":") ? line.slice(0, line.indexOf(":")) : line;
          const v = line.includes(":") ? line.slice(line.indexOf(":") + 1).replace(/^ /, "") : "";
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
