/**
 * The packages as their users get them (issue 9):
 * - no package reaches into another's internals: a source file imports another package only
 *   through an entry point of its exports map, and no relative path leaves its package;
 * - npm: scripts/build-packages.mjs builds dist/ (JS + .d.ts), `npm pack --dry-run` lists what a
 *   tarball holds (entry points yes; tests, fixtures, configs no), and Node 20 runs the built JS;
 * - JSR: `deno publish --dry-run` of each package passes, with the slow-types check (but for cli);
 * - the API reference: `deno doc --lint` is clean and `deno doc --html` writes out/api/index.html.
 *
 * The external commands give the same answer under either runtime, so each runs once: the npm side
 * under Bun, the JSR side and the docs under Deno (this file runs under both).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, expect, runtime, test } from "./support/harness.ts";

const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
const PUBLISHED = ["tensor", "memmamba", "cli"];
/**
 * Packages whose public API still has "slow types" (inferred types JSR must compute): cli's flag
 * builders and command objects (see scripts/docs-lint.mjs). They publish with --allow-slow-types.
 */
const SLOW_TYPES = new Set(["cli"]);
const ALL = [...PUBLISHED, "bench"];

function readJson(path: string): any {
  return JSON.parse(readFileSync(join(root, path), "utf8"));
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Module specifiers of static imports/exports and of dynamic imports with a literal argument. */
function specifiers(source: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm;
  return [...source.matchAll(re)].map((m) => m[1]);
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? root,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
    maxBuffer: 64 << 20,
  });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`, stdout: r.stdout ?? "" };
}

describe("packaging", () => {
  test("every package imports the others only through their exports maps", () => {
    const exportsOf = new Map<string, string[]>();
    for (const p of ALL) {
      const pkg = readJson(`packages/${p}/package.json`);
      exportsOf.set(pkg.name, Object.keys(pkg.exports ?? {}).map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`)));
    }
    const problems: string[] = [];
    const privateCrossings: string[] = [];
    let checked = 0;
    for (const p of ALL) {
      const pkgRoot = join(root, "packages", p);
      // The private bench package measures kernels that are no part of any public API (tile plans,
      // kernel ids), so it may reach into another package's src/; it is never published, so no
      // user can depend on that. The published packages may not.
      const manifest = readJson(`packages/${p}/package.json`);
      const isPrivate = manifest.private === true;
      const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies, ...manifest.devDependencies }));
      for (const file of tsFiles(join(pkgRoot, "src"))) {
        const rel = relative(root, file);
        for (const spec of specifiers(readFileSync(file, "utf8"))) {
          checked++;
          if (spec.startsWith(".")) {
            const target = resolve(dirname(file), spec);
            if (target.startsWith(pkgRoot + sep)) continue;
            const intoSrc = /^packages\/[a-z]+\/src\//.test(relative(root, target).split(sep).join("/"));
            if (isPrivate && intoSrc) privateCrossings.push(`${rel} -> ${spec}`);
            else problems.push(`${rel}: "${spec}" leaves packages/${p}/`);
          } else if (spec.startsWith("@memmamba/")) {
            const owner = spec.split("/").slice(0, 2).join("/");
            if (!exportsOf.get(owner)?.includes(spec)) problems.push(`${rel}: "${spec}" is not an entry point of ${owner}'s exports map`);
          }
          // An npm user gets only the declared dependencies: every bare import must be one.
          const bare = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
          if (!spec.startsWith(".") && !spec.startsWith("node:") && !declared.has(bare) && !isPrivate) {
            problems.push(`${rel}: imports "${spec}", which packages/${p}/package.json does not declare`);
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(problems).toEqual([]);
    if (privateCrossings.length) console.log(`private packages reaching into other packages' sources (allowed, unpublished):\n  ${privateCrossings.join("\n  ")}`);
    // Only bench may: the published packages are all checked strictly.
    expect(PUBLISHED.every((p) => readJson(`packages/${p}/package.json`).private !== true)).toBe(true);
  });

  test("package.json and deno.json describe each published package alike", () => {
    for (const p of PUBLISHED) {
      const pkg = readJson(`packages/${p}/package.json`);
      const deno = readJson(`packages/${p}/deno.json`);
      expect([pkg.name, deno.name]).toEqual([`@memmamba/${p}`, `@memmamba/${p}`]);
      expect(deno.version).toBe(pkg.version);
      expect(deno.license).toBe(pkg.license);
      expect(pkg.description.length).toBeGreaterThan(20);
      expect(pkg.exports["."].types).toBe("./dist/index.d.ts");
      expect(pkg.exports["."].import).toBe("./dist/index.js");
      expect(pkg.exports["."]["@memmamba/source"]).toBe(deno.exports["."]);
      // Workspace dependencies are pinned to the version published alongside.
      for (const [dep, range] of Object.entries<string>(pkg.dependencies ?? {})) {
        if (dep.startsWith("@memmamba/")) expect(`${dep}@${range}`).toBe(`${dep}@${readJson(`packages/${dep.slice(10)}/package.json`).version}`);
      }
    }
  });

  test("npm: build, pack (entry points in, tests out), and Node runs the built modules", () => {
    if (runtime !== "bun") return; // the same commands under Deno would only repeat this
    const build = run("node", ["scripts/build-packages.mjs"]);
    expect(build.out).not.toContain("warning");
    expect(build.status).toBe(0);
    const pack = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts", ...PUBLISHED.flatMap((p) => ["-w", `packages/${p}`])]);
    expect(pack.status).toBe(0);
    const tarballs: { name: string; files: { path: string }[] }[] = JSON.parse(pack.stdout);
    expect(tarballs.map((t) => t.name)).toEqual(PUBLISHED.map((p) => `@memmamba/${p}`));
    for (const t of tarballs) {
      const p = t.name.slice("@memmamba/".length);
      const pkg = readJson(`packages/${p}/package.json`);
      const files = t.files.map((f) => f.path);
      const targets = [
        "package.json",
        ...Object.values<Record<string, string>>(pkg.exports).flatMap((c) => Object.values(c)),
        ...Object.values<string>(pkg.bin ?? {}),
      ].map((f) => f.replace(/^\.\//, ""));
      for (const f of targets) expect(`${t.name}: ${f} ${files.includes(f) ? "packed" : "missing"}`).toBe(`${t.name}: ${f} packed`);
      if (p === "cli") {
        // Every program in src/bin/ is an npm bin (memmamba-<name>).
        const programs = readdirSync(join(root, "packages/cli/src/bin")).filter((f) => f.endsWith(".ts")).map((f) => `./dist/bin/${f.replace(/\.ts$/, ".js")}`);
        expect(Object.values(pkg.bin).sort()).toEqual(programs.sort());
      }
      const unwanted = files.filter((f) => /(^|\/)(test|tests|fixtures|reference|results)\//.test(f) || /\.test\.[jt]s$/.test(f) || /(^|\/)(tsconfig|deno)\.json$/.test(f));
      expect(unwanted).toEqual([]);
    }
    // Node 20 (no TypeScript, no `using`) imports the built packages the way an npm user would.
    const smoke = [
      'const T = await import("@memmamba/tensor");',
      'const M = await import("@memmamba/memmamba");',
      'const C = await import("@memmamba/cli");',
      "const x = T.fromArray([1, 2, 3], [3]);",
      "const p = M.lm.init(T.random.key(0), M.preset('tiny'));",
      "console.log(JSON.stringify({ sum: await T.sum(T.mul(x, x)).item(), dModel: p.config.dModel, help: typeof C.helpText }));",
    ].join("\n");
    const node = run("node", ["--input-type=module", "-e", smoke], { cwd: join(root, "packages", "cli") });
    expect(node.out).toContain('"sum":14');
    expect(node.out).toContain('"help":"function"');
    expect(node.status).toBe(0);
    // An npm bin runs under Node (its first line says so).
    const bin = run("node", [join(root, "packages/cli", readJson("packages/cli/package.json").bin["memmamba-train"]), "--help"]);
    expect(readFileSync(join(root, "packages/cli/dist/bin/train.js"), "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
    expect(bin.out).toContain("Usage:");
    expect(bin.status).toBe(0);
  });

  test("JSR: deno publish --dry-run of each package", async () => {
    if (runtime !== "deno") return; // the same commands under Bun would only repeat this
    const deno = join(root, "tools/node_modules/.bin/deno");
    // --no-check: tsc --noEmit (scripts/test.sh) is the type checker of record; Deno's own check
    // reads the root tsconfig's Bun types. The slow-types check of the public API still runs.
    const { spawn } = await import("node:child_process");
    const results = await Promise.all(PUBLISHED.map((p) => new Promise<{ p: string; status: number | null; out: string }>((done) => {
      const args = ["publish", "--dry-run", "--allow-dirty", "--no-check", ...(SLOW_TYPES.has(p) ? ["--allow-slow-types"] : [])];
      const child = spawn(deno, args, {
        cwd: join(root, "packages", p),
        env: { ...process.env, NO_COLOR: "1" },
      });
      let out = "";
      child.stdout.on("data", (d: unknown) => (out += String(d)));
      child.stderr.on("data", (d: unknown) => (out += String(d)));
      child.on("close", (status: number | null) => done({ p, status, out }));
    })));
    for (const r of results) {
      expect(`${r.p}: ${r.out.match(/^error.*$/m)?.[0] ?? "ok"}`).toBe(`${r.p}: ok`);
      expect(r.out).toContain("Success Dry run complete");
      expect(r.out).toContain(`@memmamba/${r.p}@`);
      // The published files: sources and the manifest, no tests or fixtures.
      const listed = r.out.split("\n").filter((l) => /^\s+file:\/\//.test(l));
      expect(listed.some((l) => l.includes("/src/index.ts ("))).toBe(true);
      expect(listed.filter((l) => /\/(test|fixtures|reference|dist)\/|\.test\.ts /.test(l))).toEqual([]);
      expect(r.status).toBe(0);
    }
  });

  test("deno check of the examples: a user's program that imports the packages type-checks under Deno", () => {
    if (runtime !== "deno") return; // tsc --noEmit covers the same sources under Bun's types
    // (it failed on GPUBufferUsage / GPUMapMode / GPUShaderStage and Bun's require, which Deno's types lack)
    const examples = readdirSync(join(root, "examples")).filter((f) => f.endsWith(".ts")).map((f) => join("examples", f));
    expect(examples.length).toBeGreaterThan(3);
    const r = run(join(root, "tools/node_modules/.bin/deno"), ["check", ...examples]);
    expect(r.out.match(/^(TS\d+|error).*$/gm) ?? []).toEqual([]);
    expect(r.status).toBe(0);
  });

  test("API docs: deno doc --lint is clean and --html writes out/api/index.html", () => {
    if (runtime !== "deno") return; // the same commands under Bun would only repeat this
    const r = run("bash", ["scripts/docs.sh"]);
    expect(r.out.split("\n").filter((l) => /^(warning|error)/i.test(l))).toEqual([]);
    expect(r.out).toContain("docs-lint: clean (3 entry points)");
    expect(r.status).toBe(0);
    const index = join(root, "out/api/index.html");
    expect(existsSync(index)).toBe(true);
    // One page per entry point, each listing the module's symbols (a function of each package here).
    const symbol: Record<string, string> = { tensor: "matmul", memmamba: "mambaBlock", cli: "saveCheckpoint" };
    for (const p of PUBLISHED) {
      const page = join(root, `out/api/${p}/src/index.ts/index.html`);
      expect(existsSync(page)).toBe(true);
      expect(readFileSync(page, "utf8")).toContain(symbol[p]);
    }
  });
});
