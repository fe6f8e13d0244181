// The MCP SDK and the OpenAI SDK validate with zod 4, which by default probes for
// `new Function` (its JIT). The UI's CSP forbids eval, and even a caught probe is reported
// as a CSP violation: turn the JIT off before any schema is used.
import { config } from "zod/v4/core";

config({ jitless: true });
