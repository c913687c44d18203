/**
 * Functional reverse-mode autodiff over parameter trees.
 *
 * `valueAndGrad(f)(params, ...args)` records every primitive that touches a parameter on a tape,
 * then walks the tape backwards applying each primitive's VJP. Everything the tape and the
 * backward pass allocate is freed before it returns; only the value and the gradients remain.
 */
import { engine } from "./engine.ts";
import { primitive, type TapeNode } from "./dispatch.ts";
import { disposeTree, forEachTensor, keep, Tensor, tidy } from "./tensor.ts";
import { addN, full } from "./ops/elementwise.ts";
import { sameShape, showShape } from "./shape.ts";

/** A tree of parameters: nested plain objects and arrays whose leaves are tensors. */
export type ParamTree = Tensor | readonly ParamTree[] | { readonly [k: string]: ParamTree };

/**
 * Maps every tensor leaf of a tree, keeping the tree's structure (and type). The dotted path is
 * built only for a callback that declares a second parameter (`f.length ≥ 2`; so declare it
 * without a default value): an optimizer maps a few hundred leaves several times a step, and
 * the path strings were most of that walk's time.
 */
export function mapTree<T>(tree: T, f: (t: Tensor, path: string) => Tensor, path = ""): T {
  return mapNode(tree, f, f.length >= 2 ? path : undefined) as T;
}

/** mapTree's walk; `path` undefined: no paths built (the callback gets undefined for it). */
function mapNode(tree: unknown, f: (t: Tensor, path: string) => Tensor, path: string | undefined): unknown {
  if (tree instanceof Tensor) return f(tree, path as string);
  if (Array.isArray(tree)) return tree.map((x, i) => mapNode(x, f, path === undefined ? undefined : path ? `${path}.${i}` : `${i}`));
  if (tree !== null && typeof tree === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(tree)) out[k] = mapNode((tree as Record<string, unknown>)[k], f, path === undefined ? undefined : path ? `${path}.${k}` : k);
    return out;
  }
  return tree;
}

/** The tensor leaves of a tree with their dotted paths, in a stable order. */
export function flattenTree(tree: unknown): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  mapTree(tree, (t, p) => {
    out.push([p, t]);
    return t;
  });
  return out;
}

/** Runs `fn` without recording anything for autodiff (inference). */
export function noGrad<T>(fn: () => T): T {
  engine.noGradDepth++;
  try {
    return fn();
  } finally {
    engine.noGradDepth--;
  }
}

/**
 * Whether ops are being recorded for a gradient now (inside valueAndGrad / grad and outside
 * noGrad). A layer may take an inference-only shortcut when this is false (MemMamba's notes:
 * matmulRows over the rows a pool ever holds).
 */
export function isRecording(): boolean {
  return engine.tape !== null && engine.noGradDepth === 0;
}

/** What `valueAndGrad(f)(params)` returns. */
export interface ValueAndGrad<P> {
  /** f(params), a scalar. */
  value: Tensor;
  /** The gradient of `value` with respect to each leaf of params, in a tree of the same structure. */
  grads: P;
}

/**
 * Returns a function computing f's value and its gradient with respect to the first argument
 * (a tree of tensors). f must return a scalar tensor (shape [] or a single element).
 */
export function valueAndGrad<P, A extends unknown[]>(
  f: (params: P, ...args: A) => Tensor,
): (params: P, ...args: A) => ValueAndGrad<P> {
  return (params: P, ...args: A) => {
    if (engine.tape) throw new Error("valueAndGrad: nested gradients are not supported (a tape is already recording)");
    const scope = new Set<Tensor>();
    engine.scopes.push(scope);
    const tape: TapeNode[] = [];
    engine.tape = tape;
    const tracked: Tensor[] = [];
    let value: Tensor;
    try {
      const p = mapTree(params, (t) => {
        const v = Tensor.view(t, t.shape);
        v.requiresGrad = t.dtype === "f32";
        tracked.push(v);
        return v;
      });
      value = f(p, ...args);
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new Error(`valueAndGrad: f must return a scalar tensor, got ${value instanceof Tensor ? showShape(value.shape) : typeof value}`);
      }
    } catch (e) {
      engine.tape = null;
      releaseTape(tape);
      popScope(scope);
      for (const t of scope) t.dispose();
      throw e;
    }
    engine.tape = null;
    // the forward's own references (all but the value): the tape's saved references keep what
    // the backward needs, and each is then freed as soon as the walk has passed its node
    for (const t of scope) if (t !== value) t.dispose();
    let grads: Map<number, Tensor>;
    try {
      grads = backward(tape, value, tracked.map((t) => t.id));
    } finally {
      releaseTape(tape);
    }
    let i = 0;
    const gradTree = mapTree(params, (t) => {
      const id = tracked[i++].id;
      return grads.get(id) ?? full([...t.shape], 0);
    });
    const keepSet = new Set<Tensor>([value]);
    forEachTensor(gradTree, (t) => keepSet.add(t));
    popScope(scope);
    for (const t of scope) if (!keepSet.has(t)) t.dispose();
    value.node = null;
    const parent = engine.scopes[engine.scopes.length - 1];
    if (parent) for (const t of keepSet) parent.add(t);
    return { value, grads: gradTree };
  };
}

