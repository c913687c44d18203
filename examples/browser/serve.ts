/**
 * Builds the demo page, then serves it on 127.0.0.1 and prints the URL.
 *
 *   npm run demo:browser            (Bun)      deno task demo-browser
 *   bun examples/browser/serve.ts [--port N] [--no-build]
 *
 * A tiny static server (node:http, which Bun, Deno and Node all have): GET only, files of the
 * build folder, and /weights/<name>.safetensors from the repository's weights/ folder (shipped
 * weights, when that folder exists). No cross-origin isolation headers: the page runs on WebGPU
 * or on the plain TypeScript CPU backend, neither of which needs SharedArrayBuffer (the wasm
 * backend's worker pool would, and would need COOP/COEP).
 */
import { createServer, type Server } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, normalize, resolve, sep } from "node:path";
import { buildDemo, DEFAULT_OUT, WEIGHTS_DIR } from "./build.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".safetensors": "application/octet-stream",
};

/** The file a URL path names inside `root`, or undefined (outside it, or missing). */
function fileIn(root: string, urlPath: string): string | undefined {
  const rel = normalize(decodeURIComponent(urlPath)).replace(/^([/\\])+/, "");
  const full = resolve(root, rel);
  if (full !== root && !full.startsWith(root + sep)) return undefined;
  return existsSync(full) && statSync(full).isFile() ? full : undefined;
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

/** Serves `dir` (a built demo) on 127.0.0.1:`port` (0: any free port). */
export function serveDemo(dir = DEFAULT_OUT, port = 8080): Promise<DemoServer> {
  const root = resolve(dir);
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end("method not allowed\n");
      return;
    }
    const file = path.startsWith("/weights/") ? fileIn(resolve(WEIGHTS_DIR), path.slice("/weights/".length)) : fileIn(root, path === "/" ? "index.html" : path);
    if (!file) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}\n`);
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : readFileSync(file));
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      const addr = server.address();
      const p = typeof addr === "object" && addr ? addr.port : port;
      ok({ url: `http://127.0.0.1:${p}/`, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

if (import.meta.main) {
  const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? (globalThis as { process?: { argv: string[] } }).process!.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log("usage: serve.ts [--port N] [--no-build]   build the browser demo and serve it on 127.0.0.1 (default port 8080)");
  } else {
    const i = args.indexOf("--port");
    const port = i >= 0 ? Number(args[i + 1]) : 8080;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`serve.ts: --port must be an integer in [0, 65535], got ${args[i + 1]}`);
    if (!args.includes("--no-build")) {
      const r = await buildDemo();
      console.log(`built ${r.outDir} (demo.js ${(r.bundleBytes / 1024).toFixed(0)} KiB)${r.weights.length ? `; shipped weights: ${r.weights.join(", ")}` : "; no weights/ folder: the page offers a fresh tiny model and a file picker"}`);
    } else if (!existsSync(join(DEFAULT_OUT, "demo.js"))) {
      throw new Error(`serve.ts --no-build: ${DEFAULT_OUT}/demo.js is missing; run without --no-build first`);
    }
    const s = await serveDemo(DEFAULT_OUT, port);
    console.log(`MemMamba demo: ${s.url}   (Ctrl-C stops)`);
  }
}
