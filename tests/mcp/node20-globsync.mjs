// Preloaded (node --import) into the MCP conformance runner on Node 20.
// @modelcontextprotocol/conformance 0.1.16 is built for node20 but imports fs.globSync,
// which Node has only from 22 on; the import alone fails to link, although only its
// tier-check command calls it. On Node < 22 this hook hands the runner's `fs` import a
// module that is node:fs plus a globSync that refuses; on Node 22+ it does nothing.
import fs from "node:fs";
import { register } from "node:module";

if (typeof fs.globSync !== "function") {
  const shim =
    "data:text/javascript," +
    encodeURIComponent(
      'export * from "node:fs"; export { default } from "node:fs";\n' +
        'export function globSync() { throw new Error("fs.globSync needs Node 22+ (conformance tier-check)"); }\n',
    );
  const hooks =
    "data:text/javascript," +
    encodeURIComponent(
      `export async function resolve(specifier, context, next) {
        if ((specifier === "fs" || specifier === "node:fs") && context.parentURL &&
            context.parentURL.includes("/@modelcontextprotocol/conformance/")) {
          return { url: ${JSON.stringify(shim)}, shortCircuit: true };
        }
        return next(specifier, context);
      }`,
    );
  register(hooks);
}
