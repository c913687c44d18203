/**
 * Functional AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight
 * Decay Regularization", ICLR 2019), step for step as `torch.optim.AdamW` (amsgrad off,
 * maximize off). For each f32 parameter p with gradient g, at step t = state.step + 1:
 *
 *   p ← p · (1 − lr·wd)                      (decoupled decay; skipped where decayMask says no)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)
 *
 * The bias corrections and step size are computed in float64 on the host, the rest on the
 * device in f32 with the library's elementwise ops.
 *
 *   let params = init.linear(key, 4, 2);
 *   let state = adamw.init(params);
 *   for (...) {
 *     const grads = grad(loss)(params, x, y);
 *     ({ params, state } = adamw.update(params, grads, state, { lr: 1e-3 }));
 *     disposeTree(grads);
 *   }
 *   disposeTree([params, state]);
 *
 * Ownership:
 *   - `update` CONSUMES `params` and `state`: it disposes every parameter, m and v tensor it
 *     replaces, so do not use the old trees afterwards (non-f32 parameters, which are not trained,
 *     are passed through as the same tensor objects). If it throws, nothing is disposed.
 *   - It does NOT dispose `grads`: the caller owns them.
 *   - The new params and state tensors it returns (and those of `init`) belong to no `tidy`
 *     scope, as if `keep()`-ed: like the trees they replace they live until the caller disposes
 *     them (`disposeTree(params)`, `disposeTree(state)`), even when the step ran inside a tidy.
 */
import { z } from "zod";
import { flattenTree, mapTree, noGrad } from "../autodiff.ts";
import { bind, bindMulti, definePrimitive } from "../dispatch.ts";
import { full } from "../ops/elementwise.ts";
import { checkFlat, flatGradients } from "./clip.ts";
import { getBackend } from "../engine.ts";
import type { MultiPrimParams } from "../backend.ts";
import { ShapeError } from "../shape.ts";
import { keep, Tensor, tidy } from "../tensor.ts";
import { showShape } from "../shape.ts";

/**
 * A gradient tree for parameters P: P's structure with every tensor leaf widened to `Tensor`
 * (any shape), which is how a gradient function typed over a wider parameter type (e.g.
 * `grad(loss)` with `loss(p: { w: Tensor; b: Tensor }, ...)`) types its result. Shapes are
 * checked at run time.
 */
export type GradTree<P> = P extends Tensor ? Tensor
  : P extends readonly unknown[] ? { readonly [K in keyof P]: GradTree<P[K]> }
  : P extends object ? { readonly [K in keyof P]: GradTree<P[K]> }
  : P;

/** The optimizer state: trees m and v shaped like the parameters, and the number of steps taken. */
export interface AdamWState<P> {
  /** The number of updates applied so far. */
  step: number;
  /** First-moment estimates, shaped like the parameters. */
  m: P;
  /** Second-moment estimates, shaped like the parameters. */
  v: P;
}

/** Hyperparameters of AdamW (defaults as torch.optim.AdamW). */
export interface AdamWOptions {
  /** Learning rate, or a schedule called with state.step (the number of updates already applied). */
  lr: number | ((step: number) => number);
  /** Decay of the first-moment estimate (default 0.9). */
  beta1?: number;
  /** Decay of the second-moment estimate (default 0.999). */
  beta2?: number;
  /** Added to the denominator for stability (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay coefficient (default 0.01, as torch.optim.AdamW). */
  weightDecay?: number;
  /**
   * Which parameters get weight decay (default: all, as torch). Called with the parameter's dotted
   * path in the tree (e.g. "layers.0.norm.w") and the tensor. See `decayMatricesOnly`.
   */
  decayMask?: (path: string, param: Tensor) => boolean;
  /**
   * Keep the old params, m and v alive (default false: `update` consumes them). For a caller that
   * records the step first and decides afterwards whether to keep it (one readback at the end of
   * a training step instead of waiting on the loss before the update): it then frees the pair it
   * drops with `disposeReplaced`.
   */
  keepOld?: boolean;
  /**
   * A one-element f32 tensor that every gradient is multiplied by inside the update (the scale of
   * `clipScale`): the same bits as clipping the gradients first (`clipByGlobalNorm`), without
   * materialising a clipped copy of every gradient (one launch per parameter fewer).
   */
  gradScale?: Tensor;
  /**
   * The gradients as `flatGradients(grads)` returns them (also what `clipScale(…, { flat })`
   * takes): the grouped step (adamwTuning.group) reads them from it instead of concatenating the
   * leaves again. Ignored by the per-parameter step. The caller still owns it.
   */
  flatGrads?: Tensor;
}

