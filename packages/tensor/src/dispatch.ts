/**
 * The one table of primitives and the dispatcher.
 *
 * Each primitive is defined once: its shape rule (which names the op and the shapes on error),
 * its cost (for the work counters), and its VJP written with other ops. Each backend provides one
 * kernel per primitive name (the compiler checks that none is missing). `bind` checks shapes,
 * allocates the output, runs the kernel, counts the work and, while a tape records, saves what
 * the VJP needs.
 */
import type { DType } from "./dtype.ts";
import type { AllocHint, Backend, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "./backend.ts";
import { engine, getBackend } from "./engine.ts";
import { allocTensor, allocTensorGroup, Tensor } from "./tensor.ts";
import { bytesPerElement } from "./dtype.ts";
import { showShape, sizeOf } from "./shape.ts";

/** What a primitive's shape rule returns: the output's shape and dtype. */
export interface OutSpec {
  /** The output's shape. */
  shape: number[];
  /** The output's element type. */
  dtype: DType;
}

/** One primitive's definition: its shape rule, cost rule and vector-Jacobian product (kernels live in the backends). */
export interface PrimDef<K extends PrimName> {
  /** The output's shape and dtype, or a ShapeError naming the op and the input shapes. */
  shape(inputs: readonly Tensor[], params: PrimParams[K]): OutSpec;
  /** Floating-point operations (default: one per output element). */
  flops?(inputs: readonly Tensor[], out: OutSpec, params: PrimParams[K]): number;
  /**
   * The cotangent of each input given the output's cotangent `g`, or null where an input has no
   * gradient (indices, masks). Runs with recording off; `inputs`/`output` are the saved values.
   * `needs[i]` says whether input i's cotangent is wanted (false for constants and masks: a VJP
   * may then return null for it instead of launching kernels whose result is dropped); absent
   * means all are.
   */
  vjp(g: Tensor, inputs: readonly Tensor[], output: Tensor, params: PrimParams[K], needs?: readonly boolean[]): (Tensor | null)[];
  /** True when the output may share the input's storage (reshape): no kernel runs. */
  view?: boolean;
}

/** Every primitive's definition, by name. */
export type PrimTable = { [K in PrimName]: PrimDef<K> };

const table: Partial<PrimTable> = {};

/** Defines a primitive (each exactly once). */
export function definePrimitive<K extends PrimName>(name: K, def: PrimDef<K>): void {
  if (table[name]) throw new Error(`primitive "${name}" is defined twice`);
  (table as Record<string, unknown>)[name] = def;
}

/** The definition of primitive `name`, or an error naming it when its ops module was not imported. */
export function primitive<K extends PrimName>(name: K): PrimDef<K> {
  const def = table[name];
  if (!def) throw new Error(`primitive "${name}" is not defined (is its ops module imported?)`);
  return def as PrimDef<K>;
}

/** One recorded application of a primitive. */
export interface TapeNode {
  prim: PrimName;
  params: unknown;
  inputIds: number[];
  /** Which inputs need a gradient. */
  needs: boolean[];
  outputId: number;
  /** References the node holds on its inputs and output (freed when the tape is). */
  saved: Tensor[];
  savedOut: Tensor;
}

/** @internal The VJP of a primitive that is itself a VJP (they run untaped: no second order). */
export const noSecondOrder = (op: string) => (): never => {
  throw new Error(`${op}: second-order gradients are not supported (VJPs run untaped)`);
};

/**
 * A clear error for an input that was disposed, naming the op the user called: the params' `op`
 * where the primitive has one (unary, binary, compare, reduce: "tanh", "add", "sum"…), else the
 * primitive's name (matmul, gather…). Only the error path reads it: no cost on the hot path.
 */
function checkAlive(name: string, inputs: readonly Tensor[], params: unknown): void {
  for (const t of inputs) {
    if (t.disposed) {
      const op = (params as { op?: unknown } | null | undefined)?.op;
      throw new Error(`${typeof op === "string" ? op : name}: input tensor #${t.id} ${showShape(t.shape)} was used after it was disposed`);
    }
  }
}

/** A clear error for an input that lives on another backend than the one a kernel runs on. */
function checkBackend(name: string, inputs: readonly Tensor[], backend: Backend): void {
  for (const t of inputs) {
    if (t.storage.backend !== backend) {
      throw new Error(`${name}: an input lives on backend "${t.storage.backend.name}" but the current backend is "${backend.name}"`);
    }
  }
}

/** Applies a primitive to tensors: the single way every op runs. */
export function bind<K extends PrimName>(name: K, inputs: readonly Tensor[], params: PrimParams[K]): Tensor {
  const def = primitive(name);
  checkAlive(name, inputs, params);
  const spec = def.shape(inputs, params);
  let out: Tensor;
  if (def.view) {
    out = Tensor.view(inputs[0], spec.shape);
  } else {
    const backend = getBackend();
    checkBackend(name, inputs, backend);
    out = allocTensor(spec.shape, spec.dtype);
    backend.run(
      name,
      inputs.map((t) => ({ buf: t.buf, shape: t.shape, dtype: t.dtype })),
      { buf: out.buf, shape: out.shape, dtype: out.dtype },
      params,
    );
    const c = engine.counters;
    c.launches++;
    let elems = sizeOf(spec.shape);
    for (const t of inputs) elems += t.size;
    c.bytes += elems * bytesPerElement;
    c.flops += def.flops ? def.flops(inputs, spec, params) : sizeOf(spec.shape);
  }
  const tape = engine.tape;
  if (tape && engine.noGradDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    tape.push({
      prim: name,
      params,
      inputIds: inputs.map((t) => t.id),
      needs: inputs.map((t) => t.requiresGrad),
      outputId: out.id,
      saved: inputs.map((t) => Tensor.view(t, t.shape, false)),
      savedOut: Tensor.view(out, out.shape, false),
    });
  }
  return out;
}

function allocOutputs(outs: readonly OutSpec[], hint?: AllocHint, groups?: readonly (readonly number[])[]): Tensor[] {
  if (!groups) return outs.map((o) => allocTensor(o.shape, o.dtype, hint));
  const out: (Tensor | undefined)[] = new Array(outs.length);
  try {
    for (const g of groups) {
      const dtype = outs[g[0]].dtype;
      if (g.some((i) => out[i] !== undefined || outs[i] === undefined || outs[i].dtype !== dtype)) {
        throw new Error(`bindMulti: output groups must name distinct outputs of one dtype, got [${g.join(", ")}]`);
      }
      allocTensorGroup(g.map((i) => outs[i].shape), dtype, hint).forEach((t, k) => (out[g[k]] = t));
    }
    for (let i = 0; i < outs.length; i++) out[i] ??= allocTensor(outs[i].shape, outs[i].dtype, hint);
  } catch (e) {
    for (const t of out) t?.dispose();
    throw e;
  }
  return out as Tensor[];
}

/**
 * Applies a multi-output primitive (Backend.runMulti) with outputs shaped by `outs`; null when the
 * current backend has no runMulti (the caller then uses one-output primitives). Never recorded
 * on a tape: the only such primitives are optimizer updates, which have no gradient. `hint`
 * goes to the backend's alloc for every output. `groups`: lists of output indices (of one dtype)
 * allocated together (allocTensorGroup), e.g. every new parameter of an optimizer step.
 */
export function bindMulti<K extends MultiPrimName>(
  name: K, inputs: readonly Tensor[], outs: readonly OutSpec[], params: MultiPrimParams[K], hint?: AllocHint,
  groups?: readonly (readonly number[])[],
): Tensor[] | null {
  const backend = getBackend();
  if (!backend.runMulti) return null;
  checkAlive(name, inputs, params);
  checkBackend(name, inputs, backend);
  if (engine.tape && engine.noGradDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    throw new Error(`${name}: has no gradient; run it under noGrad`);
  }
  const out = allocOutputs(outs, hint, groups);
  try {
    backend.runMulti(name, inputs.map((t) => ({ buf: t.buf, shape: t.shape, dtype: t.dtype })), out.map((t) => ({ buf: t.buf, shape: t.shape, dtype: t.dtype })), params);
  } catch (e) {
    for (const t of out) t.dispose();
    throw e;
  }
  const c = engine.counters;
  c.launches++;
  let elems = 0;
  for (const t of [...inputs, ...out]) elems += t.size;
  c.bytes += elems * bytesPerElement;
  c.flops += out.reduce((a, t) => a + t.size, 0) * 5;
  return out;
}
