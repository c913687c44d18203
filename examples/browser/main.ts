/**
 * The demo page (bundled by build.ts into demo.js): picks a backend, loads a model, streams text
 * or a passkey prompt byte by byte and draws what the model does (session.ts computes it).
 *
 * URL parameters (the browser test drives the page with them):
 *   backend=auto|webgpu|cpu   auto (default): WebGPU when navigator.gpu gives an adapter, else CPU
 *   model=fresh|shipped       which model to load first (default: shipped weights when the server
 *                             has some, else a fresh tiny model)
 *   checkpoint=URL            load this checkpoint instead
 *   seed=N                    the fresh model's seed (default 0)
 *   mode=text|passkey, tokens=N, autorun=1   start streaming at once (tokens: max bytes in text mode)
 *   length=N, depth=D         the passkey prompt's length in bytes and the key's depth in [0, 1]
 * The page reports on <body>: data-status (loading, ready, running, done, error), data-backend,
 * data-tokens (bytes streamed), data-bpb (mean bits per byte), data-answer (passkey mode: the answer).
 */
/// <reference lib="dom" />
import { setBackend } from "@memmamba/tensor";
import { createWebGpuBackend } from "../../packages/tensor/src/webgpu/backend.ts";
import {
  freshModel, modelFromCheckpoint, passkeyPrompt, runPasskey, SAMPLE_TEXT, StreamSession, type LoadedDemoModel, type StepView,
} from "./session.ts";
import { disposeTree } from "@memmamba/tensor";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const HISTORY = 240; // heatmap columns (steps)
const CELL_W = 3, CELL_H = 9, STRIP = 6;

let model: LoadedDemoModel | undefined;
let running = false, stopRequested = false;

function setStatus(s: "loading" | "ready" | "running" | "done" | "error", text: string): void {
  document.body.dataset.status = s;
  $("status").textContent = text;
  $("status").className = s === "error" ? "info err" : "info";
}

function fail(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  console.error(e);
  setStatus("error", `error: ${msg}`);
}

// ---------- backend ----------

async function pickBackend(): Promise<void> {
  const want = params.get("backend") ?? "auto";
  if (!["auto", "webgpu", "cpu"].includes(want)) throw new Error(`?backend=${want}: expected auto, webgpu or cpu`);
  let why = "asked for the CPU backend";
  if (want !== "cpu") {
    const nav = (navigator as Navigator & { gpu?: GPU }).gpu;
    if (!nav) why = "no navigator.gpu in this browser";
    else {
      try {
        const b = await createWebGpuBackend({ via: "navigator.gpu" });
        setBackend(b);
        document.body.dataset.backend = "webgpu";
        $("backend").textContent = `webgpu (${b.adapterInfo})`;
        return;
      } catch (e) {
        why = `WebGPU unavailable: ${e instanceof Error ? e.message.split("\n")[0] : e}`;
      }
    }
    if (want === "webgpu") throw new Error(`?backend=webgpu: ${why}`);
  }
  setBackend("cpu");
  document.body.dataset.backend = "cpu";
  $("backend").textContent = "cpu (TypeScript)";
  $("backend").title = why;
}

// ---------- models ----------

function useModel(m: LoadedDemoModel): void {
  if (model) disposeTree(model.params);
  model = m;
  const c = m.params.config;
  $("model-info").textContent = `${m.source}; ${c.kind}, d=${c.dModel}, ${c.nLayers} layers, pool ${c.memory.poolSize}`;
  resetViews();
}

async function loadUrl(url: string): Promise<void> {
  setStatus("loading", `fetching ${url}…`);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  useModel(modelFromCheckpoint(new Uint8Array(await res.arrayBuffer()), url));
  setStatus("ready", "ready");
}

async function shippedList(): Promise<{ name: string; url: string }[]> {
  try {
    const res = await fetch("weights.json");
    return res.ok ? await res.json() : [];
  } catch {
    return [];
  }
}

