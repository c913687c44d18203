#!/usr/bin/env node
// `deno doc --lint` over the published entry points, with a short, explicit list of the findings we
// accept (each with its reason). Anything else — a missing doc comment, a missing explicit type, a
// public type that names an unexported one, any warning — fails. Run from the docs workspace that
// scripts/docs.sh prepares: node docs-lint.mjs <deno> <entry points...>
import { spawnSync } from "node:child_process";

/**
 * Accepted findings. `rule` and `message` must both match; `why` is printed with the count.
 * When one of these gets fixed, its entry must go (an unused entry fails too), so the list only
 * shrinks.
 */
const ACCEPTED = [
  {
    rule: "private-type-ref",
    message: /references private type '(ZodType|ZodObject|\$strip|output|input)'$/,
    why: "types of the zod dependency (config and flag schemas); deno doc documents only our own packages",
  },
  {
    rule: "missing-explicit-type",
    at: /packages\/cli\/src\/commands\/(train|passkey|eval)\.ts:/,
    message: /missing an explicit type annotation$/,
    why: "the command objects' flag types are inferred from ~20 flag definitions each (defineCommand); spelling them out would duplicate them",
  },
];

const [deno, ...entries] = process.argv.slice(2);
if (!deno || entries.length === 0) {
  console.error("docs-lint: usage: node docs-lint.mjs <deno binary> <entry point>...");
  process.exit(2);
}
const r = spawnSync(deno, ["doc", "--lint", ...entries], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
const text = `${r.stdout}${r.stderr}`;
const problems = [];
const used = new Map(ACCEPTED.map((a) => [a, 0]));
for (const line of text.split("\n")) {
  if (/^warning|^Warning/i.test(line)) problems.push(line);
}
for (const block of text.split(/^(?=error\[)/m).slice(1)) {
  const head = /^error\[([a-z-]+)\]: (.*)$/m.exec(block);
  const at = /-->\s+(\S+)/.exec(block)?.[1] ?? "?";
  if (!head) continue;
  const [, rule, message] = head;
  const where = at.replace(/^.*?(packages\/)/, "$1");
  const ok = ACCEPTED.find((a) => a.rule === rule && a.message.test(message) && (!a.at || a.at.test(where)));
  if (ok) used.set(ok, used.get(ok) + 1);
  else problems.push(`${where}: ${rule}: ${message}`);
}
if (r.status !== 0 && problems.length === 0 && ![...used.values()].some((n) => n > 0)) {
  problems.push(`deno doc --lint failed without a finding:\n${text}`);
}
for (const [a, n] of used) {
  if (n > 0) console.log(`accepted: ${n} × ${a.rule} (${a.why})`);
  else problems.push(`an accepted finding no longer occurs; remove it from scripts/docs-lint.mjs: ${a.rule} ${a.message}`);
}
if (problems.length) {
  console.log(problems.join("\n"));
  console.log(`docs-lint: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`docs-lint: clean (${entries.length} entry points)`);