/**
 * Frees the tensors of `drop` that `keep` does not share (an update passes non-f32 leaves through
 * as the same objects): after `update(…, { keepOld: true })`, dispose the old trees to accept the
 * step, or the new ones to undo it.
 */
export function disposeReplaced<P>(drop: { params: P; state: AdamWState<P> }, keep: { params: P; state: AdamWState<P> }): void {
  const kept = new Set<Tensor>([...flattenTree(keep.params), ...flattenTree(keep.state.m), ...flattenTree(keep.state.v)].map(([, t]) => t));
  for (const [, t] of [...flattenTree(drop.params), ...flattenTree(drop.state.m), ...flattenTree(drop.state.v)]) if (!kept.has(t)) t.dispose();
}

const optionsSchema = z.object({
  lr: z.number().nonnegative(),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  eps: z.number().nonnegative(),
  weightDecay: z.number().nonnegative(),
});

/**
 * A common decay mask: decay only parameters of rank >= 2 (weight matrices, embeddings), never
 * biases, norm scales or other vectors and scalars (as nanoGPT / most transformer recipes).
 */
export function decayMatricesOnly(_path: string, param: Tensor): boolean {
  return param.rank >= 2;
}

/** A fresh state: step 0 and zero m, v shaped like every parameter (f32, outside every scope). */
export function init<P>(params: P): AdamWState<P> {
  return noGrad(() => {
    const zerosLike = (t: Tensor) => keep(full([...t.shape], 0));
    return { step: 0, m: mapTree(params, zerosLike), v: mapTree(params, zerosLike) };
  });
}

// The fused update: three elementwise primitives per parameter (m, v, then p) instead of twelve
// launches, with the same f32 rounding as the composite formula (cpu/elementwise.ts adamwKernel).
definePrimitive("adamw", {
  shape: (ins, p) => {
    const want = p.part === "p" ? "3" : "2 (or 3 with a gradient scale)";
    if (p.part === "p" ? ins.length !== 3 : ins.length !== 2 && ins.length !== 3) {
      throw new ShapeError(`adamw (${p.part}): expected ${want} inputs, got ${ins.length}`);
    }
    if (p.part !== "p" && ins.length === 3 && (ins[2].dtype !== "f32" || ins[2].size !== 1)) {
      throw new ShapeError(`adamw (${p.part}): the gradient scale must be one f32 element, got ${ins[2].dtype}${showShape(ins[2].shape)}`);
    }
    const s = ins[0].shape;
    for (const t of p.part === "p" ? ins : ins.slice(0, 2)) {
      if (t.dtype !== "f32" || t.shape.length !== s.length || t.shape.some((d, i) => d !== s[i])) {
        throw new ShapeError(`adamw (${p.part}): inputs must be f32 of one shape, got ${ins.map((x) => `${x.dtype}${showShape(x.shape)}`).join(", ")}`);
      }
    }
    return { shape: [...s], dtype: "f32" };
  },
  flops: (ins, _out, p) => ins[0].size * (p.part === "p" ? 7 : p.part === "v" ? 4 : 3),
  vjp: () => {
    throw new Error("adamw: the optimizer update has no gradient");
  },
});

/**
 * Implementation choice (tests compare both): `fused` runs each parameter's step as one
 * multi-output launch (Backend.runMulti: p', m', v' together) where the backend has it, else the
 * three "adamw" parts m, v, p. Same bits on the CPU backends; a GPU compiler may contract a
 * multiply-add differently in the two shaders.
 */
