/**
 * The Tensor: an immutable n-d array on a backend, with a typed shape.
 *
 * Memory is explicit: a tensor owns a reference to its storage and frees it on `dispose()`
 * (also through `using`), or when the `tidy` scope that created it ends. Garbage collection
 * is never relied upon. Reshapes share storage (reference-counted).
 */
import type { AllocHint, BufferHandle, Backend, HostArray } from "./backend.ts";
import { DTYPES, type DType } from "./dtype.ts";
import { engine, getBackend } from "./engine.ts";
import type { TapeNode } from "./dispatch.ts";
import { ShapeError, showShape, sizeOf, type Shape } from "./shape.ts";

/** A reference-counted buffer on a backend. */
export class Storage {
  refs = 1;
  constructor(readonly backend: Backend, readonly buf: BufferHandle, readonly size: number, readonly dtype: DType) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) this.backend.free(this.buf);
  }
}

/**
 * An immutable n-dimensional array on the current backend, with a shape type `S` and a dtype `D`.
 * Freed by `dispose()` / `using` / `tidy` (never by the garbage collector); read back asynchronously.
 */
export class Tensor<S extends Shape = Shape, D extends DType = DType> {
  /** A number unique to this tensor in this process (for debugging and leak reports). */
  readonly id = engine.nextTensorId++;
  /** @internal The autodiff node that produced this tensor, while a tape records. */
  node: TapeNode | null = null;
  /** True for tensors whose gradient is being computed (tracked leaves and what depends on them). */
  requiresGrad = false;
  #storage: Storage | null;

  /** @internal Tensors are made by ops and `fromArray`, not by this constructor. */
  constructor(storage: Storage, readonly shape: S, readonly dtype: D, inScope = true) {
    this.#storage = storage;
    if (!inScope) return;
    const scope = engine.scopes[engine.scopes.length - 1];
    if (scope) scope.add(this);
  }

