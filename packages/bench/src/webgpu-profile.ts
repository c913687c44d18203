/**
 * Where a training step's GPU time goes: one full step (forward, backward, global-norm clip,
 * AdamW) of a model on the WebGPU backend, profiled per kernel label with timestamp queries
 * around every dispatch (webgpu/profiler.ts). Prints a table (kernel, dispatches, ms, share) per
 * model and writes JSON. Set MEMMAMBA_DAWN_FLAGS="disable-dawn-features=timestamp_quantization"
 * for sub-0.1 ms resolution under Dawn.
 *
 *   bun packages/bench/src/webgpu-profile.ts [--models memmamba,mamba] [--preset small]
 *        [--batch 8] [--seq-len 2048] [--out FILE]
 */
import { detectRuntime, fromRoot, parseFlags, positiveInt, programArgs, writeJson } from "./runtime.ts";
import { adamw, clipByGlobalNorm, disposeTree, random, setBackend, sliceAxis, tidy, valueAndGrad } from "@memmamba/tensor";
import { lm, preset, type LMParams, type PresetName } from "@memmamba/memmamba";
import { createWebGpuBackend } from "../../tensor/src/webgpu/backend.ts";

const HELP = `webgpu-profile: GPU time per kernel of one training step on the WebGPU backend

  --models a,b     memmamba, mamba, transformer (default memmamba,mamba)
  --preset P       tiny, small or paper (default small)
  --batch N        sequences per step (default 8)
  --seq-len N      tokens per sequence (default 2048)
  --out FILE       JSON output (default packages/bench/results/webgpu-profile.json)
  --help           this text`;

async function main(): Promise<void> {
  const flags = parseFlags(programArgs(), { models: "string", preset: "string", batch: "string", "seq-len": "string", out: "string", help: "boolean" });
  if (flags.help) {
    console.log(HELP);
    return;
  }
  const models = String(flags.models ?? "memmamba,mamba").split(",") as ("memmamba" | "mamba" | "transformer")[];
  const presetName = String(flags.preset ?? "small") as PresetName;
  const B = positiveInt("batch", flags.batch, 8);
  const L = positiveInt("seq-len", flags["seq-len"], 2048);
  const gpu = await createWebGpuBackend({ timestamps: true });
  setBackend(gpu);
  const out: Record<string, unknown> = { runtime: detectRuntime(), adapter: gpu.adapterInfo, preset: presetName, batch: B, seqLen: L, models: {} };
  for (const kind of models) {
    const config = { ...preset(presetName), kind };
    let params: LMParams = lm.init(random.key(1), config);
    let opt = adamw.init(params);
    const tokens = random.randint(random.key(2), [B, L + 1], 0, 256);
    const step = async (): Promise<number> => {
      const t0 = performance.now();
      const { value, grads } = tidy(() => valueAndGrad((p: LMParams) => lm.loss(p, sliceAxis(tokens, 1, 0, L), sliceAxis(tokens, 1, 1, L + 1)))(params));
      const { grads: clipped } = clipByGlobalNorm(grads, 1);
      const r = adamw.update(params, clipped, opt, { lr: 1e-4, weightDecay: 0.1 });
      disposeTree([params, opt, grads, clipped]);
      params = r.params;
      opt = r.state;
      const loss = await value.item();
      value.dispose();
      if (!Number.isFinite(loss)) throw new Error(`${kind}: loss ${loss}`);
      return performance.now() - t0;
    };
    const warm = await step(); // compiles every pipeline
    for (let i = 0; i < 4; i++) await step(); // the buffer pool and the bind-group cache reach their steady state
    const s0 = gpu.poolStats();
    const wall = await step();
    const s1 = gpu.poolStats();
    console.error(`${kind}: in one step: bind groups ${s1.bindGroups.hits - s0.bindGroups.hits} reused, ${s1.bindGroups.misses - s0.bindGroups.misses} created; ` +
      `buffers ${s1.tensor.reused - s0.tensor.reused} reused, ${s1.tensor.created - s0.tensor.created} created; peak in use ${(s1.tensor.peakInUseBytes / 2 ** 30).toFixed(2)} GiB`);
    if (!gpu.startProfile()) throw new Error("this adapter has no 'timestamp-query': cannot profile");
    const profiledWall = await step();
    const rows = await gpu.stopProfile();
    const total = rows.reduce((s, r) => s + r.ms, 0);
    console.log(`\n${kind} (${presetName}, ${B}×${L}): step ${wall.toFixed(1)} ms wall (first ${warm.toFixed(0)} ms; profiled ${profiledWall.toFixed(1)} ms), ` +
      `GPU ${total.toFixed(1)} ms in ${rows.reduce((s, r) => s + r.count, 0)} dispatches, ${((B * L) / (wall / 1000) / 1000).toFixed(1)}K tok/s`);
    console.log(`  ${"kernel".padEnd(28)} ${"count".padStart(6)} ${"ms".padStart(9)} ${"share".padStart(6)}`);
    for (const r of rows.slice(0, 25)) {
      console.log(`  ${r.label.padEnd(28)} ${String(r.count).padStart(6)} ${r.ms.toFixed(2).padStart(9)} ${((100 * r.ms) / total).toFixed(1).padStart(5)}%`);
    }
    (out.models as Record<string, unknown>)[kind] = { wallMs: wall, profiledWallMs: profiledWall, gpuMs: total, tokPerS: (B * L) / (wall / 1000), kernels: rows };
    disposeTree([params, opt, tokens]);
  }
  writeJson(typeof flags.out === "string" ? flags.out : fromRoot("packages/bench/results/webgpu-profile.json"), out);
  gpu.destroy();
}

await main();
