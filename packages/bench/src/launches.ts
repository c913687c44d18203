/**
 * Launch census (issue #11): which primitive launches, with which shapes, one training step, one
 * chunked forward or one recurrent step (decoding, with a StepCache) of each --kinds model makes, and what the first kind launches beyond the
 * second (MemMamba over Mamba by default). A MemMamba step that is bound by its host encodes
 * every launch, so the count per call says where fusing would remove host work. Counted on the
 * CPU backend (the same primitives as WebGPU, except the few composites a backend fuses, e.g.
 * AdamW's grouped update there); nothing is timed.
 *
 *   bun packages/bench/src/launches.ts [--kinds memmamba,mamba] [--mode train|forward|step]
 *       [--preset small] [--batch 2] [--seq 128] [--top 40] [--json] [--out FILE]
 *
 * Writes JSON (every call with its count, per kind, and the per-primitive difference).
 */
import {
  choice, detectRuntime, flagList, formatTable, fromRoot, gitCommit, machineInfo, type MachineInfo, oneOf, parseFlags, positiveInt, runMain, UsageError,
  writeJson,
} from "./runtime.ts";
import { type Backend, disposeTree, getBackend, noGrad, random, reshape, setBackend } from "@memmamba/tensor";
import { initLM, lm, presetNames, type PresetName, StepCache } from "@memmamba/memmamba";
import { chunkedForward, KINDS, makeTrainer, modelConfig, type ModelKind, randomTokens } from "./model-common.ts";

const HELP = `launches: primitive launches per call of one training step or chunked forward, per model

  --kinds A,B       the models (default memmamba,mamba); with two, the table lists A's launches
                    beyond B's, call by call
  --mode M          train (one step: forward, backward, clipping, AdamW), forward (the chunked
                    forward of one chunk of --seq) or step (one recurrent step of --batch tokens
                    with a StepCache, as decoding runs; --seq unused) (default train)
  --preset P        ${presetNames.join(", ")} (default small)
  --batch N         rows (default 2)
  --seq N           tokens a row (default 128)
  --top N           table rows printed (default 40)
  --json            print the JSON result on stdout instead of the tables
  --out FILE        JSON output (default packages/bench/results/launches.json)
  --help            this text`;

/** One call shape: the primitive, its inputs' shapes and its op (if any), and how often it ran. */
export interface CallCount {
  call: string;
  prim: string;
  count: number;
}

export interface LaunchCensus {
  benchmark: "launches";
  /** The repository's commit (runtime.ts gitCommit). */
  commit: string | null;
  date: string;
  runtime: ReturnType<typeof detectRuntime>;
  /** The host (runtime.ts machineInfo). */
  machine: MachineInfo;
  options: { kinds: ModelKind[]; mode: "train" | "forward" | "step"; preset: PresetName; batch: number; seq: number };
  /** Per kind: the total and every call shape, most frequent first. */
  kinds: { kind: ModelKind; launches: number; calls: CallCount[] }[];
  /** With two kinds: the first's launches beyond the second's, per call shape and per primitive. */
  extra?: { launches: number; calls: CallCount[]; byPrim: { prim: string; count: number }[] };
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** The primitive and input shapes (and op) of one launch, as the census keys it. */
function callKey(prim: string, ins: readonly { shape: readonly number[] }[], params: Any): string {
  const op = params && typeof params.op === "string" ? ` ${params.op}` : "";
  return `${prim} ${ins.map((t) => `[${t.shape.join(",")}]`).join("·")}${op}`;
}

/** A backend that forwards everything to `inner` and counts run / runMulti calls while `on()`. */
function countingBackend(inner: Backend, counts: Map<string, CallCount>, on: () => boolean): Backend {
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop !== "run" && prop !== "runMulti") return v.bind(target);
      return (prim: string, ins: readonly { shape: readonly number[] }[], out: unknown, params: unknown) => {
        if (on()) {
          const call = callKey(prim, ins, params);
          const c = counts.get(call);
          if (c) c.count++;
          else counts.set(call, { call, prim, count: 1 });
        }
        return v.call(target, prim, ins, out, params);
      };
    },
  });
}

