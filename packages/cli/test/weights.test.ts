/**
 * Shipped weights (../src/weights.ts, `export-weights`): a checkpoint's weights alone in F16/BF16
 * with the config in the metadata load back (upcast to f32) within half precision's rounding and
 * give nearly the same logits; training checkpoints still load through the same door; truncated,
 * foreign and hostile files are refused with a message naming the path and the problem.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, encodeSafetensors, fromArray, liveBuffers, random, tidy } from "@memmamba/tensor";
import { lm, preset } from "@memmamba/memmamba";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { saveCheckpoint, treeToHost } from "../src/checkpoint.ts";
import { exportCommand, runExport } from "../src/commands/export.ts";
import type { CommandIO } from "../src/commands/common.ts";
import { encodeWeights, exportWeights, loadModelFile, WEIGHTS_FORMAT } from "../src/weights.ts";
import * as cli from "../src/index.ts";

function quietIO(): CommandIO & { text: () => string } {
  let text = "";
  return { out: (s) => void (text += s), err: (s) => void (text += s), progress: false, text: () => text };
}

/** A tiny MemMamba with random weights saved as a training checkpoint (with Adam moments). */
async function tinyCheckpoint(dir: string) {
  const config = preset("tiny", { kind: "memmamba" });
  const params = lm.init(random.key(7), config);
  const path = join(dir, "checkpoint.safetensors");
  const zeros = tidy(() => lm.init(random.key(8), config));
  await saveCheckpoint(path, { params, optim: { step: 3, m: zeros, v: zeros }, step: 3, key: [1, 2], dataPosition: 3, config: config as unknown as Record<string, unknown> });
  disposeTree(zeros);
  return { config, params, path };
}

async function logitsOf(params: Parameters<typeof lm.apply>[0], tokens: number[]): Promise<Float32Array> {
  const l = tidy(() => lm.apply(params, fromArray(Int32Array.from(tokens), [1, tokens.length], "i32")).logits);
  const v = Float32Array.from(await l.data());
  l.dispose();
  return v;
}