// ---------- views ----------

interface Column {
  /** Per slot: the note's position (−1: empty) and the attention weight on it. */
  pos: Int32Array;
  w: Float32Array;
  mark: "write" | "evict" | "reject" | "";
}
let columns: Column[][] = [];
let shown: StepView | undefined;
let bitsSum = 0, bitsN = 0;
let needle: [number, number] | undefined;
let session: StreamSession | undefined;

const hue = (pos: number) => (pos * 137.508) % 360;

function resetViews(): void {
  columns = [];
  bitsSum = bitsN = 0;
  shown = undefined;
  $("layers").replaceChildren();
  $("predictions").replaceChildren();
  $("events").replaceChildren();
  $("stream").replaceChildren();
  $("bpb").textContent = "–";
  $("answer").textContent = "";
  const c = model?.params.config;
  const layers = c && c.kind === "memmamba" && c.memory.enabled ? c.nLayers : 0;
  const P = c?.memory.poolSize ?? 0;
  for (let l = 0; l < layers; l++) {
    const div = document.createElement("div");
    div.className = "layer";
    const h = document.createElement("h2");
    h.textContent = `layer ${l}`;
    const canvas = document.createElement("canvas");
    canvas.className = "heatmap";
    canvas.width = HISTORY * CELL_W;
    canvas.height = P * CELL_H + STRIP + 2;
    const slots = document.createElement("div");
    slots.className = "slots";
    div.append(h, canvas, slots);
    $("layers").append(div);
    columns.push([]);
  }
  if (!layers) $("layers").textContent = "This model has no note pools (memory off).";
}

function record(v: StepView): void {
  if (v.bits !== undefined) {
    bitsSum += v.bits;
    bitsN++;
  }
  const P = model!.params.config.memory.poolSize;
  v.layers.forEach((ls, l) => {
    const col: Column = { pos: new Int32Array(P).fill(-1), w: new Float32Array(P), mark: ls.evicted ? "evict" : ls.accepted ? "write" : ls.written ? "reject" : "" };
    ls.read.forEach((s, i) => {
      col.pos[i] = s.pos;
      col.w[i] = ls.attention[i];
    });
    const cols = columns[l];
    cols.push(col);
    if (cols.length > HISTORY) cols.shift();
  });
  shown = v;
}