export const adamwTuning = {
  fused: true,
  /**
   * With `fused`: every parameter in one "adamwGroup" call (the gradients concatenated first, so
   * two launches in all where the backend groups the new tensors: WebGPU then updates the
   * parameters in a few dispatches instead of one each, from the second step on, when the
   * parameters and moments are the previous step's grouped outputs). "auto": where the backend
   * allocates groups (Backend.allocGroup); the CPU backends gain nothing from it (the same bits).
   */
  group: "auto" as boolean | "auto",
};

/**
 * The grouped step (adamwTuning.group): the f32 parameters' gradients concatenated, then one
 * "adamwGroup" call whose outputs are allocated as three groups (new p, m, v). Null where the
 * backend has no multi-output kernels or there is nothing to update; non-f32 leaves pass through.
 */
function groupStep(
  ps: Tensor[], gs: Tensor[], ms: Tensor[], vs: Tensor[], scale: Tensor | undefined, given: Tensor | undefined,
  hyper: Omit<MultiPrimParams["adamwGroup"], "decays">, decaysOf: (i: number) => boolean,
): { p: Tensor; m: Tensor; v: Tensor }[] | null {
  const idx = ps.map((p, i) => (p.dtype === "f32" ? i : -1)).filter((i) => i >= 0);
  if (idx.length === 0 || !getBackend().runMulti) return null;
  const total = idx.reduce((a, i) => a + gs[i].size, 0);
  const outs = noGrad(() =>
    tidy(() => {
      const flat = given ?? flatGradients(idx.map((i) => gs[i]));
      if (flat.size !== total) {
        throw new RangeError(`adamw.update: the flat gradients have ${flat.size} elements, the f32 parameters' gradients ${total}`);
      }
      const specs = idx.map((i) => ({ shape: [...ps[i].shape], dtype: "f32" as const }));
      const n = idx.length, range = (k: number) => Array.from({ length: n }, (_, j) => k * n + j);
      const r = bindMulti(
        "adamwGroup", [...idx.map((i) => ps[i]), ...idx.map((i) => ms[i]), ...idx.map((i) => vs[i]), flat, ...(scale === undefined ? [] : [scale])],
        [...specs, ...specs, ...specs], { ...hyper, decays: idx.map(decaysOf) }, "long-lived", [range(0), range(1), range(2)],
      );
      return r;
    })
  );
  if (!outs) return null;
  for (const t of outs) keep(t); // out of every scope, as the per-parameter path's results
  const n = idx.length;
  const at = new Map(idx.map((i, j) => [i, j]));
  return ps.map((p, i) => {
    const j = at.get(i);
    return j === undefined ? { p, m: ms[i], v: vs[i] } : { p: outs[j], m: outs[n + j], v: outs[2 * n + j] };
  });
}

/**
 * One AdamW step. Returns the new parameters and state; disposes the old parameter, m and v
 * tensors it replaced (see the module note on ownership). `grads` must have the same tree
 * structure and shapes as `params` (e.g. from `grad`/`valueAndGrad` over the same tree).
 */
