/**
 * A command's `--help` text, rendered from its spec (./flags.ts): the summary, the usage line, the
 * positionals, then every flag with its placeholder, range, default and description, wrapped at
 * 100 columns.
 */
import { type CommandSpec, type FlagDefs, kebab } from "./flags.ts";

function fmtDefault(d: unknown): string {
  if (Array.isArray(d)) return d.join(",");
  if (typeof d === "string") return d;
  return String(d);
}

const NBSP = "\u00a0"; // keeps "[default: x]" on one line when wrapping

function wrap(text: string, width: number, indent: number): string[] {
  const words = text.split(/[ \t\n]+/).filter(Boolean);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.map((l, i) => (i === 0 ? l : " ".repeat(indent) + l));
}

/** The help text: summary, usage, positionals, then every flag with its type, default and description. */
export function helpText<F extends FlagDefs>(spec: CommandSpec<F>): string {
  const out: string[] = [`${spec.name}: ${spec.summary}`, "", `Usage: ${spec.usage ?? `${spec.name} [flags]`}`];
  const pos = spec.positionals ?? [];
  if (pos.length) {
    out.push("", "Arguments:");
    for (const p of pos) {
      const choices = p.choices ? ` (one of: ${p.choices.join(", ")})` : "";
      out.push(`  <${p.name}>  ${p.description}${choices}${p.required ? "" : " [optional]"}`);
    }
  }
  out.push("", "Flags:");
  const rows: [string, string][] = [];
  for (const [key, def] of Object.entries(spec.flags)) {
    const cli = kebab(key);
    const aliases = def.aliases.map((a) => (a.length === 1 ? `-${a}, ` : `--${a}, `)).join("");
    const left = def.kind === "bool" ? `${aliases}--[no-]${cli}` : `${aliases}--${cli} ${def.placeholder}`;
    const dflt = def.defaultLabel !== undefined
      ? ` [default: ${def.defaultLabel}]`
      : def.required ? " [required]" : def.default !== undefined ? ` [default: ${fmtDefault(def.default)}]` : " [optional]";
    // the placeholder already says what an enum, a path, a string or a boolean takes; numbers add their range
    const type = ["number", "int", "intList", "numberList"].includes(def.kind) ? ` (${def.expects})` : "";
    // (the space before "[default: …]" stays breakable: only the bracket holds together, so the
    // description's last word is not pulled onto the next line with it)
    rows.push([left, `${def.description}${type} ${dflt.trimStart().replace(/ /g, NBSP)}`]);
  }
  rows.push(["-h, --help", "print this help and exit"]);
  const w = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  for (const [l, r] of rows) {
    const pad = l.length + 2 > w ? `\n${" ".repeat(2 + w)}` : " ".repeat(w - l.length);
    out.push(`  ${l}${pad}${wrap(r, 100 - w, 2 + w).join("\n").replaceAll(NBSP, " ")}`);
  }
  if (spec.epilog) out.push("", spec.epilog.trimEnd());
  return out.join("\n") + "\n";
}
