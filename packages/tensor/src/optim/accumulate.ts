/**
 * Gradient accumulation over micro-batches.
 *
 *   const acc = new GradAccumulator<typeof params>();
 *   for (const mb of microBatches) {
 *     const g = grad(loss)(params, mb.x, mb.y);
 *     acc.add(g);
 *     disposeTree(g);
 *   }
 *   const g = acc.average();   // = the full-batch gradient when the loss is a mean and the
 *   acc.reset();               //   micro-batches have equal sizes
 *
 * Ownership: `add` never disposes the tree it is given (it shares the storage of the first tree,
 * so the caller may dispose it right away). The accumulator owns its running sum, outside every
 * `tidy` scope, and disposes each sum it replaces; `reset()` (or `dispose()`) frees it.
 * `sum()` and `average()` return new tensors in the current scope, owned by the caller.
 */
import { flattenTree, mapTree, noGrad } from "../autodiff.ts";
import { add, mul } from "../ops/elementwise.ts";
import { disposeTree, keep, Tensor, tidy } from "../tensor.ts";
import type { GradTree } from "./adamw.ts";

/** Sums gradient trees over micro-batches (gradient accumulation) and returns their mean. */
export class GradAccumulator<P = unknown> {
  #sum: P | null = null;
  #paths: string[] = [];
  #count = 0;

  /** Number of trees added since the last reset. */
  get count(): number {
    return this.#count;
  }

  /**
   * Adds a gradient tree (the structure and shapes of P, the same each time) to the running sum.
   * The leaves may be typed loosely (see `GradTree`); shapes are checked at run time.
   */
  add(grads: GradTree<P>): void {
    const flat = flattenTree(grads);
    if (this.#sum === null) {
      // Tensors are immutable: the first sum shares the given tensors' storage (no copy).
      this.#sum = mapTree(grads, (t) => keep(Tensor.view(t, t.shape))) as P;
      this.#paths = flat.map(([p]) => p);
      this.#count = 1;
      return;
    }
    const paths = flat.map(([p]) => p);
    const prev = flattenTree(this.#sum);
    if (paths.length !== this.#paths.length || paths.some((p, i) => p !== this.#paths[i])) {
      throw new Error(`GradAccumulator.add: the tree's leaves [${paths.join(", ")}] differ from the first tree's [${this.#paths.join(", ")}]`);
    }
    prev.forEach(([p, s], i) => {
      const g = flat[i][1];
      if (g.shape.length !== s.shape.length || g.shape.some((d, j) => d !== s.shape[j]) || g.dtype !== s.dtype) {
        throw new Error(`GradAccumulator.add: leaf "${p}" is ${g.dtype} [${g.shape}], the sum is ${s.dtype} [${s.shape}]`);
      }
    });
    let i = 0;
    const next = noGrad(() => tidy(() => mapTree(this.#sum as P, (s) => add(s, flat[i++][1]))));
    forEachKeep(next);
    disposeTree(this.#sum);
    this.#sum = next;
    this.#count++;
  }

  /** The sum of the trees added (new tensors, owned by the caller). Throws when empty. */
  sum(): P {
    const s = this.#need("sum");
    return noGrad(() => tidy(() => mapTree(s, (t) => add(t, 0))));
  }

  /** The mean of the trees added: sum / count (new tensors, owned by the caller). Throws when empty. */
  average(): P {
    const s = this.#need("average");
    const k = this.#count;
    // one tree: its mean is itself; views share the storage (tensors are immutable), no launch
    if (k === 1) return mapTree(s, (t) => Tensor.view(t, t.shape)) as P;
    return noGrad(() => tidy(() => mapTree(s, (t) => (t.dtype === "f32" ? mul(t, 1 / k) : add(t, 0)))));
  }

  /** Frees the running sum and starts over. */
  reset(): void {
    if (this.#sum !== null) disposeTree(this.#sum);
    this.#sum = null;
    this.#paths = [];
    this.#count = 0;
  }

  /** Frees the running sum (the same as `reset()`). */
  dispose(): void {
    this.reset();
  }
  /** The same as `dispose()`, for `using`. */
  [Symbol.dispose](): void {
    this.reset();
  }

  #need(what: string): P {
    if (this.#sum === null) throw new Error(`GradAccumulator.${what}: nothing was added since the last reset`);
    return this.#sum;
  }
}

function forEachKeep(tree: unknown): void {
  for (const [, t] of flattenTree(tree)) keep(t);
}
