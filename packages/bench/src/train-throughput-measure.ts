/**
 * The measurement of train-throughput.ts (which re-exports the row types): one model's training
 * step timed on one backend (`measure`: the per-step-synced median, the work counted per step,
 * peak memory), then, as asked, the pipelined steps, the GPU's busy time and span, and the
 * profile (forward / backward split, launches and encode time by primitive, GPU time by kernel).
 */
import { median } from "./runtime.ts";
import type { WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { disposeTree, random, valueAndGrad, type Tensor } from "@memmamba/tensor";
import { initLM, lm, type LMParams, type PresetName } from "@memmamba/memmamba";
import {
  type BenchBackend, isOutOfMemory, type KernelProfiler, type KernelTime, makeTrainer, mib, modelConfig, type ModelKind,
  progress, randomTokens, timeAsync, type WorkCount,
} from "./model-common.ts";

export interface PrimProfile {
  prim: string;
  launches: number;
  encodeMs: number;
}

export interface ThroughputRow {
  kind: ModelKind;
  params: number;
  batch: number;
  seq: number;
  steps: number;
  msPerStep: number | null;
  stepSamplesMs: number[];
  tokensPerSec: number | null;
  /** Per step (the last timed one). */
  perStep: WorkCount | null;
  peakLiveMiB: number | null;
  peakPoolMiB: number | null;
  peakRssMiB: number | null;
  loss: number | null;
  error?: string;
  /**
   * With --profile on WebGPU (timestamps): GPU time of a whole step, medians over GPU_BUSY_STEPS
   * more steps, each step's compute passes timed at their start and end: busy is their summed
   * durations, span the first start to the last end (span − busy: the GPU waited for the host).
   */
  gpu?: { busyMs: number; spanMs: number; steps: number };
  /**
   * --pipelined: ms a step over that many steps timed together, each recorded before the
   * previous step's loss was awaited (the reference's method: no drain between steps).
   */
  pipelined?: { msPerStep: number; tokensPerSec: number; steps: number };
  profile?: {
    forwardMs: number;
    forwardBackwardMs: number;
    stepMs: number;
    /** JS time inside backend.run over one step, and the same by primitive (top first). */
    encodeMs: number;
    prims: PrimProfile[];
    forwardCount: WorkCount;
    forwardBackwardCount: WorkCount;
    /**
     * WebGPU with timestamps: one more step with every dispatch in a timed pass of its own, GPU
     * ms by kernel (pipeline key), largest first; its total against that step's wall time.
     */
    kernels?: { stepWallMs: number; gpuMs: number; top: KernelTime[]; calls?: KernelTime[] };
  };
}

function countParams(params: unknown): number {
  let n = 0;
  const walk = (v: unknown) => {
    if (v && typeof v === "object") {
      if ("shape" in v && "dtype" in v && typeof (v as Tensor).size === "number") n += (v as Tensor).size;
      else for (const x of Object.values(v)) walk(x);
    }
  };
  walk(params);
  return n;
}

/** Measures one model; `measured` gets the row (to save it) before the optional profile runs. */
export async function measure(bb: BenchBackend & { profiler: KernelProfiler | null }, kind: ModelKind, presetName: PresetName, o: {
  batch: number; seq: number; steps: number; warmup: number; capS: number; profile: boolean; profileDetail?: boolean; pipelined: number;
}, measured: (row: ThroughputRow) => void): Promise<ThroughputRow> {
  const cfg = modelConfig(presetName, kind);
  const row: ThroughputRow = {
    kind, params: 0, batch: o.batch, seq: o.seq, steps: 0, msPerStep: null, stepSamplesMs: [], tokensPerSec: null, perStep: null,
    peakLiveMiB: null, peakPoolMiB: null, peakRssMiB: null, loss: null,
  };
  const params = initLM(random.key(0), cfg);
  row.params = countParams(params);
  const trainer = makeTrainer(params);
  const x = randomTokens(o.batch, o.seq, 1), y = randomTokens(o.batch, o.seq, 2);
  try {
    const deadline = performance.now() + o.capS * 1000;
    bb.resetPeak();
    let last = NaN;
    let i = 0;
    const samples = await timeAsync(async () => {
      bb.resetCount();
      last = await trainer.step(x, y);
      bb.sampleRss();
      progress(`  ${kind}: step ${++i} loss ${last.toFixed(4)}`);
    }, o.steps, o.warmup, deadline);
    row.perStep = bb.count();
    row.steps = samples.length;
    row.stepSamplesMs = samples.map((s) => Math.round(s * 100) / 100);
    row.msPerStep = median(samples);
    row.tokensPerSec = (o.batch * o.seq) / (row.msPerStep / 1000);
    row.loss = last;
    row.peakLiveMiB = mib(bb.peakLiveBytes());
    row.peakPoolMiB = mib(bb.peakPoolBytes());
    row.peakRssMiB = mib(bb.peakRss());
    measured(row);
    if (o.pipelined > 0) {
      const ms = await pipelinedSteps(trainer, x, y, o.pipelined);
      row.pipelined = { msPerStep: ms, tokensPerSec: (o.batch * o.seq) / (ms / 1000), steps: o.pipelined };
      measured(row);
    }
    if (o.profile) row.gpu = (await gpuBusy(bb, trainer, x, y)) ?? undefined;
    if (o.profile) row.profile = await profileStep(bb, trainer, cfg, x, y, !!o.profileDetail);
  } catch (e) {
    row.error = `${isOutOfMemory(e) ? "does not fit: " : ""}${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
    progress(`  ${kind}: ${row.error}`);
  } finally {
    trainer.dispose();
    disposeTree([x, y]);
  }
  return row;
}

/**
 * n steps timed together, as the reference's bench_train times its steps (between two
 * synchronisations): trainer.step records a whole step and submits its loss's readback before it
 * awaits anything, so step i + 1 is recorded while the GPU still runs step i, and step i's loss is
 * awaited only then. ms a step.
 */
async function pipelinedSteps(trainer: ReturnType<typeof makeTrainer>, x: Tensor, y: Tensor, n: number): Promise<number> {
  await trainer.step(x, y); // the GPU idle and the loss read: a clean start
  const t0 = performance.now();
  let prev: Promise<number> | null = null;
  for (let i = 0; i < n; i++) {
    const cur = trainer.step(x, y);
    if (prev) await prev;
    prev = cur;
  }
  await prev;
  return (performance.now() - t0) / n;
}

const GPU_BUSY_STEPS = 5;

/** A step's GPU busy time and span (see ThroughputRow.gpu), or null off WebGPU / without timestamps. */
async function gpuBusy(bb: BenchBackend, trainer: ReturnType<typeof makeTrainer>, x: Tensor, y: Tensor): Promise<ThroughputRow["gpu"] | null> {
  const gpu = bb.backend as unknown as Partial<WebGpuBackend>;
  if (typeof gpu.timeGpuPasses !== "function") return null;
  const busy: number[] = [], span: number[] = [];
  for (let i = 0; i < GPU_BUSY_STEPS; i++) {
    let done: Promise<number> | null = null;
    // the step's encoding and its loss readback's submit happen inside the timed region
    const t = await gpu.timeGpuPasses.call(bb.backend, () => void (done = trainer.step(x, y)));
    await done;
    if (!t) return null;
    busy.push(t.busyMs);
    span.push(t.spanMs);
  }
  return { busyMs: median(busy), spanMs: median(span), steps: GPU_BUSY_STEPS };
}

/** Where a step's time goes: forward only, forward + backward, the whole step; launches by primitive. */
async function profileStep(bb: BenchBackend & { profiler: KernelProfiler | null }, trainer: ReturnType<typeof makeTrainer>, cfg: LMParams["config"], x: Tensor, y: Tensor, detail: boolean) {
  // the trainer owns (and replaces) its params: time the forward and backward on fresh ones
  const p = initLM(random.key(1), cfg);
  // the time spent in the backend's run / runMulti per primitive: kernel selection, params and encoding
  const b = bb.backend as unknown as Record<"run" | "runMulti", ((...a: unknown[]) => void) | undefined>;
  const orig = { run: b.run, runMulti: b.runMulti };
  const prims = new Map<string, PrimProfile>();
  // the wrappers are own properties over the prototype's methods: deleting them restores those
  const restore = () => {
    for (const m of ["run", "runMulti"] as const) if (Object.hasOwn(b, m)) delete b[m];
  };
  for (const m of ["run", "runMulti"] as const) {
    const f = orig[m];
    if (!f) continue;
    b[m] = function (this: unknown, ...a: unknown[]) {
      const t = performance.now();
      try {
        return f.apply(bb.backend, a);
      } finally {
        const name = String(a[0]);
        let e = prims.get(name);
        if (!e) prims.set(name, (e = { prim: name, launches: 0, encodeMs: 0 }));
        e.launches++;
        e.encodeMs += performance.now() - t;
      }
    };
  }
  try {
    // one run each: the timed steps before have compiled every pipeline these use
    const timeOne = async (fn: () => Promise<unknown>) => {
      bb.resetCount();
      const t = performance.now();
      await fn();
      return { ms: performance.now() - t, count: bb.count() };
    };
    const fwd = await timeOne(async () => {
      const v = lm.loss(p, x, y);
      await v.item();
      v.dispose();
    });
    const vg = valueAndGrad((q: typeof p, a: Tensor, c: Tensor) => lm.loss(q, a, c));
    const fb = await timeOne(async () => {
      const { value, grads } = vg(p, x, y);
      await value.item();
      value.dispose();
      disposeTree(grads);
    });
    prims.clear();
    const t = performance.now();
    await trainer.step(x, y);
    const stepMs = performance.now() - t;
    const list = [...prims.values()].sort((a, c) => c.encodeMs - a.encodeMs);
    list.forEach((e) => (e.encodeMs = Math.round(e.encodeMs * 100) / 100));
    restore();
    let kernels: { stepWallMs: number; gpuMs: number; top: KernelTime[]; calls?: KernelTime[] } | undefined;
    if (bb.profiler) {
      bb.profiler.start();
      const t1 = performance.now();
      await trainer.step(x, y);
      const wall = performance.now() - t1;
      const k = await bb.profiler.stop();
      k.forEach((e) => (e.gpuMs = Math.round(e.gpuMs * 1000) / 1000));
      kernels = { stepWallMs: wall, gpuMs: k.reduce((s, e) => s + e.gpuMs, 0), top: k.slice(0, 40) };
      if (detail) {
        // one more step, its rows split by the primitive call (shapes) that launched each kernel
        bb.profiler.start(true);
        await trainer.step(x, y);
        const d = await bb.profiler.stop();
        d.forEach((e) => (e.gpuMs = Math.round(e.gpuMs * 1000) / 1000));
        kernels.calls = d.slice(0, 120);
      }
    }
    return {
      forwardMs: fwd.ms, forwardBackwardMs: fb.ms, stepMs, encodeMs: list.reduce((s, e) => s + e.encodeMs, 0), prims: list,
      forwardCount: fwd.count, forwardBackwardCount: fb.count, kernels,
    };
  } finally {
    restore();
    disposeTree(p);
  }
}
