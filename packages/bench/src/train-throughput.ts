/**
 * Training throughput (issue #11): tokens/s of a full training step — forward, backward,
 * global-norm clipping at 1.0 and an AdamW update, as the PyTorch reference's bench_train.py
 * measures it — for each --kinds model of a --preset, at --batch × --seq tokens, on one backend.
 *
 * Besides the time it counts, per step: primitive launches, the bind groups and buffers the
 * WebGPU backend had to create (cache and pool misses: host time), queue submits, host readbacks
 * and syncs; and, with --profile, the launches of each primitive and the JS time spent encoding them (when that time is close to the step's, the step is bound by the
 * host, not by the GPU) plus the split of a step into forward only / forward + backward / all.
 *
 * With --reference FILE (the JSON lines printed by `python -m memmamba_ref.bench_train`, run in
 * the same GPU session) it prints the issue's ratios: ours / the reference compiled (against
 * 82K tokens/s where the reference's compiled plain Mamba is below that, as the issue says),
 * ours / eager, and MemMamba's step / Mamba's step.
 *
 *   bun packages/bench/src/train-throughput.ts --backend webgpu [--preset small] [--batch 8]
 *       [--seq 2048] [--steps 5] [--warmup 2] [--cap-s 90] [--reference ref.jsonl] [--profile]
 *       [--json] [--out FILE]
 *
 * Prints a table (stderr: progress) and writes JSON after every configuration, so a run cut off
 * by a time limit keeps what it measured. Asserts nothing about time.
 *
 * This file parses the options and runs the configurations one after another; its parts:
 * train-throughput-measure.ts (one model's step timed, counted and profiled: ThroughputRow) and
 * train-throughput-report.ts (the JSON written, the reference's ratios, --ratios-only, the printed
 * tables), whose exported types and functions are re-exported from here.
 */
import {
  choice, detectRuntime, flagList, flagValue, fromRoot, gitCommit, machineInfo, nonNegativeInt, numberFlag, oneOf, parseFlags,
  positiveInt, runMain, UsageError, writeJson,
} from "./runtime.ts";
import { z } from "zod";
import { poolTuning } from "../../tensor/src/webgpu/pool.ts";
import { ssmTuning } from "../../tensor/src/webgpu/kernels/ssm.ts";
import { attnReadTuning } from "../../tensor/src/webgpu/kernels/attention.ts";
import { attentionTuning } from "../../tensor/src/ops/attention-fused.ts";
import { adamw } from "@memmamba/tensor";
import { presetNames } from "@memmamba/memmamba";
import { applyAttnReadFlags, ATTN_READ_FLAGS, attnReadFlagsHelp, BACKENDS, KINDS, openBackend, progress } from "./model-common.ts";
import { measure, type ThroughputRow } from "./train-throughput-measure.ts";
import { ISSUE_COMPILED_MAMBA_TPS, printReport, ratios, ratiosOnly, readReference, type ThroughputResult } from "./train-throughput-report.ts";

export { type PrimProfile, type ThroughputRow } from "./train-throughput-measure.ts";
export {
  ISSUE_COMPILED_MAMBA_TPS, ratios, readReference, stepGoalNote, type Ratios, type ReferenceRow, type ThroughputResult,
} from "./train-throughput-report.ts";

const HELP = `train-throughput: tokens/s of a full training step (forward, backward, clip, AdamW)

  --backend B      cpu, wasm or webgpu (default webgpu)
  --preset P       ${presetNames.join(", ")} (default small)
  --kinds K,...    memmamba, mamba, transformer (default memmamba,mamba)
  --batch N        rows per step (default 8)
  --seq N          tokens per row (default 2048)
  --steps N        timed steps; the median is reported (default 5)
  --warmup N       untimed steps first (pipeline compilation; default 2)
  --pipelined N    after the timed steps, N more timed as the reference's bench_train times its
                   steps (between two synchronisations): each step recorded before the previous
                   step's loss is awaited, so the GPU does not drain between steps; 0: none
                   (default 10)
  --cap-s S        stop timing a configuration after S seconds (at least one timed step; default 120)
  --reference F    JSON lines of memmamba_ref.bench_train (same GPU, same run): print the ratios
  --profile        per-primitive launch counts and encode time, and the forward / backward split
  --profile-detail with --profile (WebGPU): one more step profiled by kernel and primitive call
                   with its shapes (which matmul, which binary op costs what)
  --pool-keep F    WebGPU buffer pool: keep freed buffers up to F × the peak bytes in use (default ${poolTuning.keepFactor})
  --max-batch N    WebGPU dispatches per queue submit (default: the backend's, 128)
  --adamw-group G  AdamW over every parameter in one call: auto (where the backend groups
                   buffers: WebGPU), on or off (one launch a parameter) (default auto)
  --ssm-fwd-algo A WebGPU selective scan forward: chunked or lookback (default ${ssmTuning.fwdAlgo})
  --ssm-bwd-algo A WebGPU selective scan backward: scratch or segments (default ${ssmTuning.bwdAlgo})
  --attn A         MemMamba's pool reads: fused (one launch each way, the default) or ops (indexedAttention)
${attnReadFlagsHelp()}
  --ratios-only F  measure nothing: re-read our JSON F, add --reference's ratios, write --out (default F)
  --json           print the JSON result on stdout instead of the table
  --out FILE       JSON output (default packages/bench/results/train-throughput-<backend>.json)
  --help           this text`;

