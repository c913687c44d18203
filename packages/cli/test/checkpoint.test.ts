import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, fromArray, liveBuffers, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import {
  CheckpointError, decodeCheckpoint, encodeCheckpoint, loadCheckpoint, removeStaleTemps, restoreState, saveCheckpoint, writeFileAtomic,
} from "../src/checkpoint.ts";
import { encodeSafetensors } from "@memmamba/tensor";
import { runUntilThenKill } from "./fixtures/spawn.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "mm-ckpt-"));
}

/** A parameter tree with an integer leaf; `floats` makes that leaf f32 (as AdamW's moments are). */
function makeTree(floats = false) {
  const w = fromArray(Float32Array.from({ length: 12 }, (_, i) => i / 3 - 1.7), [3, 4]);
  const b = fromArray(Float32Array.from([0.1, -0.2, 1e-8, 65504.5]), [4]);
  const emb = floats ? fromArray(Float32Array.from([1.5, 2, 3]), [3]) : fromArray(Int32Array.from([1, 2, 3]), [3], "i32");
  return { layers: [{ w, b }], emb, config: { note: "non-tensor leaves pass through" } };
}

async function values(tree: unknown): Promise<number[][]> {
  const out: number[][] = [];
  const walk = async (t: unknown): Promise<void> => {
    if (t && typeof t === "object" && "shape" in t && "data" in t && typeof (t as Tensor).data === "function") out.push(Array.from(await (t as Tensor).data()));
    else if (Array.isArray(t)) for (const x of t) await walk(x);
    else if (t && typeof t === "object") for (const v of Object.values(t)) await walk(v);
  };
  await walk(tree);
  return out;
}

