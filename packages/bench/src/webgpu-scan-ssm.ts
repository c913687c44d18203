/**
 * The fused selective scan's part of webgpu-scan.ts: `selectiveScan` and `selectiveScanGrad` at
 * each --ssm B×L×Di×N, the backward variants of --ssm-bwd-algo side by side, and with --profile
 * the GPU time of each kernel of a call (see webgpu-scan.ts for the whole benchmark).
 */
import { fmt, formatTable, positiveInt, UsageError } from "./runtime.ts";
import { arg, countDispatches, fillRandom, GB, rng, timeCalls, type Timed, type TimeOpts } from "./webgpu-scan-common.ts";
import type { BufferHandle } from "../../tensor/src/backend.ts";
import type { WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { ssmForwardPlan, ssmGradPlan, ssmTuning } from "../../tensor/src/webgpu/kernels/ssm.ts";
import { stepBlocking, vecBC } from "../../tensor/src/webgpu/kernels/ssm-common.ts";

/** Batch-1 long sequences (L = 4K..256K; Di = 256 at 256K so that one tensor fits a binding), and a training-like batch. */
export const SSM_DEFAULT = "1x4096x1024x16,1x16384x1024x16,1x65536x1024x16,1x262144x256x16,4x2048x1536x16";

/** Calls a --profile profiles per selective-scan case. */
export const PROFILE_CALLS = 3;

export interface SsmRow {
  prim: "selectiveScan" | "selectiveScanGrad";
  B: number;
  L: number;
  Di: number;
  N: number;
  /** The forward's knobs when this row ran: the thread target at this L (ssmTuning), fwdVecBC and fwdAlgo. */
  fwdThreads: number;
  fwdVecBC: boolean;
  /** The chunked forward's algorithm (ssmTuning.fwdAlgo; "-" on backward rows, which use their own passes). */
  fwdAlgo: string;
  /**
   * Backward rows: the per-chunk kernel that ran (ssmGradPlan's algo: "scratch" or "segments",
   * which falls back to "scratch" where its chunks would be too short; "sequential" when the
   * parallel backward does not fit); "-" on forward rows.
   */
  bwdAlgo: string;
  /** Backward rows: the chunk length T along L (0 on forward rows and the sequential backward). */
  bwdChunk: number;
  /** Chunks along L (forward: 1 = one thread per (b, i) walks L; backward: 1 = the sequential fallback). */
  chunks: number;
  /** Backward: chunks run at once (one dispatch a group); forward: 1. */
  chunksPerGroup: number;
  dispatchesPerCall: number;
  bytes: number;
  timing: Timed;
  GBps: number;
  fracCopy: number;
  /** B·L·Di·N / time. */
  stateUpdatesPerS: number;
  /**
   * Forward: max |gpu − float64| / (1 + max |ref|) on a few channels; backward: the same of its
   * gradients against the first --ssm-bwd-algo's (null on that one).
   */
  maxErr: number | null;
  /** With --profile: GPU time per kernel of one call, largest first. */
  profile?: SsmProfileRow[] | null;
}

/** GPU time per call of each kernel a selective-scan call launched (WebGpuBackend.startProfile). */
export interface SsmProfileRow {
  /** The kernel's pipeline key. */
  kernel: string;
  /** Dispatches per call. */
  dispatches: number;
  /** GPU ms per call (each dispatch in its own pass, so the sum runs above the unprofiled time). */
  ms: number;
}


/** `run` PROFILE_CALLS times under a per-kernel profile; null without timestamp queries. */
async function profileCalls(gpu: WebGpuBackend, run: () => void): Promise<SsmProfileRow[] | null> {
  if (!gpu.startProfile()) return null;
  for (let i = 0; i < PROFILE_CALLS; i++) run();
  const rows = await gpu.stopProfile();
  return rows.map((r) => ({ kernel: r.label, dispatches: r.count / PROFILE_CALLS, ms: r.ms / PROFILE_CALLS }));
}

/**
 * The step loops' blocking of a variant (ssmTuning.stepBlock, stepBlockBC): `:u<steps>` sets the
 * block (B, C then loaded in the step unless `:bc` is given too); neither: the library's.
 */
export interface StepBlock {
  block?: number;
  blockBC?: boolean;
  /** `:pf`: ssmTuning.stepPrefetch (bwdStepPrefetch), each block's loads one block ahead. */
  pf?: boolean;
}

/** Parses a variant's `:u<steps>`, `:bc` or `:pf` part into v; false when it is none of them. */
function stepBlockPart(flag: string, spec: string, part: string, v: StepBlock): boolean {
  if (part === "bc") v.blockBC = true;
  else if (part === "pf") v.pf = true;
  else if (/^u\d+$/.test(part)) {
    const n = Number(part.slice(1));
    if (!(n >= 1 && n <= 32)) throw new UsageError(`${flag}: "${part}" in "${spec}" must be 1 to 32 steps`);
    v.block = n;
  } else return false;
  return true;
}

/** Sets ssmTuning's step blocking of the forward (or with `bwd`, the backward's) for a variant (see StepBlock), from the library's. */
export function applyStepBlock(v: StepBlock, bwd = false): void {
  const d = bwd ? LIBRARY_STEP.bwd : LIBRARY_STEP.fwd;
  const block = v.block ?? d.block, bc = v.blockBC ?? (v.block === undefined ? d.blockBC : false), pf = v.pf ?? (v.block === undefined ? d.pf : false);
  if (bwd) {
    ssmTuning.bwdStepBlock = block;
    ssmTuning.bwdStepBlockBC = bc;
    ssmTuning.bwdStepPrefetch = pf;
  } else {
    ssmTuning.stepBlock = block;
    ssmTuning.stepBlockBC = bc;
    ssmTuning.stepPrefetch = pf;
    // a variant that names its loop runs it on a software adapter too
    ssmTuning.stepSoftwareOne = v.block === undefined && v.blockBC === undefined && v.pf === undefined ? LIBRARY_STEP.softwareOne : false;
  }
}

/** The library's step blocking (before any variant changed it): what a variant without :u, :bc or :pf runs. */
const LIBRARY_STEP = {
  fwd: { block: ssmTuning.stepBlock, blockBC: ssmTuning.stepBlockBC, pf: ssmTuning.stepPrefetch },
  bwd: { block: ssmTuning.bwdStepBlock, blockBC: ssmTuning.bwdStepBlockBC, pf: ssmTuning.bwdStepPrefetch },
  softwareOne: ssmTuning.stepSoftwareOne,
};

/** A forward variant of --ssm-fwd-algo: the algorithm and the step loops' blocking. */
export interface FwdVariant extends StepBlock {
  algo: "chunked" | "lookback";
}

/** "chunked", "lookback", "lookback:u1", "lookback:u8:bc", "lookback:u8:pf" → a FwdVariant. */
export function parseFwdVariant(spec: string): FwdVariant {
  const m = /^(chunked|lookback)((?::[a-z0-9]+)*)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--ssm-fwd-algo: expected chunked or lookback, optionally :u<steps a block>, :bc and :pf (e.g. lookback:u8:pf), got "${spec}"`);
  const v: FwdVariant = { algo: m[1] as FwdVariant["algo"] };
  for (const part of m[2].split(":").filter(Boolean)) {
    if (!stepBlockPart("--ssm-fwd-algo", spec, part, v)) throw new UsageError(`--ssm-fwd-algo: unknown part "${part}" in "${spec}"`);
  }
  return v;
}

/** The step loops' blocking now, forward's or backward's, on this device, as the variants name it (":u4:bc"). */
function blockLabel(bwd: boolean, software: boolean): string {
  const { U, bc, pf } = stepBlocking(bwd, software);
  return `:u${U}${bc ? ":bc" : ""}${pf ? ":pf" : ""}`;
}

/** A backward variant of --ssm-bwd-algo: the per-chunk kernel, and optionally its segment length and shortest chunk. */
export interface BwdVariant extends StepBlock {
  algo: "scratch" | "segments";
  /** ssmTuning.bwdSegSteps (segments only). */
  seg?: number;
  /** ssmTuning.bwdMinT. */
  minT?: number;
  /** ssmTuning.bwdVecBC off (B, C read as guarded scalars). */
  scalar?: boolean;
}

/** "scratch", "segments", "segments:s8", "scratch:t16", "segments:s2:t16", "scratch:scalar" → a BwdVariant. */
export function parseBwdVariant(spec: string): BwdVariant {
  const m = /^(scratch|segments)((?::[a-z0-9]+)*)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--ssm-bwd-algo: expected scratch or segments, optionally :s<segment steps>, :t<shortest chunk>, :scalar, :u<steps a block>, :bc and :pf (e.g. segments:s2:t16), got "${spec}"`);
  const v: BwdVariant = { algo: m[1] as BwdVariant["algo"] };
  for (const part of m[2].split(":").filter(Boolean)) {
    if (stepBlockPart("--ssm-bwd-algo", spec, part, v)) continue;
    if (!/^(?:[st]\d+|scalar)$/.test(part)) throw new UsageError(`--ssm-bwd-algo: unknown part "${part}" in "${spec}"`);
    if (part === "scalar") {
      v.scalar = true;
      continue;
    }
    const n = Number(part.slice(1));
    if (!(n >= 1)) throw new UsageError(`--ssm-bwd-algo: "${part}" in "${spec}" must be a positive integer`);
    if (part[0] === "s") v.seg = n;
    else v.minT = n;
  }
  return v;
}

