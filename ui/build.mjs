// Builds the web UI into ../src/agentgw/admin/ui/ (shipped inside the Python package).
//
//   node build.mjs            write the assets
//   node build.mjs --check    build in memory and fail if the shipped assets differ
//
// The output is deterministic (no timestamps, no hashes of paths), so `--check` in CI
// proves the committed assets are exactly what this lockfile and these sources make.
import * as esbuild from "esbuild";
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "agentgw", "admin", "ui");
const check = process.argv.includes("--check");

// The MCP SDK's client imports its ajv-based validator even when given another one (the
// playground passes @cfworker/json-schema's, which needs no eval under the page's CSP):
// a stand-in keeps ajv (about 130 KB) out of the bundle.
const noAjv = {
  name: "no-ajv",
  setup(build) {
    build.onResolve({ filter: /validation\/ajv-provider\.js$/ }, (args) => ({ path: args.path, namespace: "no-ajv" }));
    build.onLoad({ filter: /.*/, namespace: "no-ajv" }, () => ({
      contents:
        "export class AjvJsonSchemaValidator { constructor() { throw new Error('ajv is not bundled: pass jsonSchemaValidator'); } }",
      loader: "js",
    }));
  },
};

const result = await esbuild.build({
  plugins: [noAjv],
  entryPoints: { app: join(here, "src", "main.jsx") },
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  charset: "utf8",
  define: { "process.env.NODE_ENV": '"production"' },
  loader: { ".css": "css" },
  outdir: out,
  write: false,
  logLevel: "warning",
});

const files = new Map();
for (const f of result.outputFiles) files.set(f.path.slice(out.length + 1), Buffer.from(f.contents));
files.set("index.html", readFileSync(join(here, "src", "index.html")));

let stale = [];
for (const [name, data] of files) {
  const path = join(out, name);
  if (check) {
    if (!existsSync(path) || !readFileSync(path).equals(data)) stale.push(name);
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data);
  }
}
if (check) {
  if (stale.length) {
    console.error(`ui: the shipped assets differ from a fresh build: ${stale.join(", ")} (run make ui)`);
    process.exit(1);
  }
  console.log(`ui: ${files.size} shipped assets match a fresh build`);
} else {
  for (const [name, data] of files) console.log(`ui: ${name} ${data.length} bytes`);
}