async function census(kind: ModelKind, o: LaunchCensus["options"]): Promise<{ launches: number; calls: CallCount[] }> {
  const counts = new Map<string, CallCount>();
  let recording = false;
  const before = getBackend();
  setBackend(countingBackend(setBackend("cpu"), counts, () => recording));
  try {
    const params = initLM(random.key(0), modelConfig(o.preset, kind));
    const x = randomTokens(o.batch, o.seq, 1), y = randomTokens(o.batch, o.seq, 2);
    const trainer = o.mode === "train" ? makeTrainer(params) : null;
    const cache = new StepCache();
    let state = o.mode === "step" ? lm.initState(params.config, o.batch) : undefined;
    const token = o.mode === "step" ? randomTokens(o.batch, 1, 3) : undefined;
    const step = () => {
      const r = noGrad(() => lm.step(params, reshape(token!, [o.batch]), state!, { cache }));
      disposeTree([state, r.logits]);
      state = r.state;
    };
    try {
      const once = () => (trainer ? trainer.step(x, y) : o.mode === "step" ? step() : chunkedForward(params, x, o.seq));
      await once(); // first call uncounted, as the benchmarks warm up (a step's fills the cache)
      recording = true;
      await once();
      recording = false;
    } finally {
      if (trainer) trainer.dispose();
      else disposeTree(params);
      disposeTree([x, y, token, state]);
      cache.dispose();
    }
  } finally {
    setBackend(before);
  }
  const calls = [...counts.values()].sort((a, b) => b.count - a.count || a.call.localeCompare(b.call));
  return { launches: calls.reduce((s, c) => s + c.count, 0), calls };
}

/** a's launches beyond b's, call by call (only where a launches a call more often). */
export function extraLaunches(a: readonly CallCount[], b: readonly CallCount[]): NonNullable<LaunchCensus["extra"]> {
  const inB = new Map(b.map((c) => [c.call, c.count]));
  const calls = a.map((c) => ({ ...c, count: c.count - (inB.get(c.call) ?? 0) })).filter((c) => c.count > 0).sort((x, y) => y.count - x.count || x.call.localeCompare(y.call));
  const byPrim = new Map<string, number>();
  for (const c of calls) byPrim.set(c.prim, (byPrim.get(c.prim) ?? 0) + c.count);
  return {
    launches: calls.reduce((s, c) => s + c.count, 0),
    calls,
    byPrim: [...byPrim].map(([prim, count]) => ({ prim, count })).sort((x, y) => y.count - x.count || x.prim.localeCompare(y.prim)),
  };
}

/** Runs the census with these arguments; resolves to the JSON it wrote (undefined for --help). */
export async function main(argv: readonly string[]): Promise<LaunchCensus | undefined> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return undefined;
  }
  const f = parseFlags(argv, { kinds: "string", mode: "string", preset: "string", batch: "string", seq: "string", top: "string", json: "boolean", out: "string", help: "boolean" });
  const kinds = flagList("kinds", f.kinds, choice(KINDS), ["memmamba", "mamba"]);
  const options: LaunchCensus["options"] = {
    kinds,
    mode: oneOf("mode", f.mode, ["train", "forward", "step"]) ?? "train",
    preset: oneOf("preset", f.preset, presetNames) ?? "small",
    batch: positiveInt("batch", f.batch, 2),
    seq: positiveInt("seq", f.seq, 128),
  };
  if (options.mode !== "train" && kinds.includes("transformer")) throw new UsageError(`--mode ${options.mode} runs the recurrent model, which the Transformer is not: use --mode train`);
  const top = positiveInt("top", f.top, 40);
  const out = String(f.out ?? fromRoot("packages", "bench", "results", "launches.json"));
  const res: LaunchCensus = {
    benchmark: "launches", commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine: machineInfo(), options, kinds: [],
  };
  for (const kind of kinds) res.kinds.push({ kind, ...(await census(kind, options)) });
  if (res.kinds.length === 2) res.extra = extraLaunches(res.kinds[0].calls, res.kinds[1].calls);
  writeJson(out, res);
  if (f.json) {
    console.log(JSON.stringify(res, null, 2));
    return res;
  }
  const what = options.mode === "train" ? "one training step" : options.mode === "step" ? "one recurrent step (a StepCache, after the step that fills it)" : `the chunked forward of ${options.seq} tokens`;
  console.log(`launches of ${what}, batch ${options.batch} × ${options.mode === "step" ? 1 : options.seq}, preset ${options.preset} (CPU backend, counted, not timed)`);
  for (const k of res.kinds) console.log(`  ${k.kind}: ${k.launches} launches, ${k.calls.length} call shapes`);
  if (res.extra) {
    const [a, b] = kinds;
    console.log(`\n${a} beyond ${b}: ${res.extra.launches} launches; by primitive: ${res.extra.byPrim.map((p) => `${p.prim} ${p.count}`).join(", ")}`);
    console.log(formatTable(["extra", "call"], res.extra.calls.slice(0, top).map((c) => [String(c.count), c.call.slice(0, 160)])));
  } else {
    console.log(formatTable(["count", "call"], res.kinds[0].calls.slice(0, top).map((c) => [String(c.count), c.call.slice(0, 160)])));
  }
  console.log(`\nwrote ${out}`);
  return res;
}

if (import.meta.main ?? true) runMain("launches", main);