const printable = (b: number) => (b === 10 ? "⏎" : b === 32 ? "␣" : b >= 33 && b < 127 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`);

function render(): void {
  if (!shown || !session) return;
  const v = shown;
  $("progress").textContent = `${session.length} bytes`;
  document.body.dataset.tokens = String(session.length);
  if (bitsN) {
    $("bpb").textContent = (bitsSum / bitsN).toFixed(3);
    document.body.dataset.bpb = String(bitsSum / bitsN);
  }
  $("predictions").replaceChildren(...v.top.map((p) => {
    const li = document.createElement("li");
    const ch = document.createElement("span");
    ch.className = "ch";
    ch.textContent = printable(p.byte);
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, p.p * 200)}px`;
    const pct = document.createElement("span");
    pct.textContent = `${(p.p * 100).toFixed(2)}%`;
    li.append(ch, bar, pct);
    return li;
  }));

  const P = model!.params.config.memory.poolSize;
  document.querySelectorAll<HTMLDivElement>(".layer").forEach((div, l) => {
    const canvas = div.querySelector("canvas")!;
    const g = canvas.getContext("2d")!;
    g.fillStyle = "#000";
    g.fillRect(0, 0, canvas.width, canvas.height);
    const cols = columns[l];
    const x0 = (HISTORY - cols.length) * CELL_W;
    cols.forEach((c, x) => {
      // brightness relative to the column's largest weight: an untrained model spreads its
      // attention almost evenly, and absolute weights of 1/P would all look the same dark
      let top = 0;
      for (let i = 0; i < P; i++) top = Math.max(top, c.w[i]);
      for (let i = 0; i < P; i++) {
        if (c.pos[i] < 0) continue;
        g.fillStyle = `hsl(${hue(c.pos[i])} 70% ${12 + 58 * (top > 0 ? c.w[i] / top : 0)}%)`;
        g.fillRect(x0 + x * CELL_W, i * CELL_H, CELL_W, CELL_H - 1);
      }
      if (c.mark) {
        g.fillStyle = c.mark === "evict" ? "#f55" : c.mark === "write" ? "#5d5" : "#888";
        g.fillRect(x0 + x * CELL_W, P * CELL_H + 2, CELL_W, STRIP);
      }
    });
    const pool = session!.pools[l];
    const att = v.layers[l]?.attention ?? [];
    div.querySelector(".slots")!.replaceChildren(...Array.from({ length: P }, (_, i) => {
      const s = document.createElement("span");
      const n = pool[i];
      if (n) {
        s.textContent = printable(n.byte);
        s.title = `slot ${i}: position ${n.pos} ('${printable(n.byte)}'), written at step ${n.pos}, I_token ${n.score.toFixed(3)}${att[i] !== undefined ? `; read weight ${att[i].toFixed(3)}` : ""}`;
        s.style.background = `hsl(${hue(n.pos)} 60% 30%)`;
      } else s.textContent = "·";
      return s;
    }));
  });

  // the stream: the last 600 bytes, with held notes underlined
  const bytes = session.bytes;
  const from = Math.max(0, bytes.length - 600);
  const held = new Map<number, number>();
  session.pools.forEach((pool) => pool.forEach((n) => held.set(n.pos, n.pos)));
  const frag = document.createDocumentFragment();
  for (let i = from; i < bytes.length; i++) {
    const s = document.createElement("span");
    s.textContent = bytes[i] === 10 ? "\n" : String.fromCharCode(bytes[i]);
    if (held.has(i)) {
      s.className = "held";
      s.style.borderColor = `hsl(${hue(i)} 70% 55%)`;
    }
    if (needle && i >= needle[0] && i < needle[1]) s.classList.add("needle");
    if (i === bytes.length - 1) s.classList.add("cur");
    frag.append(s);
  }
  $("stream").replaceChildren(frag);
  $("stream").scrollTop = $("stream").scrollHeight;

  $("events").replaceChildren(...session.events.slice(-40).reverse().map((e) => {
    const d = document.createElement("div");
    d.className = e.kind;
    const what = e.kind === "write" ? "wrote" : e.kind === "evict" ? "evicted" : "rejected";
    d.textContent = `t=${e.t} layer ${e.layer}: ${what} '${printable(session!.bytes[e.pos])}' (position ${e.pos})`;
    return d;
  }));
}

// ---------- streaming ----------

function setModelControls(enabled: boolean): void {
  for (const id of ["fresh", "shipped", "file"]) $<HTMLButtonElement | HTMLInputElement>(id).disabled = !enabled;
}

/** Lets the page paint and the Stop button work between steps. */
const yieldToPage = () => new Promise<void>((r) => setTimeout(r, 0));