/** The forward (and, with `grad`, the backward) at one B×L×Di×N. */
export async function benchSsm(gpu: WebGpuBackend, spec: string, o: TimeOpts, grad: boolean, bwdAlgos: readonly BwdVariant[]): Promise<SsmRow[]> {
  const dims = spec.split(/x|×/).map((s) => positiveInt("--ssm", s.trim(), 0));
  if (dims.length !== 4) throw new UsageError(`--ssm: expected B×L×Di×N, got ${spec}`);
  const [B, L, Di, N] = dims;
  const r = rng(B * 7 + L);
  const nx = B * L * Di, nb = B * L * N;
  const X = fillRandom(nx, r, -1, 1), D = fillRandom(nx, r, 0.001, 0.1), Am = fillRandom(Di * N, r, -4, -0.5);
  const Bm = fillRandom(nb, r, -1, 1), Cm = fillRandom(nb, r, -1, 1), H0 = fillRandom(B * Di * N, r, -1, 1);
  const GY = fillRandom(nx, r, -1, 1);
  const sh = { x: [B, L, Di], A: [Di, N], B: [B, L, N], h: [B, Di, N] };
  const bufs: BufferHandle[] = [];
  const up = (data: Float32Array) => {
    const h = gpu.alloc(data.length, "f32");
    bufs.push(h);
    gpu.write(h, data);
    return h;
  };
  const x = up(X), d = up(D), A = up(Am), bb = up(Bm), cc = up(Cm), h0 = up(H0), gy = up(GY), ghL = up(new Float32Array(B * Di * N));
  const gradSize = 2 * nx + Di * N + 2 * nb + B * Di * N;
  const y = gpu.alloc(nx, "f32"), g = gpu.alloc(gradSize, "f32");
  bufs.push(y, g);
  const ins = [arg(x, sh.x), arg(d, sh.x), arg(A, sh.A), arg(bb, sh.B), arg(cc, sh.B), arg(h0, sh.h)];
  const updates = B * L * Di * N;
  const rows: SsmRow[] = [];
  const bwdDefault = {
    bwdAlgo: ssmTuning.bwdAlgo, bwdSegSteps: ssmTuning.bwdSegSteps, bwdMinT: ssmTuning.bwdMinT, bwdLongT: ssmTuning.bwdLongT, bwdVecBC: ssmTuning.bwdVecBC,
    bwdStepBlock: ssmTuning.bwdStepBlock, bwdStepBlockBC: ssmTuning.bwdStepBlockBC, bwdStepPrefetch: ssmTuning.bwdStepPrefetch,
  };
  const chunking = (prim: SsmRow["prim"]) => {
    if (prim === "selectiveScan") return { chunks: ssmForwardPlan(B, L, Di).nC, chunksPerGroup: 1, bwdAlgo: "-", bwdChunk: 0 };
    const p = ssmGradPlan(B, L, Di, N, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxComputeWorkgroupStorageSize);
    // " scalar": the knob turned off where the library would read B, C as vec4
    const scalar = vecBC(true, N) && !vecBC(ssmTuning.bwdVecBC, N) ? " scalar" : "";
    return p ? { chunks: p.nC, chunksPerGroup: p.G, bwdAlgo: (p.algo === "segments" ? `segments S${ssmTuning.bwdSegSteps}` : p.algo) + scalar + blockLabel(true, gpu.ctx.software === true), bwdChunk: p.T } : { chunks: 1, chunksPerGroup: 1, bwdAlgo: "sequential", bwdChunk: 0 };
  };
  try {
    // each case: its primitive, a call, the compulsory bytes, the backward's per-chunk kernel
    const cases: [SsmRow["prim"], () => void, number, BwdVariant | null][] = [
      // forward: read x, Δ, B, C, A, h0; write y
      ["selectiveScan", () => gpu.run("selectiveScan", ins, arg(y, sh.x), {}), 4 * (3 * nx + 2 * nb + 2 * Di * N + B * Di * N), null],
      // backward: read x, Δ, B, C, A, h0, gy, ghL; write dx, dΔ, dA, dB, dC, dh0
      ...bwdAlgos.map((algo): (typeof cases)[number] =>
        ["selectiveScanGrad", () => gpu.run("selectiveScanGrad", [...ins, arg(gy, sh.x), arg(ghL, sh.h)], arg(g, [gradSize]), {}), 4 * (3 * nx + 2 * nb + Di * N + 2 * B * Di * N + gradSize), algo]),
    ];
    let gradRef: Float32Array | null = null;
    for (const [prim, run, bytes, bwdAlgo] of cases.filter(([p]) => grad || p === "selectiveScan")) {
      if (bwdAlgo) {
        Object.assign(ssmTuning, bwdDefault);
        ssmTuning.bwdAlgo = bwdAlgo.algo;
        if (bwdAlgo.seg) ssmTuning.bwdSegSteps = bwdAlgo.seg;
        if (bwdAlgo.minT) ssmTuning.bwdMinT = ssmTuning.bwdLongT = bwdAlgo.minT; // exactly that chunk
        if (bwdAlgo.scalar) ssmTuning.bwdVecBC = false;
        applyStepBlock(bwdAlgo, true);
      }
      const dispatchesPerCall = countDispatches(gpu, run);
      const timing = await timeCalls(gpu, run, o);
      const profile = o.profile ? await profileCalls(gpu, run) : undefined;
      let maxErr: number | null = null;
      if (prim === "selectiveScan") {
        // float64 reference for a few channels (b, i)
        const Y = (await gpu.read(y)) as Float32Array;
        let maxDiff = 0, maxRef = 0;
        for (const [b, i] of [[0, 0], [B - 1, Di - 1]]) {
          const h = Array.from({ length: N }, (_, n) => H0[(b * Di + i) * N + n]);
          for (let t = 0; t < L; t++) {
            const row = (b * L + t) * Di + i, bn = (b * L + t) * N;
            let acc = 0;
            for (let n = 0; n < N; n++) {
              h[n] = Math.exp(D[row] * Am[i * N + n]) * h[n] + D[row] * X[row] * Bm[bn + n];
              acc += h[n] * Cm[bn + n];
            }
            maxDiff = Math.max(maxDiff, Math.abs(Y[row] - acc));
            maxRef = Math.max(maxRef, Math.abs(acc));
          }
        }
        maxErr = maxDiff / (1 + maxRef);
      } else {
        // backward: the first algorithm's gradients are the reference of the others'
        const G = (await gpu.read(g)) as Float32Array;
        if (!gradRef) gradRef = G.slice();
        else {
          let maxDiff = 0, maxRef = 0;
          for (let e = 0; e < G.length; e++) {
            maxDiff = Math.max(maxDiff, Math.abs(G[e] - gradRef[e]));
            maxRef = Math.max(maxRef, Math.abs(gradRef[e]));
          }
          maxErr = maxDiff / (1 + maxRef);
        }
      }
      rows.push({
        prim, B, L, Di, N, fwdThreads: L >= ssmTuning.fwdLongL ? Math.max(ssmTuning.fwdThreads, ssmTuning.fwdThreadsLong) : ssmTuning.fwdThreads, fwdVecBC: ssmTuning.fwdVecBC, fwdAlgo: prim === "selectiveScan" ? ssmTuning.fwdAlgo + blockLabel(false, gpu.ctx.software === true) : "-", ...chunking(prim), dispatchesPerCall, bytes, timing, GBps: GB(bytes, timing.medianMs), fracCopy: 0,
        stateUpdatesPerS: updates / (timing.medianMs * 1e-3), maxErr, ...(profile !== undefined ? { profile } : {}),
      });
    }
  } finally {
    Object.assign(ssmTuning, bwdDefault);
    for (const h of bufs) gpu.free(h);
  }
  return rows;
}