/** Runs the benchmark with these arguments; resolves to the JSON it wrote (undefined for --help). */
export async function main(argv: readonly string[]): Promise<ThroughputResult | undefined> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return undefined;
  }
  const f = parseFlags(argv, {
    backend: "string", preset: "string", kinds: "string", batch: "string", seq: "string", steps: "string", warmup: "string",
    "cap-s": "string", pipelined: "string", reference: "string", profile: "boolean", "profile-detail": "boolean", json: "boolean", out: "string", help: "boolean",
    "ratios-only": "string", "pool-keep": "string", "max-batch": "string", "ssm-fwd-algo": "string", "ssm-bwd-algo": "string", attn: "string", "adamw-group": "string", ...ATTN_READ_FLAGS,
  });
  const group = oneOf("adamw-group", f["adamw-group"], ["auto", "on", "off"] as const);
  if (group) adamw.adamwTuning.group = group === "auto" ? "auto" : group === "on";
  ssmTuning.bwdAlgo = oneOf("ssm-bwd-algo", f["ssm-bwd-algo"], ["scratch", "segments"] as const) ?? ssmTuning.bwdAlgo;
  ssmTuning.fwdAlgo = oneOf("ssm-fwd-algo", f["ssm-fwd-algo"], ["chunked", "lookback"] as const) ?? ssmTuning.fwdAlgo;
  const attn = oneOf("attn", f.attn, ["fused", "ops"] as const);
  if (attn) attentionTuning.fused = attn === "fused";
  applyAttnReadFlags(f);
  poolTuning.keepFactor = flagValue("pool-keep", f["pool-keep"], numberFlag(z.number().min(1), "a number ≥ 1")) ?? poolTuning.keepFactor;
  if (f["ratios-only"]) return ratiosOnly(String(f["ratios-only"]), f.reference, f.out);
  const backend = oneOf("backend", f.backend, BACKENDS) ?? "webgpu";
  const presetName = oneOf("preset", f.preset, presetNames) ?? "small";
  const kinds = flagList("kinds", f.kinds, choice(KINDS), ["memmamba", "mamba"]);
  const o = {
    batch: positiveInt("batch", f.batch, 8), seq: positiveInt("seq", f.seq, 2048), steps: positiveInt("steps", f.steps, 5),
    warmup: nonNegativeInt("warmup", f.warmup, 2), capS: positiveInt("cap-s", f["cap-s"], 120), profile: !!f.profile,
    profileDetail: !!f["profile-detail"], pipelined: nonNegativeInt("pipelined", f.pipelined, 10),
  };
  if (o.profileDetail && !o.profile) throw new UsageError("--profile-detail needs --profile");
  const out = String(f.out ?? fromRoot("packages", "bench", "results", `train-throughput-${backend}.json`));
  const ref = f.reference ? readReference(String(f.reference)) : [];

  const maxBatch = f["max-batch"] === undefined ? undefined : positiveInt("max-batch", f["max-batch"], 128);
  const bb = await openBackend(backend, { timestamps: o.profile, maxBatch });
  progress(`train-throughput: ${bb.device}, preset ${presetName}, ${o.batch} × ${o.seq} tokens a step`);
  const rows: ThroughputRow[] = [];
  const machine = machineInfo();
  const result = (): ThroughputResult => {
    const r = ratios(rows, ref);
    const memRow = rows.find((x) => x.kind === "memmamba"), mamRow = rows.find((x) => x.kind === "mamba");
    const mm = memRow?.msPerStep, ma = mamRow?.msPerStep;
    const gm = memRow?.gpu?.busyMs, ga = mamRow?.gpu?.busyMs;
    const pm = memRow?.pipelined?.msPerStep, pa = mamRow?.pipelined?.msPerStep;
    return {
      benchmark: "train-throughput" as const, commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine, device: bb.device, backend, preset: presetName,
      options: { ...o, pool: { ...poolTuning }, maxBatch: maxBatch ?? null, adamwGroup: String(adamw.adamwTuning.group), ssmFwdAlgo: ssmTuning.fwdAlgo, ssmBwdAlgo: ssmTuning.bwdAlgo, attn: attentionTuning.fused ? "fused" : "ops", attnPositions: attnReadTuning.positions, attnDots: attnReadTuning.dots, attnDotLanes: attnReadTuning.dotLanes }, rows, reference: ref, ratios: r, memmambaStepOverMamba: mm && ma ? mm / ma : null,
      ...(gm && ga ? { memmambaGpuBusyOverMamba: gm / ga } : {}),
      ...(pm && pa ? { memmambaPipelinedOverMamba: pm / pa } : {}),
      goals: { oursOverCompiledAtLeast: 2, memmambaOverMambaAtMost: 1.5, issueCompiledMambaTps: ISSUE_COMPILED_MAMBA_TPS },
    };
  };
  try {
    for (const kind of kinds) {
      progress(`train-throughput: ${kind} …`);
      const save = (row: ThroughputRow) => {
        if (!rows.includes(row)) rows.push(row);
        writeJson(out, result());
      };
      save(await measure(bb, kind, presetName, o, save));
    }
  } finally {
    bb.destroy();
  }
  const res = result();
  writeJson(out, res); // the file and the returned value are the same object
  if (f.json) {
    console.log(JSON.stringify(res, null, 2));
    return res;
  }
  printReport(res);
  console.log(`\nwrote ${out}`);
  return res;
}

if (import.meta.main ?? true) runMain("train-throughput", main);