export function update<P>(params: P, grads: GradTree<NoInfer<P>>, state: AdamWState<NoInfer<P>>, opts: AdamWOptions): { params: P; state: AdamWState<P> } {
  const lr = typeof opts.lr === "function" ? opts.lr(state.step) : opts.lr;
  const parsed = optionsSchema.safeParse({
    lr,
    beta1: opts.beta1 ?? 0.9,
    beta2: opts.beta2 ?? 0.999,
    eps: opts.eps ?? 1e-8,
    weightDecay: opts.weightDecay ?? 0.01,
  });
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new RangeError(`adamw.update: invalid options: ${msg}`);
  }
  const { beta1, beta2, eps, weightDecay } = parsed.data;
  if (!Number.isSafeInteger(state.step) || state.step < 0) throw new RangeError(`adamw.update: invalid state.step ${state.step}`);
  const gs1 = opts.gradScale;
  if (gs1 !== undefined && (gs1.dtype !== "f32" || gs1.size !== 1)) {
    throw new RangeError(`adamw.update: gradScale must be a one-element f32 tensor, got ${gs1.dtype}${showShape(gs1.shape)}`);
  }
  const scaled = (g: Tensor) => (gs1 === undefined ? [g] : [g, gs1]);
  if (opts.flatGrads !== undefined) checkFlat("adamw.update (flatGrads)", grads, opts.flatGrads);

  const ps = flattenTree(params);
  const gs = flattenTree(grads);
  const ms = flattenTree(state.m);
  const vs = flattenTree(state.v);
  const paths = ps.map(([p]) => p).join(", ");
  for (const [name, other] of [["grads", gs], ["state.m", ms], ["state.v", vs]] as const) {
    if (other.length !== ps.length || other.some(([p], i) => p !== ps[i][0])) {
      throw new Error(`adamw.update: ${name} has leaves [${other.map(([p]) => p).join(", ")}], params have [${paths}]`);
    }
    other.forEach(([p, t], i) => {
      const s = ps[i][1].shape;
      if (t.shape.length !== s.length || t.shape.some((d, j) => d !== s[j])) {
        throw new Error(`adamw.update: ${name} leaf "${p}" has shape ${showShape(t.shape)}, the parameter ${showShape(s)}`);
      }
    });
  }

  const t = state.step + 1;
  const bc1 = 1 - beta1 ** t;
  const bc2 = 1 - beta2 ** t;
  const stepSize = lr / bc1;
  const sqrtBc2 = Math.sqrt(bc2);
  const decay = 1 - lr * weightDecay;

  const hyper = { a1: beta1, b1: 1 - beta1, a2: beta2, b2: 1 - beta2, decay, sqrtBc2, eps, stepSize };
  const decaysOf = (i: number) => weightDecay !== 0 && (opts.decayMask ? opts.decayMask(ps[i][0], ps[i][1]) : true);
  // Compute every new tensor first; dispose the old ones only once all succeeded.
  const created: Tensor[] = [];
  const results: { p: Tensor; m: Tensor; v: Tensor }[] = [];
  const grouped = adamwTuning.fused && (adamwTuning.group === true || (adamwTuning.group === "auto" && typeof getBackend().allocGroup === "function"))
    ? groupStep(ps.map(([, p]) => p), gs.map(([, g]) => g), ms.map(([, m]) => m), vs.map(([, v]) => v), gs1, opts.flatGrads, hyper, decaysOf)
    : null;
  if (grouped) {
    for (const r of grouped) results.push(r);
  } else try {
    noGrad(() => {
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i][1];
        const g = gs[i][1];
        const m = ms[i][1];
        const v = vs[i][1];
        if (p.dtype !== "f32") {
          results.push({ p, m, v });
          continue;
        }
        const decays = decaysOf(i);
        const spec = { shape: [...p.shape], dtype: "f32" as const };
        const one = adamwTuning.fused
          // long-lived: each step's p', m', v' take the buffers of the step before last's, apart
          // from the temporaries (a pooling backend then binds the same buffers every other step)
          ? bindMulti("adamwStep", [p, g, m, v, ...(gs1 === undefined ? [] : [gs1])], [spec, spec, spec], { ...hyper, decays }, "long-lived")
          : null;
        if (one) {
          for (const x of one) created.push(keep(x));
          results.push({ p: one[0], m: one[1], v: one[2] });
          continue;
        }
        const r = tidy(() => {
          const m1 = bind("adamw", [m, ...scaled(g)], { part: "m", a: beta1, b: 1 - beta1, c: 0, d: 0, decay: false });
          const v1 = bind("adamw", [v, ...scaled(g)], { part: "v", a: beta2, b: 1 - beta2, c: 0, d: 0, decay: false });
          const p1 = bind("adamw", [p, m1, v1], { part: "p", a: decay, b: sqrtBc2, c: eps, d: stepSize, decay: decays });
          return { p: p1, m: m1, v: v1 };
        });
        for (const x of [r.p, r.m, r.v]) created.push(keep(x));
        results.push(r);
      }
    });
  } catch (e) {
    for (const x of created) x.dispose();
    throw e;
  }

  let ip = 0, im = 0, iv = 0;
  const next = {
    params: mapTree(params, () => results[ip++].p),
    state: {
      step: t,
      m: mapTree(state.m, () => results[im++].m),
      v: mapTree(state.v, () => results[iv++].v),
    },
  };
  if (!opts.keepOld) disposeReplaced<P>({ params, state }, next);
  return next;
}