/** Prints the selective-scan table, and each profiled case's kernels. */
export function printSsm(ssm: readonly SsmRow[]): void {
  console.log(formatTable(
    ["prim", "B", "L", "Di", "N", "fwd algo", "fwd B,C", "bwd algo", "chunks", "at once", "dispatches", "median ms", "GB/s", "% peak", "Gupdates/s", "max err"],
    ssm.map((r) => [
      r.prim, String(r.B), String(r.L), String(r.Di), String(r.N), r.prim === "selectiveScan" && r.chunks > 1 ? r.fwdAlgo : "-", r.prim === "selectiveScan" ? (r.fwdVecBC && r.N % 4 === 0 ? "vec4" : "scalar") : "-", r.prim === "selectiveScanGrad" ? `${r.bwdAlgo}${r.bwdChunk ? ` T${r.bwdChunk}` : ""}` : "-", String(r.chunks), String(r.chunksPerGroup), String(r.dispatchesPerCall), fmt(r.timing.medianMs, 4), fmt(r.GBps, 4), fmt(100 * r.fracCopy, 3),
      fmt(r.stateUpdatesPerS / 1e9, 4), r.maxErr === null ? "-" : r.maxErr.toExponential(2),
    ]),
  ));
  for (const r of ssm.filter((x) => x.profile)) {
    console.log(`\n${r.prim} ${r.B}x${r.L}x${r.Di}x${r.N}${r.prim === "selectiveScanGrad" ? ` (${r.bwdAlgo})` : ""}: GPU time per call by kernel (${fmt(r.timing.medianMs, 4)} ms unprofiled)`);
    console.log(formatTable(["kernel", "dispatches", "ms", "%"], r.profile!.map((p) => {
      const total = r.profile!.reduce((a, q) => a + q.ms, 0);
      return [p.kernel.length > 70 ? `${p.kernel.slice(0, 67)}...` : p.kernel, fmt(p.dispatches, 3), fmt(p.ms, 4), fmt((100 * p.ms) / total, 3)];
    })));
  }
}