describe("weights files", () => {
  test("F16 and BF16 round trip: weights within rounding, logits close, 2 bytes a parameter, checkpoints still load", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-weights-"));
    const live = liveBuffers();
    try {
      const { params, path } = await tinyCheckpoint(dir);
      const host = await treeToHost(params);
      const tokens = Array.from("The pass key is 12345. Remember it.", (c) => c.charCodeAt(0));
      const ref = await logitsOf(params, tokens);
      const nParams = Object.values(host).reduce((a, h) => a + h.data.length, 0);
      for (const [dtype, rel] of [["F16", 2 ** -11], ["BF16", 2 ** -8]] as const) {
        const out = join(dir, `w-${dtype}.safetensors`);
        const r = exportWeights(path, out, dtype);
        expect(r.parameters).toBe(nParams);
        expect(statSync(out).size).toBe(r.bytes);
        expect(r.bytes).toBeLessThan(2 * nParams + 16_384); // 2 bytes a parameter plus the header
        expect(r.bytes).toBeLessThan(statSync(path).size / 5); // the checkpoint holds 12 a parameter
        const m = loadModelFile(out);
        expect(m.checkpoint.weightDtype).toBe(dtype);
        expect(m.checkpoint.step).toBe(3);
        const back = await treeToHost(m.params);
        expect(Object.keys(back).sort()).toEqual(Object.keys(host).sort());
        let worst = 0;
        for (const [k, h] of Object.entries(host)) {
          const b = back[k].data;
          for (let i = 0; i < h.data.length; i++) {
            const err = Math.abs(b[i] - h.data[i]);
            worst = Math.max(worst, err / (Math.abs(h.data[i]) + 1e-6));
            expect(err).toBeLessThanOrEqual(rel * Math.abs(h.data[i]) + 6.1e-5 * rel); // half rounding (subnormals: absolute)
          }
        }
        expect(worst).toBeGreaterThan(0); // really rounded
        const got = await logitsOf(m.params, tokens);
        let maxDiff = 0, maxRef = 0;
        for (let i = 0; i < ref.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
          maxRef = Math.max(maxRef, Math.abs(ref[i]));
        }
        expect(maxDiff).toBeLessThan(dtype === "F16" ? 0.01 * maxRef : 0.08 * maxRef);
        disposeTree(m.params);
      }
      // a training checkpoint loads through the same function, exactly
      const again = loadModelFile(path);
      const exact = await treeToHost(again.params);
      for (const [k, h] of Object.entries(host)) expect(Array.from(exact[k].data)).toEqual(Array.from(h.data));
      disposeTree([again.params, params]);
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("truncated, foreign and hostile files are refused with the path and the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-weights-bad-"));
    try {
      const { params, path, config } = await tinyCheckpoint(dir);
      const good = join(dir, "w.safetensors");
      exportWeights(path, good, "F16");
      const bytes = new Uint8Array(readFileSync(good));
      const write = (name: string, b: Uint8Array) => {
        const p = join(dir, name);
        writeFileSync(p, b);
        return p;
      };
      const fails = (p: string, re: RegExp) => {
        let msg = "";
        try {
          disposeTree(loadModelFile(p).params);
        } catch (e) {
          msg = e instanceof Error ? e.message : String(e);
        }
        expect(msg.startsWith(`${p}: `)).toBe(true);
        expect(msg).toMatch(re);
      };
      fails(write("truncated.safetensors", bytes.subarray(0, bytes.length - 1000)), /not a valid weights or checkpoint file/);
      fails(write("header-only.safetensors", bytes.subarray(0, 6)), /not a valid weights or checkpoint file/);
      fails(write("empty.safetensors", new Uint8Array(0)), /not a valid weights or checkpoint file/);
      const huge = new Uint8Array(16);
      new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true); // a header "length" far past the file
      fails(write("huge-header.safetensors", huge), /not a valid weights or checkpoint file/);
      fails(write("text.safetensors", new TextEncoder().encode("The pass key is 12345. ".repeat(20))), /not a valid weights or checkpoint file/);
      fails(join(dir, "missing.safetensors"), /no such file/);
      fails(dir, /is a directory/);
      const t = { x: { dtype: "F32" as const, shape: [2], data: Float32Array.of(1, 2) } };
      fails(write("foreign.safetensors", encodeSafetensors(t, { format: "pt" })), /not one of ours: metadata "format" is "pt"/);
      fails(write("nometa.safetensors", encodeSafetensors(t)), /metadata "format" is missing/);
      const host = await treeToHost(params);
      const cfg = config as unknown as Record<string, unknown>;
      const withMeta = (m: Record<string, string>, tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {}) =>
        encodeSafetensors(tensors, { format: WEIGHTS_FORMAT, format_version: "1", weight_dtype: "F16", step: "1", config: JSON.stringify(cfg), ...m });
      fails(write("version.safetensors", withMeta({ format_version: "99" })), /metadata "format_version" is invalid/);
      fails(write("badjson.safetensors", withMeta({ config: "{not json" })), /"config" is not valid JSON/);
      fails(write("badconfig.safetensors", withMeta({ config: JSON.stringify({ kind: "memmamba", dModel: -3 }) })), /config is not a valid model config/);
      fails(write("optim.safetensors", withMeta({}, { "optim.m.x": { dtype: "F32", shape: [1], data: Float32Array.of(0) } })), /holds no optimizer state/);
      fails(write("missing-tensors.safetensors", withMeta({})), /missing/);
      // weights of another size than the config says: the tensor and both shapes are named
      const other = encodeWeights({ weights: host, config: { ...cfg, dModel: 48 }, step: 1 });
      fails(write("mismatch.safetensors", other), /shape/);
      disposeTree(params);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("F16 refuses a weight beyond its range (BF16 keeps it); the command needs --out and reports sizes", async () => {
    const big = { w: { shape: [2], data: Float32Array.of(1, 1e6) } };
    expect(() => encodeWeights({ weights: big, config: {}, step: 0 }, "F16")).toThrow(/"w"\[1\] = 1000000 does not fit F16 \(use --dtype BF16\)/);
    expect(encodeWeights({ weights: big, config: {}, step: 0 }, "BF16").length).toBeGreaterThan(0);
    expect(() => exportCommand.parse(["--checkpoint", "x.safetensors"])).toThrow(/--out/);
    const dir = mkdtempSync(join(tmpdir(), "mm-weights-cli-"));
    try {
      const { params, path } = await tinyCheckpoint(dir);
      disposeTree(params);
      const io = quietIO();
      const out = join(dir, "sub", "m.safetensors");
      runExport(exportCommand.parse(["--checkpoint", path, "--out", out, "--dtype", "BF16"]), io);
      expect(io.text()).toMatch(/parameters as BF16/);
      const m = loadModelFile(out);
      expect(m.checkpoint.weightDtype).toBe("BF16");
      disposeTree(m.params);
      expect(() => runExport(exportCommand.parse(["--checkpoint", join(dir, "nope"), "--out", out]), io)).toThrow(/--checkpoint .*nope: no such file/);
      // an existing --out is kept unless --overwrite; the checkpoint itself and a directory never are
      const before = readFileSync(out);
      expect(() => runExport(exportCommand.parse(["--checkpoint", path, "--out", out]), io)).toThrow(`--out ${out} already exists: choose another file, or pass --overwrite`);
      expect(readFileSync(out)).toEqual(before);
      runExport(exportCommand.parse(["--checkpoint", path, "--out", out, "--overwrite"]), io);
      const m16 = loadModelFile(out);
      expect(m16.checkpoint.weightDtype).toBe("F16");
      disposeTree(m16.params);
      const ck = readFileSync(path);
      expect(() => runExport(exportCommand.parse(["--checkpoint", path, "--out", path, "--overwrite"]), io)).toThrow("is the --checkpoint itself");
      expect(readFileSync(path)).toEqual(ck);
      expect(() => runExport(exportCommand.parse(["--checkpoint", path, "--out", dir]), io)).toThrow(`--out ${dir} is a directory`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the public entry: loadModelFile reads weights files (the shipped ones too), loadModel checkpoints, and points a weights file to loadModelFile", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-weights-entry-"));
    const live = liveBuffers();
    try {
      const { config, params, path } = await tinyCheckpoint(dir);
      const host = await treeToHost(params);
      disposeTree(params);
      const out = join(dir, "w.safetensors");
      exportWeights(path, out);
      disposeTree(cli.loadModel(path).params);
      expect(() => cli.loadModel(out)).toThrow(
        `${out}: loadModel: this is a weights file (metadata "format" is "${WEIGHTS_FORMAT}"), and loadModel reads training checkpoints ("memmamba-checkpoint") only: use loadModelFile, which reads both`,
      );
      expect(() => cli.loadModel(join(dir, "nope.safetensors"))).toThrow(/nope\.safetensors: checkpoint not found/);
      disposeTree(cli.loadModelFile(out).params);
      // a config key the schema does not know is refused, not dropped
      const typo = join(dir, "typo.safetensors");
      writeFileSync(typo, encodeWeights({ weights: host, config: { ...config, nlayers: 2 }, step: 1 }));
      expect(() => cli.loadModelFile(typo)).toThrow(/typo\.safetensors: its config is not a valid model config: invalid model config:\n {2}config: unknown key "nlayers" \(did you mean "nLayers"\?\)/);
      // the weights the repository ships carry configs that validate
      const shipped = new URL("../../../weights/", import.meta.url);
      for (const [file, kind] of [["memmamba-small-passkey.safetensors", "memmamba"], ["mamba-small-passkey.safetensors", "mamba"]] as const) {
        const p = new URL(file, shipped).pathname;
        if (!existsSync(p)) continue;
        const m = cli.loadModelFile(p);
        expect(m.config.kind).toBe(kind);
        expect(m.checkpoint.weightDtype).toBe("F16");
        disposeTree(m.params);
      }
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
