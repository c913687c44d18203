/**
 * Bundles the demo page with esbuild (platform "browser") into out/browser-demo/ (ignored by git):
 * index.html, demo.js (+ source map) and weights.json (the checkpoints under weights/, if any,
 * which serve.ts serves at /weights/<name>).
 *
 *   bun examples/browser/build.ts [--out DIR]      deno run -A examples/browser/build.ts
 *
 * Node built-ins: the page must not pull any. Four modules of the packages import them for their
 * file functions only (memmamba's data/text.ts reads text files; cli's checkpoint.ts, atomic-write.ts
 * and weights.ts read and write model files), and the page calls none of those: those imports resolve to a stub whose
 * functions throw a clear error. Any other module importing a node: built-in fails the build,
 * naming the module, so a new dependency on the file system cannot slip into the page unseen.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const ROOT = resolve(HERE, "../..");
export const DEFAULT_OUT = join(ROOT, "out", "browser-demo");
/** Where shipped weights live (another change may add them); served at /weights/. */
export const WEIGHTS_DIR = join(ROOT, "weights");

/** Modules allowed to import node: built-ins, because the page never calls what uses them. */
const NODE_ALLOWED = [
  "packages/memmamba/src/data/text.ts", "packages/cli/src/checkpoint.ts", "packages/cli/src/atomic-write.ts", "packages/cli/src/weights.ts",
];

/** The names `importer` imports from `spec` (default and named), read from its source. */
function importedNames(importer: string, spec: string): { named: string[]; hasDefault: boolean } {
  const src = readFileSync(importer, "utf8");
  const named = new Set<string>();
  let hasDefault = false;
  const esc = spec.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`import\\s+(?!type\\s)([\\w$]+)?\\s*,?\\s*(?:\\{([^}]*)\\})?\\s*from\\s*["']${esc}["']`, "g");
  for (const m of src.matchAll(re)) {
    if (m[1]) hasDefault = true;
    for (const part of (m[2] ?? "").split(",")) {
      const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0].trim();
      if (name) named.add(name);
    }
  }
  return { named: [...named], hasDefault };
}

const nodeGuard: esbuild.Plugin = {
  name: "node-builtins-guard",
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => {
      const rel = relative(ROOT, args.importer).split("\\").join("/");
      if (!NODE_ALLOWED.includes(rel)) {
        return {
          errors: [{
            text: `${rel} imports "${args.path}", a Node built-in, into the browser bundle. ` +
              `Move the file-system code into its own module (or add ${rel} to NODE_ALLOWED in examples/browser/build.ts if the page never calls it).`,
          }],
        };
      }
      return { path: `${args.path}|${args.importer}`, namespace: "node-stub" };
    });
    build.onLoad({ filter: /.*/, namespace: "node-stub" }, (args) => {
      const [spec, importer] = args.path.split("|");
      const { named, hasDefault } = importedNames(importer, spec);
      const thrower = (n: string) =>
        `() => { throw new Error(${JSON.stringify(`${spec} ${n}: not available in the browser (${relative(ROOT, importer)} uses it for files)`)}); }`;
      const lines = named.map((n) => `export const ${n} = ${thrower(n)};`);
      if (hasDefault) lines.push(`export default new Proxy({}, { get: (_, k) => (${thrower("default")})() });`);
      return { contents: lines.join("\n"), loader: "js" };
    });
  },
};

export interface BuildResult {
  outDir: string;
  /** Bytes of demo.js. */
  bundleBytes: number;
  /** Checkpoint files found under weights/ (served at /weights/<name>). */
  weights: string[];
}

/** The .safetensors files directly under weights/ (sorted), or none. */
export function shippedWeights(dir = WEIGHTS_DIR): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir).filter((n) => n.endsWith(".safetensors")).sort();
}

/** Builds the page into `outDir`. Throws with esbuild's messages when the bundle fails. */
export async function buildDemo(outDir = DEFAULT_OUT): Promise<BuildResult> {
  mkdirSync(outDir, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [join(HERE, "main.ts")],
    outfile: join(outDir, "demo.js"),
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    sourcemap: true,
    logLevel: "silent",
    plugins: [nodeGuard],
    // the packages' TypeScript sources, not their npm build (dist/, which may be stale or absent)
    conditions: ["@memmamba/source"],
    // the WebGPU backend can fall back to Dawn (the "webgpu" npm package) through a dynamic
    // import of a variable, which esbuild leaves alone; the page asks for navigator.gpu only
  });
  for (const w of result.warnings) console.warn(`build warning: ${w.text}`);
  copyFileSync(join(HERE, "index.html"), join(outDir, "index.html"));
  const weights = shippedWeights();
  writeFileSync(join(outDir, "weights.json"), JSON.stringify(weights.map((name) => ({ name, url: `weights/${name}` }))));
  return { outDir, bundleBytes: statSync(join(outDir, "demo.js")).size, weights };
}

if (import.meta.main) {
  const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log("usage: build.ts [--out DIR]   bundle the browser demo (default out/browser-demo/)");
  } else {
    const i = args.indexOf("--out");
    if (i >= 0 && !args[i + 1]) throw new Error("build.ts: --out needs a directory");
    const r = await buildDemo(i >= 0 ? resolve(args[i + 1]) : DEFAULT_OUT);
    console.log(`built ${relative(ROOT, r.outDir)}/demo.js (${(r.bundleBytes / 1024).toFixed(0)} KiB)${r.weights.length ? `, weights: ${r.weights.join(", ")}` : ""}`);
  }
}
