/**
 * The WebGPU backend's per-launch host path (issue 11): ParamWords' bit patterns, coalesce and
 * broadcastStrides against straightforward references, runMap's flat shortcut against coalesce,
 * and on the device: launches of one pipeline back to back (setPipeline skipped) and a pooled
 * buffer rebound by a tensor of another size (the cached whole-buffer binding must not leak
 * across tensors). Without a WebGPU adapter the device test prints why and passes (CI=true makes
 * that a failure).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { KernelArg } from "../src/backend.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import { broadcastStrides, coalesce, ParamWords, strides } from "../src/webgpu/context.ts";
import { flatStrides } from "../src/webgpu/kernels/elementwise.ts";

test("ParamWords: u32 / i32 / f32 bits in order, growth past 16 words, one zero word when empty, words() a copy", () => {
  expect([...new ParamWords().words()]).toEqual([0]);
  const w = new ParamWords().u(7).i(-1).f(1.5).typed(2, "f32").typed(-3, "i32");
  const f32 = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0];
  expect([...w.words()]).toEqual([7, 0xffffffff, f32(1.5), f32(2), (-3 >>> 0)]);
  expect(w.length).toBe(5);
  const first = w.words();
  first[0] = 99; // a copy: the builder keeps its words
  for (let i = 0; i < 40; i++) w.u(i * 1000);
  expect(w.length).toBe(45);
  const all = w.words();
  expect(all[0]).toBe(7);
  expect(all[44]).toBe(39000);
  expect(first.length).toBe(5);
  expect(() => new ParamWords().u(-1)).toThrow(/not a u32/);
  expect(() => new ParamWords().u(2 ** 32)).toThrow(/not a u32/);
  expect(() => new ParamWords().u(1.5)).toThrow(/not a u32/);
});

/** The definitions, written the plain way (the library's versions avoid closures). */
function refBroadcast(shape: number[], out: number[]): number[] {
  const s = strides(shape);
  const off = out.length - shape.length;
  return out.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]));
}
function refCoalesce(shape: number[], ops: number[][]): { shape: number[]; strides: number[][] } {
  const sh: number[] = [];
  const st: number[][] = ops.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = sh.length - 1;
    if (last >= 0 && ops.every((s, k) => st[k][last] === s[d] * shape[d])) {
      sh[last] *= shape[d];
      ops.forEach((s, k) => (st[k][last] = s[d]));
    } else {
      sh.push(shape[d]);
      ops.forEach((s, k) => st[k].push(s[d]));
    }
  }
  return { shape: sh, strides: st };
}

/** A seeded generator of small integers (an LCG). */
function lcg(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 16) % n; // the high bits: an LCG's low bits repeat with a short period
  };
}

test("coalesce, broadcastStrides and runMap's flat shortcut agree with the plain definitions on random broadcasts", () => {
  const r = lcg(11);
  let flatSeen = 0, shortcutSeen = 0;
  for (let t = 0; t < 2000; t++) {
    const rank = r(5);
    const out = Array.from({ length: rank }, () => [1, 2, 3, 4][r(4)]);
    const n = out.reduce((a, b) => a * b, 1);
    // inputs: the output's shape, a scalar, a right-aligned suffix, or axes set to 1
    const ins = Array.from({ length: r(4) }, () => {
      switch (r(4)) {
        case 0: return [...out];
        case 1: return r(2) ? [] : out.map(() => 1);
        case 2: return out.slice(r(rank + 1));
        default: return out.map((d) => (r(2) ? 1 : d));
      }
    });
    const bs = ins.map((s) => broadcastStrides(s, out));
    expect(bs).toEqual(ins.map((s) => refBroadcast(s, out)));
    const ops = [strides(out), ...bs];
    const c = coalesce(out, ops);
    expect(c).toEqual(refCoalesce(out, ops));
    const args = ins.map((shape): KernelArg => ({ buf: null as never, shape, dtype: "f32" }));
    const fast = flatStrides(out, n, args);
    if (c.shape.length <= 1) flatSeen++;
    if (fast !== null) {
      shortcutSeen++;
      // the shortcut only answers where coalesce gives the flat layout, with the same strides
      expect(c.shape.length <= 1).toBe(true);
      expect(fast).toEqual(ins.map((_, k) => (c.shape.length === 0 ? 0 : c.strides[k + 1][0])));
    }
  }
  expect(shortcutSeen).toBeGreaterThan(100);
  expect(flatSeen).toBeGreaterThan(shortcutSeen); // some flat maps still go through coalesce
});

test("webgpu backend: one pipeline back to back, interleaved with others, and a pooled buffer rebound at another size", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend() as WebGpuBackend;
  const arg = (n: number, data?: Float32Array): KernelArg => {
    const buf = gpu.alloc(n, "f32");
    if (data) gpu.write(buf, data);
    return { buf, shape: [n], dtype: "f32" };
  };
  const seq = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => (i % 97) * k - 40);
  // 1000 and 1020 elements share a pool size class: the second alloc gets the first's GPUBuffer
  const a = arg(1000, seq(1000, 1)), b = arg(1000, seq(1000, 3));
  const first = arg(1000);
  gpu.run("binary", [a, b], first, { op: "add" });
  const firstData = (await gpu.read(first.buf)) as Float32Array;
  const reusedBefore = gpu.poolStats().tensor.reused;
  gpu.free(first.buf);
  const c = arg(1020, seq(1020, 2)), d = arg(1020, seq(1020, 5));
  expect(gpu.poolStats().tensor.reused).toBeGreaterThan(reusedBefore);
  const outs = [arg(1020), arg(1020), arg(1020), arg(1020), arg(1020)];
  // the same map pipeline three times in a row (add, mul, sub by op code), then another pipeline
  // (a unary op), then the binary one again: all in one compute pass
  gpu.run("binary", [c, d], outs[0], { op: "add" });
  gpu.run("binary", [c, d], outs[1], { op: "mul" });
  gpu.run("binary", [d, c], outs[2], { op: "sub" });
  gpu.run("unary", [outs[2]], outs[3], { op: "neg" });
  gpu.run("binary", [outs[3], c], outs[4], { op: "add" });
  const got = await Promise.all(outs.map((o) => gpu.read(o.buf)));
  const cv = seq(1020, 2), dv = seq(1020, 5);
  const f = Math.fround;
  for (let i = 0; i < 1020; i++) {
    expect(got[0][i]).toBe(f(cv[i] + dv[i]));
    expect(got[1][i]).toBe(f(cv[i] * dv[i]));
    expect(got[2][i]).toBe(f(dv[i] - cv[i]));
    expect(got[3][i]).toBe(-f(dv[i] - cv[i]));
    expect(got[4][i]).toBe(f(-f(dv[i] - cv[i]) + cv[i]));
  }
  for (let i = 0; i < 1000; i++) expect(firstData[i]).toBe(f(seq(1000, 1)[i] + seq(1000, 3)[i]));
  for (const x of [a, b, c, d, ...outs]) gpu.free(x.buf);
});
