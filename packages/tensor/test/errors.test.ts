/**
 * User-facing error messages: each names the public function called, the offending values and
 * shapes, and what is expected (a user audit's findings, one test each). The checks run before
 * any kernel, so the CPU backend alone covers them.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import {
  add, concat, crossEntropy, fromArray, liveBuffers, matmul, max, mean, oneHot, random, ShapeError, stack, sum, tanh, type Tensor,
  tidy,
} from "../src/index.ts";
import { engine } from "../src/engine.ts";

const t = (data: number[], shape: number[]): Tensor => fromArray(data, shape);
const ti = (data: number[], shape: number[]): Tensor => fromArray(Int32Array.from(data), shape, "i32");
const iota = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Runs f, expecting an error of class `kind` with exactly `message`. */
function throws(f: () => unknown, kind: new (...a: never[]) => Error, message: string): void {
  let caught: unknown = null;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(kind);
  expect((caught as Error).message).toBe(message);
}

describe("errors: messages name the function, the values and what is expected", () => {
  test("concat of two dtypes says the dtypes differ (both dtypes and shapes)", async () => {
    await useBackend("cpu");
    const a = t(iota(6), [2, 3]), b = ti(iota(6), [2, 3]);
    throws(() => concat([a, b], 0), ShapeError, "concat: dtypes differ: f32 [2, 3] and i32 [2, 3]");
    throws(() => concat([b, a], 1), ShapeError, "concat: dtypes differ: i32 [2, 3] and f32 [2, 3]");
  });

  test("oneHot: depth must be a positive integer", async () => {
    await useBackend("cpu");
    const idx = ti([0, 1], [2]);
    throws(() => oneHot(idx, 2.5), ShapeError, "oneHot: depth must be a positive integer, got 2.5 (indices [2])");
    throws(() => oneHot(idx, -1), ShapeError, "oneHot: depth must be a positive integer, got -1 (indices [2])");
    throws(() => oneHot(idx, 0), ShapeError, "oneHot: depth must be a positive integer, got 0 (indices [2])");
    throws(() => oneHot(idx, NaN), ShapeError, "oneHot: depth must be a positive integer, got NaN (indices [2])");
    throws(() => oneHot(t([0, 1], [2]), 2), ShapeError, "oneHot: indices must be i32, got f32 [2]");
    const o = oneHot(idx, 2);
    expect(o.shape).toEqual([2, 2]);
    expect(Array.from(await o.data())).toEqual([1, 0, 0, 1]);
  });

  test("tidy of an async function: a clear error, and its scope is popped and freed first", async () => {
    await useBackend("cpu");
    const base = liveBuffers();
    const depth = engine.scopes.length;
    throws(
      () =>
        tidy(async () => {
          const a = t([1, 2], [2]);
          add(a, 1);
          await null;
          throw new Error("late"); // its rejection is dropped: no unhandled rejection
        }),
      Error,
      "tidy: the function returned a Promise; use tidyAsync for async work",
    );
    expect(engine.scopes.length).toBe(depth);
    expect(liveBuffers()).toBe(base);
    await new Promise((r) => setTimeout(r, 0)); // the async function's rest runs (and fails) here
    expect(liveBuffers()).toBe(base);
  });

  test("stack checks its own inputs: one shape and dtype, an axis in -(r+1) .. r", async () => {
    await useBackend("cpu");
    const a = t(iota(6), [2, 3]), b = t(iota(6), [3, 2]);
    throws(() => stack([a, b], 0), ShapeError, "stack: tensors must have one shape and dtype, got f32 [2, 3] and f32 [3, 2]");
    throws(() => stack([a, ti(iota(6), [2, 3])], 0), ShapeError, "stack: tensors must have one shape and dtype, got f32 [2, 3] and i32 [2, 3]");
    throws(() => stack([a, a], 3), ShapeError, "stack: axis 3 is out of range for tensors of shape [2, 3] (expected an integer in -3 .. 2)");
    throws(() => stack([a, a], -4), ShapeError, "stack: axis -4 is out of range for tensors of shape [2, 3] (expected an integer in -3 .. 2)");
    throws(() => stack([a, a], 0.5), ShapeError, "stack: axis 0.5 is out of range for tensors of shape [2, 3] (expected an integer in -3 .. 2)");
    expect(stack([a, a], 2).shape).toEqual([2, 3, 2]);
    expect(stack([a, a], -3).shape).toEqual([2, 2, 3]);
  });

  test("a disposed input names the public op (add, tanh, sum, matmul), the tensor and its shape", async () => {
    await useBackend("cpu");
    const x = t([1, 2, 3, 4], [2, 2]);
    x.dispose();
    const live = liveBuffers();
    throws(() => add(x, 1), Error, `add: input tensor #${x.id} [2, 2] was used after it was disposed`);
    expect(liveBuffers()).toBe(live); // the constant 1 lifted to a tensor is freed too (it leaked)
    throws(() => tanh(x), Error, `tanh: input tensor #${x.id} [2, 2] was used after it was disposed`);
    throws(() => sum(x), Error, `sum: input tensor #${x.id} [2, 2] was used after it was disposed`);
    throws(() => matmul(x, x), Error, `matmul: input tensor #${x.id} [2, 2] was used after it was disposed`);
  });

  test("fromArray checks the dtype and every dimension before the length", async () => {
    await useBackend("cpu");
    throws(() => fromArray([1, 2], [2], "f64" as never), TypeError, `fromArray: unsupported dtype "f64" (expected one of "f32", "i32")`);
    throws(() => fromArray([1, 2], [2], "banana" as never), TypeError, `fromArray: unsupported dtype "banana" (expected one of "f32", "i32")`);
    throws(() => fromArray([1], [NaN]), ShapeError, "fromArray: invalid shape [NaN]: dimension 0 is NaN, expected a non-negative integer");
    throws(() => fromArray([1], [1.5]), ShapeError, "fromArray: invalid shape [1.5]: dimension 0 is 1.5, expected a non-negative integer");
    throws(() => fromArray([], [2, -1]), ShapeError, "fromArray: invalid shape [2, -1]: dimension 1 is -1, expected a non-negative integer");
    throws(() => fromArray([1, 2, 3], [2]), ShapeError, "fromArray: 3 values given for shape [2] (2 elements)");
    const ok = fromArray([1, 2], [2], "i32");
    expect(ok.dtype).toBe("i32");
    expect(Array.from(await ok.data())).toEqual([1, 2]);
  });

  test("dtype errors name the shapes too (matmul, crossEntropy, sum)", async () => {
    await useBackend("cpu");
    throws(() => matmul(ti(iota(6), [2, 3]), ti(iota(6), [3, 2])), ShapeError, "matmul: expects f32, got i32 [2, 3] and i32 [3, 2]");
    throws(() => crossEntropy(t(iota(6), [2, 3]), t([0, 1], [2])), ShapeError, "crossEntropy: targets must be i32, got f32 [2] (logits [2, 3])");
    throws(() => sum(ti(iota(6), [2, 3])), ShapeError, "sum: expects f32, got i32 [2, 3]");
  });

  test("random.normal rejects a negative std; sum / mean / max reject a repeated axis", async () => {
    await useBackend("cpu");
    const k = random.key(0);
    throws(() => random.normal(k, [2], { std: -1 }), RangeError, "random.normal: std must be a finite number >= 0, got -1");
    throws(() => random.normal(k, [2], { std: NaN }), RangeError, "random.normal: std must be a finite number >= 0, got NaN");
    throws(() => random.normal(k, [2], { mean: Infinity }), RangeError, "random.normal: mean must be a finite number, got Infinity");
    throws(() => random.truncatedNormal(k, [2], { std: -1 }), RangeError, "random.truncatedNormal: std must be a finite number >= 0, got -1");
    const z = random.normal(k, [3], { mean: 2, std: 0 });
    expect(Array.from(await z.data())).toEqual([2, 2, 2]);
    const a = t(iota(6), [2, 3]);
    throws(() => sum(a, [0, 0]), ShapeError, "sum: axes [0, 0] name axis 0 more than once (shape [2, 3]); expected distinct axes");
    throws(() => mean(a, [1, -1]), ShapeError, "mean: axes [1, -1] name axis 1 more than once (shape [2, 3]); expected distinct axes");
    throws(() => max(a, [-2, 0, 1]), ShapeError, "max: axes [-2, 0, 1] name axis 0 more than once (shape [2, 3]); expected distinct axes");
    expect(Array.from(await sum(a, [0, -1]).data())).toEqual([15]);
  });
});
