#!/usr/bin/env node
// Builds what npm consumers run: packages/<name>/dist/ with ES modules (esbuild: one bundle per
// entry point, other packages and node: builtins left as imports, `using` lowered so Node 20 runs
// it) and .d.ts declarations (tsc). The repository itself never needs dist/: tsc, Bun and Deno read
// the TypeScript sources (the "@memmamba/source" and "bun" export conditions, the Deno workspace).
//
// Usage: node scripts/build-packages.mjs [tensor memmamba cli]   (default: all three, in that order,
// since each one's declarations import the previous one's). Run by each package's `prepack`, so
// `npm pack` / `npm publish` always ship a fresh build.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The entry points of each published package: its exports map's "." (and the CLI's programs). */
const ENTRIES = {
  tensor: ["src/index.ts"],
  memmamba: ["src/index.ts"],
  cli: ["src/index.ts"], // plus every program in src/bin/ (see below)
};
const ORDER = ["tensor", "memmamba", "cli"];

function fail(msg) {
  console.error(`build-packages: ${msg}`);
  process.exit(1);
}

const wanted = process.argv.slice(2);
for (const w of wanted) if (!ORDER.includes(w)) fail(`unknown package "${w}" (expected one of ${ORDER.join(", ")})`);
const names = wanted.length ? ORDER.filter((n) => wanted.includes(n)) : ORDER;

let esbuild;
try {
  esbuild = await import("esbuild");
} catch (e) {
  fail(`esbuild is missing (run npm ci at the repository root): ${e.message}`);
}

/** Rewrites relative "./x.ts" specifiers in emitted declarations to "./x.js" (what consumers resolve). */
function rewriteDeclarations(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) rewriteDeclarations(p);
    else if (p.endsWith(".d.ts")) {
      const text = readFileSync(p, "utf8");
      const out = text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, "$1$2.js$3");
      if (out !== text) writeFileSync(p, out);
    }
  }
}

for (const name of names) {
  const pkg = join(root, "packages", name);
  const dist = join(pkg, "dist");
  rmSync(dist, { recursive: true, force: true });
  const isCli = name === "cli";
  const bins = isCli ? readdirSync(join(pkg, "src", "bin")).filter((f) => f.endsWith(".ts")).sort().map((f) => `src/bin/${f}`) : [];
  const entryPoints = [...ENTRIES[name], ...bins].map((e) => join(pkg, e));
  // JavaScript: one ESM bundle per entry point; shared code and lazily imported backends
  // (WebGPU, wasm) go to chunks, so importing the package does not load them.
  await esbuild.build({
    entryPoints,
    outdir: dist,
    outbase: join(pkg, "src"),
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    packages: "external",
    external: ["node:*"],
    chunkNames: "chunks/[name]-[hash]",
    logLevel: "warning",
  });
  // The programs' sources start with "#!/usr/bin/env bun" (esbuild keeps it); an npm bin runs
  // under Node.
  for (const b of bins) {
    const out = join(dist, b.replace(/^src\//, "").replace(/\.ts$/, ".js"));
    writeFileSync(out, `#!/usr/bin/env node\n${readFileSync(out, "utf8").replace(/^#!.*\n/, "")}`);
  }
  // Declarations: tsc over the package's sources. Other @memmamba packages resolve through their
  // exports map's "types" condition, i.e. to the dist/ just built, not to their sources.
  mkdirSync(join(root, "out", "build"), { recursive: true });
  const config = join(root, "out", "build", `tsconfig.${name}.json`);
  writeFileSync(config, JSON.stringify({
    extends: relative(dirname(config), join(root, "tsconfig.json")),
    compilerOptions: {
      noEmit: false,
      declaration: true,
      emitDeclarationOnly: true,
      rootDir: relative(dirname(config), join(pkg, "src")),
      outDir: relative(dirname(config), dist),
      customConditions: [],
    },
    include: [],
    files: entryPoints.map((e) => relative(dirname(config), e)),
  }, null, 2));
  const tsc = spawnSync(join(root, "node_modules", ".bin", "tsc"), ["-p", config], { encoding: "utf8" });
  if (tsc.status !== 0) fail(`tsc (declarations of ${name}) failed:\n${tsc.stdout}${tsc.stderr}`);
  rewriteDeclarations(dist);
  console.log(`build-packages: ${relative(root, dist)} built`);
}