async function stream(): Promise<void> {
  if (!model || running) return;
  running = true;
  stopRequested = false;
  setModelControls(false); // the session holds the params: no model swap mid-stream
  $<HTMLButtonElement>("run").disabled = true;
  $<HTMLButtonElement>("stop").disabled = false;
  resetViews();
  session?.dispose();
  session = new StreamSession(model.params);
  needle = undefined;
  setStatus("running", "streaming…");
  const t0 = performance.now();
  let lastPaint = 0;
  const onStep = async (v: StepView) => {
    record(v);
    const now = performance.now();
    if (now - lastPaint > 60) {
      render();
      lastPaint = now;
      await yieldToPage();
    }
  };
  try {
    const passkey = ($<HTMLInputElement>("mode-passkey")).checked;
    if (passkey) {
      const sample = passkeyPrompt(Number($<HTMLInputElement>("pk-seed").value), Number($<HTMLInputElement>("pk-length").value), Number($<HTMLInputElement>("pk-depth").value));
      needle = [sample.needleStart, sample.needleEnd];
      const r = await runPasskey(session, sample, onStep, () => stopRequested);
      if (r) {
        const held = r.needleInPool.map((p, l) => `layer ${l}: ${p.length}`).join(", ");
        $("answer").textContent = `key ${r.passkey} (bytes ${sample.needleStart}–${sample.needleEnd}); the model answered "${r.answer}" → ${r.correct ? "correct" : "wrong"}. Needle bytes in the pools at the question: ${held || "no pools"}.`;
        $("answer").className = r.correct ? "ok" : "bad";
        document.body.dataset.answer = r.answer;
      }
    } else {
      const max = Number($<HTMLInputElement>("max-tokens").value) || Infinity;
      const bytes = new TextEncoder().encode($<HTMLTextAreaElement>("text").value).subarray(0, max);
      for (const b of bytes) {
        if (stopRequested) break;
        await onStep(await session.push(b));
      }
    }
    render();
    const secs = (performance.now() - t0) / 1000;
    setStatus("done", `${stopRequested ? "stopped" : "done"}: ${session.length} bytes in ${secs.toFixed(1)} s (${(session.length / secs).toFixed(0)} bytes/s)`);
  } catch (e) {
    fail(e);
  } finally {
    running = false;
    setModelControls(true);
    $<HTMLButtonElement>("run").disabled = false;
    $<HTMLButtonElement>("stop").disabled = true;
  }
}

// ---------- wiring ----------

async function start(): Promise<void> {
  await pickBackend();
  const seed = Number(params.get("seed") ?? 0);
  const shipped = await shippedList();
  if (shipped.length) {
    $("shipped").hidden = false;
    $("shipped").textContent = `Shipped weights (${shipped[0].name})`;
    $("shipped").onclick = () => loadUrl(shipped[0].url).catch(fail);
  }
  $("fresh").onclick = () => {
    useModel(freshModel(seed));
    setStatus("ready", "ready");
  };
  $<HTMLInputElement>("file").onchange = async (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (!f) return;
    try {
      setStatus("loading", `reading ${f.name}…`);
      useModel(modelFromCheckpoint(new Uint8Array(await f.arrayBuffer()), f.name));
      setStatus("ready", "ready");
    } catch (e) {
      fail(e);
    }
  };
  $("sample").onclick = () => ($<HTMLTextAreaElement>("text").value = SAMPLE_TEXT.repeat(3));
  const showMode = () => {
    const pk = $<HTMLInputElement>("mode-passkey").checked;
    $("passkey-opts").hidden = !pk;
    $("text-opts").hidden = pk;
  };
  $("mode-text").onchange = showMode;
  $("mode-passkey").onchange = showMode;
  $("run").onclick = () => void stream();
  $("stop").onclick = () => (stopRequested = true);
  $<HTMLTextAreaElement>("text").value = SAMPLE_TEXT.repeat(3);

  const mode = params.get("mode");
  if (mode === "passkey") $<HTMLInputElement>("mode-passkey").checked = true;
  else if (mode && mode !== "text") throw new Error(`?mode=${mode}: expected text or passkey`);
  showMode();
  if (params.has("tokens")) $<HTMLInputElement>("max-tokens").value = params.get("tokens")!;
  if (params.has("length")) $<HTMLInputElement>("pk-length").value = params.get("length")!;
  if (params.has("depth")) $<HTMLInputElement>("pk-depth").value = params.get("depth")!;

  const ck = params.get("checkpoint");
  const which = params.get("model");
  if (ck) await loadUrl(ck);
  else if (which !== "fresh" && shipped.length) await loadUrl(shipped[0].url);
  else useModel(freshModel(seed));
  setStatus("ready", "ready");
  if (params.get("autorun") === "1") await stream();
}

start().catch(fail);