/** The gradient of f with respect to its first argument. The value is freed. */
export function grad<P, A extends unknown[]>(f: (params: P, ...args: A) => Tensor): (params: P, ...args: A) => P {
  const vg = valueAndGrad(f);
  return (params: P, ...args: A) => {
    const { value, grads } = vg(params, ...args);
    value.dispose();
    return grads;
  };
}

function popScope(scope: Set<Tensor>): void {
  const i = engine.scopes.lastIndexOf(scope);
  if (i >= 0) engine.scopes.splice(i, 1);
}

function releaseTape(tape: TapeNode[]): void {
  for (const n of tape) {
    for (const t of n.saved) t.dispose();
    n.savedOut.dispose();
  }
  tape.length = 0;
}

/** Frees a node's references to its inputs and output (idempotent; releaseTape frees the rest). */
function releaseNode(node: TapeNode, except: ReadonlySet<Tensor>): void {
  for (const t of node.saved) if (!except.has(t)) t.dispose();
  if (!except.has(node.savedOut)) node.savedOut.dispose();
}

const NONE: ReadonlySet<Tensor> = new Set();

/**
 * Walks the tape backwards; returns the cotangents of the requested tensor ids. Memory is given
 * back as the walk goes: each node's VJP runs in its own scope (its temporaries are freed when it
 * returns), and once it has run, the cotangent it consumed and the node's saved references are
 * freed (valueAndGrad drops the forward's own references before the walk), so a training step's
 * peak is the forward's saved activations plus one node's work, not every cotangent and temporary
 * of the whole backward pass at once, and memory falls as the walk goes.
 */
function backward(tape: TapeNode[], output: Tensor, wrt: number[]): Map<number, Tensor> {
  const want = new Set(wrt);
  // each tensor's gradient contributions, summed in arrival order (one addN launch, not a chain
  // of adds) when the tensor's own VJP needs them, or at the end for the wanted ones
  const cot = new Map<number, Tensor[]>();
  // how many cotangent lists hold each tensor (a VJP may hand one tensor to several inputs, e.g.
  // add's g to both): it is freed when the last list holding it has been consumed
  const holders = new Map<Tensor, number>();
  const seed = full([...output.shape], 1);
  cot.set(output.id, [seed]);
  holders.set(seed, 1);
  const result = new Map<number, Tensor>();
  engine.noGradDepth++;
  try {
    for (let i = tape.length - 1; i >= 0; i--) {
      const node = tape[i];
      const parts = cot.get(node.outputId);
      if (!parts) {
        releaseNode(node, NONE); // nothing flows back through it
        continue;
      }
      cot.delete(node.outputId);
      const g = tidy(() => addN(parts));
      const def = primitive(node.prim);
      const vjp = def.vjp as (g: Tensor, i: readonly Tensor[], o: Tensor, p: unknown, n: readonly boolean[]) => (Tensor | null)[];
      const ins = tidy(() => vjp(g, node.saved, node.savedOut, node.params, node.needs));
      // what the VJP returned may be g itself, one of the parts or a saved tensor (passed
      // through): those stay; a part still held by another input's list stays too
      const passed = new Set<Tensor>();
      for (const t of ins) if (t) passed.add(t);
      for (const t of parts) {
        const n = holders.get(t)! - 1;
        if (n > 0) holders.set(t, n);
        else {
          holders.delete(t);
          if (!passed.has(t)) t.dispose();
        }
      }
      if (!parts.includes(g) && !passed.has(g)) g.dispose();
      releaseNode(node, passed);
      for (let j = 0; j < node.inputIds.length; j++) {
        const gi = ins[j];
        if (!node.needs[j] || !gi) continue;
        const saved = node.saved[j];
        if (!sameShape(gi.shape, saved.shape)) {
          throw new Error(`internal: VJP of ${node.prim} gave a gradient of shape ${showShape(gi.shape)} for an input of shape ${showShape(saved.shape)}`);
        }
        const id = node.inputIds[j];
        const prev = cot.get(id);
        if (prev) prev.push(gi);
        else cot.set(id, [gi]);
        holders.set(gi, (holders.get(gi) ?? 0) + 1);
      }
    }
    for (const id of want) {
      const parts = cot.get(id);
      if (parts) result.set(id, addN(parts));
    }
  } finally {
    engine.noGradDepth--;
  }
  return result;
}

/** Frees a gradient tree (or any tree of tensors). */
export { disposeTree, keep };
