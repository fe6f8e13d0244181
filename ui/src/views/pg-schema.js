// A form generated from a JSON schema (an MCP tool's inputSchema, a prompt's arguments):
// one labelled field per property -- text, number, integer, boolean, enum, array of
// strings / numbers (one per line) -- and a JSON textarea for anything more complex.
// Values are kept as the user typed them (strings); toArguments() converts and checks.
import { h } from "preact";
import { useId } from "./pg-common.js";

function typeOf(s) {
  if (!s || typeof s !== "object") return "json";
  let t = s.type;
  if (Array.isArray(t)) t = t.find((x) => x !== "null") || t[0];
  if (!t && Array.isArray(s.enum)) return "enum";
  if (Array.isArray(s.enum) && (t === "string" || t === "number" || t === "integer")) return "enum";
  if (t === "string" || t === "number" || t === "integer" || t === "boolean") return t;
  if (t === "array") {
    const it = s.items && typeOf(s.items);
    if (it === "string" || it === "number" || it === "integer" || it === "enum") return "lines";
    return "json";
  }
  if (!t && (s.anyOf || s.oneOf)) {
    const alts = (s.anyOf || s.oneOf).filter((x) => x && x.type !== "null");
    if (alts.length === 1) return typeOf(alts[0]);
  }
  return "json";
}

/** The fields of a schema: [{name, schema, type, required}]. */
export function fieldsOf(schema) {
  const props = (schema && schema.properties) || {};
  const req = new Set((schema && schema.required) || []);
  return Object.entries(props).map(([name, s]) => ({ name, schema: s || {}, type: typeOf(s), required: req.has(name) }));
}

/** Initial form values from the schema's defaults. */
export function initialValues(schema) {
  const v = {};
  for (const f of fieldsOf(schema)) {
    const d = f.schema.default;
    if (f.type === "boolean") v[f.name] = d === true;
    else if (d === undefined) v[f.name] = f.type === "enum" && f.required && f.schema.enum ? String(f.schema.enum[0]) : "";
    else if (f.type === "lines") v[f.name] = Array.isArray(d) ? d.join("\n") : "";
    else if (f.type === "json") v[f.name] = JSON.stringify(d, null, 2);
    else v[f.name] = String(d);
  }
  return v;
}

function itemType(f) {
  const it = f.schema.items || {};
  const t = Array.isArray(it.type) ? it.type[0] : it.type;
  return t || "string";
}

/** Form values -> the arguments object; throws Error("<field>: ...") on bad input. */
export function toArguments(schema, values) {
  const out = {};
  for (const f of fieldsOf(schema)) {
    const raw = values[f.name];
    if (f.type === "boolean") {
      if (raw || f.required || f.schema.default !== undefined) out[f.name] = !!raw;
      continue;
    }
    const s = raw == null ? "" : String(raw);
    if (s.trim() === "") {
      if (f.required && f.type !== "string") throw new Error(`${f.name}: required`);
      if (f.required) out[f.name] = "";
      continue;
    }
    if (f.type === "number" || f.type === "integer") {
      const n = Number(s);
      if (!Number.isFinite(n)) throw new Error(`${f.name}: not a number`);
      if (f.type === "integer" && !Number.isInteger(n)) throw new Error(`${f.name}: not an integer`);
      out[f.name] = n;
    } else if (f.type === "enum") {
      const match = (f.schema.enum || []).find((e) => String(e) === s);
      out[f.name] = match === undefined ? s : match;
    } else if (f.type === "lines") {
      const items = s.split("\n").map((x) => x.trim()).filter(Boolean);
      const t = itemType(f);
      out[f.name] =
        t === "number" || t === "integer"
          ? items.map((x) => {
              const n = Number(x);
              if (!Number.isFinite(n)) throw new Error(`${f.name}: ${x} is not a number`);
              return n;
            })
          : items;
    } else if (f.type === "json") {
      try {
        out[f.name] = JSON.parse(s);
      } catch (err) {
        throw new Error(`${f.name}: invalid JSON (${err.message})`);
      }
    } else out[f.name] = s;
  }
  return out;
}

function Field({ f, value, onChange, idp }) {
  const id = `${idp}-${f.name}`;
  const hint = `${id}-hint`;
  const desc = f.schema.description || f.schema.title || "";
  const kind =
    f.type === "lines" ? `array of ${itemType(f)}s, one per line` : f.type === "json" ? `${f.schema.type || "value"} as JSON` : f.type;
  const common = { id, "aria-describedby": hint, required: f.required && f.type !== "boolean" };
  let input;
  if (f.type === "boolean") {
    input = h("input", { ...common, type: "checkbox", checked: !!value, onChange: (e) => onChange(e.target.checked) });
  } else if (f.type === "enum") {
    input = h(
      "select",
      { ...common, value, onChange: (e) => onChange(e.target.value) },
      !f.required && h("option", { value: "" }, "(not set)"),
      (f.schema.enum || []).map((e) => h("option", { key: String(e), value: String(e) }, String(e))),
    );
  } else if (f.type === "number" || f.type === "integer") {
    input = h("input", {
      ...common,
      type: "number",
      step: f.type === "integer" ? 1 : "any",
      min: f.schema.minimum,
      max: f.schema.maximum,
      value,
      onInput: (e) => onChange(e.target.value),
    });
  } else if (f.type === "lines" || f.type === "json") {
    input = h("textarea", { ...common, rows: f.type === "json" ? 4 : 3, value, onInput: (e) => onChange(e.target.value) });
  } else {
    const long = f.schema.maxLength > 200 || /text|body|content|prompt|query/i.test(f.name);
    input = long
      ? h("textarea", { ...common, rows: 3, value, onInput: (e) => onChange(e.target.value) })
      : h("input", { ...common, type: f.schema.format === "uri" ? "url" : "text", value, onInput: (e) => onChange(e.target.value) });
  }
  return h(
    "div",
    { class: f.type === "boolean" ? "pg-field pg-check" : "pg-field" },
    h("label", { for: id, class: f.required ? "pg-req" : undefined }, f.name),
    input,
    h("span", { id: hint, class: "muted small" }, kind + (f.required ? ", required" : "") + (desc ? ` — ${desc}` : "")),
  );
}

/** The fields of `schema`, values in `values`, onChange(newValues). */
export function SchemaForm({ schema, values, onChange }) {
  const idp = useId("arg");
  const fields = fieldsOf(schema);
  if (!fields.length) return h("p", { class: "muted" }, "No arguments.");
  return h(
    "div",
    { class: "pg-form" },
    fields.map((f) => h(Field, { key: f.name, f, idp, value: values[f.name], onChange: (v) => onChange({ ...values, [f.name]: v }) })),
  );
}

/** A prompt's arguments ([{name, description, required}]) as a JSON schema of strings. */
export function promptSchema(args) {
  const properties = {};
  const required = [];
  for (const a of args || []) {
    properties[a.name] = { type: "string", description: a.description };
    if (a.required) required.push(a.name);
  }
  return { type: "object", properties, required };
}