describe("checkpoint: round trip", () => {
  test("weights, optimizer state, step, key, data position and config survive save + load exactly", async () => {
    const dir = tmp();
    const base = liveBuffers();
    try {
      const params = makeTree();
      const m = makeTree(true);
      const v = makeTree(true);
      const path = join(dir, "ck.safetensors");
      await saveCheckpoint(path, {
        params, optim: { step: 17, m, v }, step: 42, key: [123, 4294967295], dataPosition: 168,
        config: { dModel: 32, memory: { poolSize: 8 } }, extra: { runtime: "test" },
      });
      expect(readdirSync(dir)).toEqual(["ck.safetensors"]); // no temporary file left
      const ck = loadCheckpoint(path);
      expect(ck.step).toBe(42);
      expect(ck.key).toEqual([123, 4294967295]);
      expect(ck.dataPosition).toBe(168);
      expect(ck.config).toEqual({ dModel: 32, memory: { poolSize: 8 } });
      expect(ck.extra).toEqual({ runtime: "test" });
      expect(ck.weightDtype).toBe("F32");
      expect(ck.optim!.step).toBe(17);
      expect(Object.keys(ck.weights).sort()).toEqual(["emb", "layers.0.b", "layers.0.w"]);
      expect(Object.keys(ck.optim!.m).sort()).toEqual(["emb", "layers.0.b", "layers.0.w"]);

      const restored = restoreState(ck, params);
      expect(await values(restored.params)).toEqual(await values(params));
      expect(await values(restored.optim!.m)).toEqual(await values(m));
      expect(restored.params.emb.dtype).toBe("i32");
      expect(restored.optim!.m.emb.dtype).toBe("f32");
      expect(restored.params.layers[0].w.shape).toEqual([3, 4]);
      expect(restored.params.config).toEqual({ note: "non-tensor leaves pass through" });
      disposeTree([params, m, v, restored.params, restored.optim!.m, restored.optim!.v]);
      expect(liveBuffers()).toBe(base);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the file is plain safetensors with the documented names and metadata", async () => {
    const dir = tmp();
    try {
      const params = makeTree();
      const path = join(dir, "ck.safetensors");
      await saveCheckpoint(path, { params, optim: { step: 1, m: params, v: params }, step: 3, key: [0, 1], dataPosition: 12, config: {} });
      // (m = v = params here only to check the names; real moments are f32 trees)
      const bytes = readFileSync(path);
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      expect(Object.keys(header).sort()).toEqual([
        "__metadata__", "emb", "layers.0.b", "layers.0.w", "optim.m.emb", "optim.m.layers.0.b", "optim.m.layers.0.w",
        "optim.v.emb", "optim.v.layers.0.b", "optim.v.layers.0.w",
      ]);
      expect(header["layers.0.w"].dtype).toBe("F32");
      expect(header["emb"].dtype).toBe("I32");
      expect(header.__metadata__).toEqual({
        format: "memmamba-checkpoint", format_version: "1", step: "3", key: "[0,1]", data_position: "12", config: "{}",
        weight_dtype: "F32", optim_step: "1",
      });
      disposeTree(params);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("F16 and BF16 weights (optimizer state stays F32)", async () => {
    const w = Float32Array.from([1, 0.1, -2.5, 1000.3]);
    for (const dtype of ["F16", "BF16"] as const) {
      const bytes = encodeCheckpoint({
        weights: { w: { shape: [4], data: w } }, optim: { step: 1, m: { w: { shape: [4], data: w } }, v: { w: { shape: [4], data: w } } },
        step: 1, key: [0, 0], dataPosition: 0, config: {},
      }, dtype);
      const ck = decodeCheckpoint(bytes, `x.${dtype}`);
      expect(ck.weightDtype).toBe(dtype);
      expect(Array.from(ck.optim!.m.w.data)).toEqual(Array.from(w)); // exact
      const got = Array.from(ck.weights.w.data);
      expect(got).not.toEqual(Array.from(w)); // rounded
      got.forEach((g, i) => expect(Math.abs(g - w[i])).toBeLessThanOrEqual(Math.abs(w[i]) * (dtype === "F16" ? 1e-3 : 8e-3)));
    }
  });
});

describe("checkpoint: errors name the path and what is wrong", () => {
  const good = () => encodeCheckpoint({ weights: { "a.w": { shape: [2, 3], data: new Float32Array(6) } }, step: 5, key: [1, 2], dataPosition: 20, config: { d: 1 } });

  test("a missing file", () => {
    expect(() => loadCheckpoint("/nonexistent/dir/ck.safetensors")).toThrow("/nonexistent/dir/ck.safetensors: checkpoint not found (no such file)");
    const dir = tmp();
    try {
      expect(() => loadCheckpoint(dir)).toThrow(`${dir}: is a directory, not a checkpoint file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a truncated file gives the safetensors decoder's message with the path", () => {
    const dir = tmp();
    try {
      const path = join(dir, "cut.safetensors");
      const bytes = good();
      writeFileSync(path, bytes.subarray(0, bytes.length - 5));
      let err: unknown;
      try {
        loadCheckpoint(path);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as Error).message).toMatch(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not a valid checkpoint: tensor "a.w": data_offsets \\[0, 24\\] run past the end of the 19-byte data buffer$`));
      writeFileSync(path, bytes.subarray(0, 5));
      expect(() => loadCheckpoint(path)).toThrow(`${path}: not a valid checkpoint: file is 5 bytes, too short for the 8-byte header length`);
      writeFileSync(path, new Uint8Array(0));
      expect(() => loadCheckpoint(path)).toThrow(`${path}: not a valid checkpoint: file is 0 bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a corrupt file (garbage header, flipped bytes)", () => {
    const bytes = good().slice();
    bytes[12] = 0xff; // inside the JSON header
    expect(() => decodeCheckpoint(bytes, "ck.bin")).toThrow(/^ck\.bin: not a valid checkpoint: header is not valid UTF-8$/);
    const text = new TextEncoder().encode("hello, this is not a checkpoint at all");
    expect(() => decodeCheckpoint(text, "t.txt")).toThrow(/^t\.txt: not a valid checkpoint: header length \d+ exceeds/);
  });

  test("bad metadata names the field", () => {
    const t = { w: { dtype: "F32" as const, shape: [1], data: new Float32Array(1) } };
    const meta = { format: "memmamba-checkpoint", format_version: "1", step: "3", key: "[0,1]", data_position: "0", config: "{}", weight_dtype: "F32" };
    const bad = (patch: Record<string, string | undefined>) => {
      const m: Record<string, string> = { ...meta };
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete m[k]; else m[k] = v;
      return () => decodeCheckpoint(encodeSafetensors(t, m), "p.st");
    };
    expect(bad({ step: "abc" })).toThrow(`p.st: metadata "step" must be a non-negative integer, got "abc"`);
    expect(bad({ step: undefined })).toThrow(`p.st: metadata "step" must be a non-negative integer, it is missing`);
    expect(bad({ key: "[1]" })).toThrow(`p.st: metadata "key" must be a JSON array of two uint32 [k0, k1], got "[1]"`);
    expect(bad({ key: "nope" })).toThrow(`metadata "key" must be a JSON array`);
    expect(bad({ config: "[]" })).toThrow(`p.st: metadata "config" must be a JSON object, got "[]"`);
    expect(bad({ format_version: "2" })).toThrow(`p.st: metadata "format_version" must be "1" (this program reads version 1 checkpoints), got "2"`);
    expect(bad({ format: undefined })).toThrow(`(is this a checkpoint written by this program?)`);
    expect(bad({ optim_step: "1" })).toThrow(`p.st: metadata "optim_step" is set but the file holds no optim.* tensors`);
    expect(() => decodeCheckpoint(encodeSafetensors(t), "plain.st")).toThrow(`plain.st: metadata "format" must be "memmamba-checkpoint", it is missing`);
  });

  test("tensors that do not match the model name the tensor and both shapes", () => {
    const w = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    const ck = decodeCheckpoint(encodeCheckpoint({
      weights: { "layers.0.w": w([3, 4]), "layers.0.b": w([4]) },
      optim: { step: 2, m: { "layers.0.w": w([3, 4]), "layers.0.b": w([4]) }, v: { "layers.0.w": w([3, 4]), "layers.0.b": w([4]) } },
      step: 1, key: [0, 0], dataPosition: 0, config: {},
    }), "run/ck.safetensors");
    const base = liveBuffers();
    const t = (shape: number[]) => fromArray(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
    const wrongShape = { layers: [{ w: t([4, 4]), b: t([4]) }] };
    expect(() => restoreState(ck, wrongShape)).toThrow(`run/ck.safetensors: tensor "layers.0.w" has shape [3, 4] in the checkpoint but the model expects [4, 4]`);
    const missing = { layers: [{ w: t([3, 4]), b: t([4]), g: t([2]) }] };
    expect(() => restoreState(ck, missing)).toThrow(`run/ck.safetensors: tensor "layers.0.g" (shape [2]) expected by the model is missing from the checkpoint`);
    const extra = { layers: [{ w: t([3, 4]) }] };
    expect(() => restoreState(ck, extra)).toThrow(`run/ck.safetensors: tensor "layers.0.b" in the checkpoint is not a parameter of the model`);
    const ints = { layers: [{ w: fromArray(new Int32Array(12), [3, 4], "i32"), b: t([4]) }] };
    expect(() => restoreState(ck, ints)).toThrow(`tensor "layers.0.w" is a float tensor in the checkpoint but the model expects i32`);
    disposeTree([wrongShape, missing, extra, ints]);
    expect(liveBuffers()).toBe(base); // nothing leaked by the failed restores

    expect(() => decodeCheckpoint(encodeCheckpoint({
      weights: { a: w([2]) }, optim: { step: 1, m: { a: w([3]) }, v: { a: w([2]) } }, step: 1, key: [0, 0], dataPosition: 0, config: {},
    }), "o.st")).toThrow(`o.st: tensor "optim.m.a" has shape [3] but weight "a" has [2]`);
  });
});

describe("checkpoint: atomic writes", () => {
  test("a failed write leaves the old file and no temporary file", () => {
    const dir = tmp();
    try {
      const path = join(dir, "f.bin");
      writeFileAtomic(path, new Uint8Array([1, 2, 3]));
      expect(() => writeFileAtomic(path, new Uint8Array(100), {
        chunkBytes: 10,
        onChunk: (w) => {
          if (w >= 50) throw new Error("disk on fire");
        },
      })).toThrow("disk on fire");
      expect(Array.from(readFileSync(path))).toEqual([1, 2, 3]);
      expect(readdirSync(dir)).toEqual(["f.bin"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("SIGKILL in the middle of saving a big checkpoint keeps the previous one loadable", async () => {
    const dir = tmp();
    try {
      const path = join(dir, "ck.safetensors");
      const old = encodeCheckpoint({ weights: { w: { shape: [2], data: Float32Array.from([1, 2]) } }, step: 7, key: [3, 4], dataPosition: 28, config: { v: "old" } });
      writeFileAtomic(path, old);
      const r = await runUntilThenKill(join(FIXTURES, "save-partial.ts"), [path, "48"], "HALF");
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).not.toContain("DONE");
      const names = readdirSync(dir).sort();
      expect(names).toHaveLength(2); // the old checkpoint and the dead child's partial temporary file
      const partial = names.find((n) => n.startsWith("ck.safetensors.tmp-"))!;
      expect(partial).toBeDefined();
      expect(statSync(join(dir, partial)).size).toBeGreaterThanOrEqual(24 << 20);
      expect(statSync(join(dir, partial)).size).toBeLessThan(48 << 20);

      const ck = loadCheckpoint(path);
      expect(ck.step).toBe(7);
      expect(ck.config).toEqual({ v: "old" });
      expect(Array.from(ck.weights.w.data)).toEqual([1, 2]);

      // the partial file is not a valid checkpoint, and the next save clears it away
      expect(() => loadCheckpoint(join(dir, partial))).toThrow(/not a valid checkpoint/);
      expect(removeStaleTemps(path)).toEqual([join(dir, partial)]);
      expect(existsSync(join(dir, partial))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