  /** The number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }
  /** The number of axes. */
  get rank(): number {
    return this.shape.length;
  }
  /** True once `dispose()` was called. */
  get disposed(): boolean {
    return this.#storage === null;
  }
  /** @internal The storage, or a clear error if this tensor was already freed. */
  get storage(): Storage {
    if (!this.#storage) throw new Error(`tensor #${this.id} ${showShape(this.shape)} was used after it was disposed`);
    return this.#storage;
  }
  /** The backend buffer holding the elements (an error once disposed). */
  get buf(): BufferHandle {
    return this.storage.buf;
  }

  /** Frees this tensor's reference to its storage. Idempotent. */
  dispose(): void {
    if (!this.#storage) return;
    this.#storage.release();
    this.#storage = null;
    this.node = null;
    const scope = engine.scopes[engine.scopes.length - 1];
    scope?.delete(this);
  }
  /** The same as `dispose()`, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Reads the values back (async: a GPU has no synchronous readback). */
  async data(): Promise<D extends "i32" ? Int32Array : Float32Array> {
    const s = this.storage;
    const arr = await s.backend.read(s.buf);
    return arr as D extends "i32" ? Int32Array : Float32Array;
  }
  /** Reads back as nested arrays (for tests and printing). */
  async array(): Promise<unknown> {
    return nest(Array.from(await this.data()), this.shape);
  }
  /** Reads back a single value (the tensor must hold exactly one element). */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: expected one element, tensor has shape ${showShape(this.shape)}`);
    return (await this.data())[0];
  }
  /** E.g. "Tensor([2, 3], f32)". */
  toString(): string {
    return `Tensor(${showShape(this.shape)}, ${this.dtype}${this.disposed ? ", disposed" : ""})`;
  }

  /** A new tensor sharing this one's storage, with another shape of the same size. */
  static view<S2 extends Shape, D2 extends DType>(src: Tensor<Shape, D2>, shape: S2, inScope = true): Tensor<S2, D2> {
    return new Tensor(src.storage.retain(), shape, src.dtype, inScope);
  }
}

function nest(flat: number[], shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  const [n, ...rest] = shape;
  const step = sizeOf(rest);
  return Array.from({ length: n }, (_, i) => nest(flat.slice(i * step, (i + 1) * step), rest));
}

/**
 * Creates a tensor from host data on the current backend. A literal shape keeps its literal type
 * (`fromArray(data, [2, 3])` is a `Tensor<readonly [2, 3]>`), so compile-time shape checks apply.
 */
export function fromArray<const S extends Shape, D extends DType = "f32">(data: HostArray | ArrayLike<number>, shape: S, dtype?: D): Tensor<S, D> {
  const dt = (dtype ?? (data instanceof Int32Array ? "i32" : "f32")) as D;
  if (!DTYPES.includes(dt)) {
    throw new TypeError(`fromArray: unsupported dtype ${JSON.stringify(dt)} (expected one of ${DTYPES.map((d) => `"${d}"`).join(", ")})`);
  }
  for (let i = 0; i < shape.length; i++) {
    if (!Number.isInteger(shape[i]) || shape[i] < 0) {
      throw new ShapeError(`fromArray: invalid shape ${showShape(shape)}: dimension ${i} is ${shape[i]}, expected a non-negative integer`);
    }
  }
  const n = sizeOf(shape);
  if (data.length !== n) throw new ShapeError(`fromArray: ${data.length} values given for shape ${showShape(shape)} (${n} elements)`);
  const host = dt === "f32"
    ? (data instanceof Float32Array ? data : Float32Array.from(data))
    : (data instanceof Int32Array ? data : Int32Array.from(data));
  const backend = getBackend();
  const buf = backend.alloc(n, dt);
  backend.write(buf, host);
  return new Tensor(new Storage(backend, buf, n, dt), [...shape] as unknown as S, dt);
}

/** Allocates an uninitialised output tensor for a kernel (`hint`: see AllocHint). */
export function allocTensor<S extends Shape, D extends DType>(shape: S, dtype: D, hint?: AllocHint): Tensor<S, D> {
  const backend = getBackend();
  const n = sizeOf(shape);
  return new Tensor(new Storage(backend, backend.alloc(n, dtype, hint), n, dtype), shape, dtype);
}

/**
 * Fresh tensors of one dtype allocated together (Backend.allocGroup: views of one buffer on
 * WebGPU; one by one where the backend has no allocGroup). Each is disposed on its own.
 */
export function allocTensorGroup(shapes: readonly Shape[], dtype: DType, hint?: AllocHint): Tensor[] {
  const backend = getBackend();
  if (!backend.allocGroup) return shapes.map((s) => allocTensor(s, dtype, hint));
  const sizes = shapes.map((s) => sizeOf(s));
  const bufs = backend.allocGroup(sizes, dtype, hint);
  return bufs.map((b, i) => new Tensor(new Storage(backend, b, sizes[i], dtype), shapes[i], dtype));
}

// ---------- memory scopes ----------

/** A tree of tensors (a parameter tree, a result object, an array…). */
export type TensorTree = Tensor | readonly TensorTree[] | { readonly [k: string]: TensorTree } | null | undefined | number | string | boolean;

/** Calls `f(t)` for every tensor in a tree. */
export function forEachTensor(tree: unknown, f: (t: Tensor) => void): void {
  if (tree instanceof Tensor) f(tree);
  else if (Array.isArray(tree)) for (const x of tree) forEachTensor(x, f);
  else if (tree !== null && typeof tree === "object") for (const v of Object.values(tree)) forEachTensor(v, f);
}

/**
 * Runs `fn`; every tensor created inside and not part of its result is disposed when it returns.
 * The result's tensors move to the enclosing scope. For async functions use `tidyAsync`: a
 * function that returns a Promise (or another thenable) is an error, thrown once the tensors it
 * created before its first `await` are disposed (its later rejection, if any, is dropped).
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  engine.scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    engine.scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  // detected only once fn has run (an async function has run up to its first await by then)
  if (typeof (result as { then?: unknown } | null | undefined)?.then === "function") {
    removeScope(scope);
    for (const t of scope) t.dispose();
    (result as PromiseLike<unknown>).then(undefined, () => {}); // its tensors are gone: don't let it fail unhandled
    throw new Error("tidy: the function returned a Promise; use tidyAsync for async work");
  }
  endScope(scope, result);
  return result;
}

/** `tidy` for async functions. Do not interleave two of them concurrently. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  engine.scopes.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    removeScope(scope);
    for (const t of scope) t.dispose();
    throw e;
  }
  endScope(scope, result);
  return result;
}

function removeScope(scope: Set<Tensor>): void {
  const i = engine.scopes.lastIndexOf(scope);
  if (i >= 0) engine.scopes.splice(i, 1);
}

function endScope(scope: Set<Tensor>, result: unknown): void {
  removeScope(scope);
  const keep = new Set<Tensor>();
  forEachTensor(result, (t) => keep.add(t));
  for (const t of scope) if (!keep.has(t)) t.dispose();
  const parent = engine.scopes[engine.scopes.length - 1];
  if (parent) for (const t of keep) if (!t.disposed) parent.add(t);
}

/** Keeps a tensor alive past the end of the current scope (the caller disposes it). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of engine.scopes) s.delete(t);
  return t;
}

/** Disposes every tensor in a tree. */
export function disposeTree(tree: unknown): void {
  forEachTensor(tree, (t) => t.dispose());
}

/** Live buffers on the current backend: tests assert this returns to its baseline. */
export function liveBuffers(): number {
  return getBackend().liveBuffers();
}
