/**
 * WebGPU kernels of the indexed-attention primitives (ops/attention.ts). None of them writes a
 * gathered [N, P, S] tensor: the table rows are read where they are used.
 *
 * - indexedDot:   one thread per (n, p): the dot product of x[n] with the table row idx[n, p]
 *   (read as vec4s where S is a multiple of 4);
 * - indexedSum:   one thread per (n, j): Σ_p w[n, p] · table[idx[n, p], j], p in order;
 * - indexedOuter: the inverse index of scatterAdd (indexing.ts), listing the entries whose index
 *   is in range, each row's entries split by blocks of 64 positions into up to 16 lists (a pool
 *   note is read by every position that holds it: ranking a row's entries in one list would
 *   cost len²); then one thread per (chunk, j) adds its chunk's w[e] · x[e / P, j] in index
 *   order, skipping the terms whose weight is exactly 0, and the chunk sums are added in order
 *   (list by list): deterministic, and equal to the CPU's sequential sum within f32 rounding
 *   (bit for bit where a row has at most SUM_CHUNK in-range entries in one list).
 *
 *   The inverse index depends only on the index tensor (not on the weights), so it is built once
 *   per index and kept (see IndexCache below): an attention's backward calls indexedOuter twice
 *   over the same index (dV = indexedOuter(w, g), dK = indexedOuter(dlogits, q)), and the second
 *   call is then two launches instead of fifteen. Chunks count every in-range entry, zero weights
 *   included (they are skipped inside the chunk); before the cache they counted only the nonzero
 *   ones, so where a list holds exactly-zero weights its chunk boundaries, and the f32 grouping
 *   of its sum, can differ from earlier versions. They never depend on whether the cache hit.
 *
 * Index −1 marks an empty slot (ops/attention.ts); a shader cannot throw, so it and every other
 * out-of-range index (an error on the CPU) read a zero row in indexedDot and indexedSum and drop
 * their term in indexedOuter — as gather and scatterAdd do.
 */
import type { BufferHandle, KernelArg, PrimParams } from "../../backend.ts";
import { ENTRY_ARGS, header, LINEAR_WG, prod, pu, type GpuCtx } from "../context.ts";
import { readEnv } from "../../env.ts";
import { buildInverseIndex, launchStep, overItems, sumChunks, SUM_CHUNK, type InverseIndex, type ListSplit } from "./indexing.ts";

/** Threads per workgroup (overItems launches one thread per item in groups of this many). */
const WG = 256;
/**
 * Terms the sum loops load ahead of their adds: each term is a chain of dependent loads (an
 * index, then the row it picks), so one at a time the loops waited on memory at every term.
 */
const UNROLL = 4;
const unrolled = (f: (k: number) => string) => Array.from({ length: UNROLL }, (_, k) => f(k)).join(" ");

// params: n (= N·P), P, S (in vec4s where vec: S / 4), rows. With vec (S a multiple of 4) the
// rows are read as vec4s, a quarter of the load instructions; the terms are still added one by
// one in j order, the scalar form's (and the CPU's) order.
const dot = (vec: boolean) => `${header(4, [
  { name: "out", type: "f32", write: true }, { name: "x", type: vec ? "vec4<f32>" : "f32" },
  { name: "tab", type: vec ? "vec4<f32>" : "f32" }, { name: "idx", type: "i32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * ${WG}u + lid;
  if (e >= ${pu(0)}) { return; }
  let S = ${pu(2)};
  let r = idx[e];
  var acc = 0.0f;
  if (r >= 0i && u32(r) < ${pu(3)}) {
    let xo = (e / ${pu(1)}) * S;
    let to = u32(r) * S;
    for (var j = 0u; j < S; j++) {
      ${vec
        ? `let a = x[xo + j];
      let b = tab[to + j];
      acc = acc + a.x * b.x;
      acc = acc + a.y * b.y;
      acc = acc + a.z * b.z;
      acc = acc + a.w * b.w;`
        : "acc = acc + x[xo + j] * tab[to + j];"}
    }
  }
  out[e] = acc;
}`;

// params: n (= N·S), P, S, rows.
const SUM = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "w", type: "f32" }, { name: "tab", type: "f32" }, { name: "idx", type: "i32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let t = wg * ${WG}u + lid;
  if (t >= ${pu(0)}) { return; }
  let P = ${pu(1)};
  let S = ${pu(2)};
  let pos = t / S;
  let j = t - pos * S;
  let rows = ${pu(3)};
  var acc = 0.0f;
  // ${UNROLL} slots at a time: every load of the group issued before the first add (the index,
  // then the weight and the row it picks), the adds in slot order as before (same bits)
  var p = 0u;
  for (; p + ${UNROLL}u <= P; p += ${UNROLL}u) {
    ${unrolled((k) => `let e${k} = pos * P + p + ${k}u; let r${k} = idx[e${k}]; let ok${k} = r${k} >= 0i && u32(r${k}) < rows;`)}
    ${unrolled((k) => `let w${k} = w[e${k}]; let v${k} = tab[select(0u, u32(r${k}), ok${k}) * S + j];`)}
    ${unrolled((k) => `if (ok${k}) { acc = acc + w${k} * v${k}; }`)}
  }
  for (; p < P; p++) {
    let e = pos * P + p;
    let r = idx[e];
    if (r >= 0i && u32(r) < rows) { acc = acc + w[e] * tab[u32(r) * S + j]; }
  }
  out[t] = acc;
}`;

// params: lists, S, threads (maxChunks · S), P. part[c, j] = Σ over chunk c of w[e] · x[e / P, j],
// the terms of weight exactly 0 skipped (the inverse index lists them: it does not see weights).
// params: lists, S (in vec4s where vec: S / 4), threads (maxChunks · S, in vec4s where vec), P.
// part[c, j] = Σ over chunk c of w[e] · x[e / P, j]. With vec (S a multiple of 4) a thread sums
// four adjacent j at once from vec4 loads of x: the chunk's list, weights and e / P are read and
// computed once per four outputs instead of once per output (the loop's cost was those, not x);
// each component still adds its terms one by one in entry order (the same bits as the scalar form).
// With more (a second pair's pass), the sum starts from part[t], the first pair's sum of the chunk.
const outerPart = (vec: boolean, more = false) => `${header(4, [
  { name: "part", type: vec ? "vec4<f32>" : "f32", write: true }, { name: "ord", type: "u32" }, { name: "start", type: "u32" },
  { name: "cstart", type: "u32" }, { name: "crow", type: "u32" }, { name: "w", type: "f32" }, { name: "x", type: vec ? "vec4<f32>" : "f32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let t = wg * ${WG}u + lid;
  if (t >= ${pu(2)}) { return; }
  let S = ${pu(1)};
  let P = ${pu(3)};
  let c = t / S;
  if (c >= cstart[${pu(0)}]) { return; }
  let j = t - c * S;
  let r = crow[c];
  let p0 = start[r] + (c - cstart[r]) * ${SUM_CHUNK}u;
  let p1 = min(p0 + ${SUM_CHUNK}u, start[r + 1u]);
  var acc = ${more ? "part[t]" : vec ? "vec4<f32>(0.0f)" : "0.0f"};
  // ${UNROLL} entries at a time, loads first, adds in entry order (same bits as one at a time)
  var p = p0;
  for (; p + ${UNROLL}u <= p1; p += ${UNROLL}u) {
    ${unrolled((k) => `let e${k} = ord[p + ${k}u];`)}
    ${unrolled((k) => `let w${k} = w[e${k}]; let v${k} = x[(e${k} / P) * S + j];`)}
    ${unrolled((k) => `if (w${k} != 0.0f) { acc = acc + w${k} * v${k}; }`)}
  }
  for (; p < p1; p++) {
    let e = ord[p];
    let we = w[e];
    if (we != 0.0f) { acc = acc + we * x[(e / P) * S + j]; }
  }
  part[t] = acc;
}`;
const OUTER_PART = { scalar: outerPart(false), vec4: outerPart(true), scalarMore: outerPart(false, true), vec4More: outerPart(true, true) };

const lastDim = (a: KernelArg) => a.shape[a.shape.length - 1];

/** Positions per block, and at most this many lists per table row, in indexedOuter's inverse index. */
const BLOCK = 64, LISTS = 16;

export function indexedDotKernel(ctx: GpuCtx, [x, table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const S = table.shape[1], vec = S % 4 === 0;
  launchStep(
    ctx, "indexedDot", vec ? "indexedDot:vec4" : "indexedDot", dot(vec),
    [ctx.ref(out, "indexedDot"), ctx.ref(x, "indexedDot"), ctx.ref(table, "indexedDot"), ctx.ref(idx, "indexedDot")],
    [n, lastDim(idx), vec ? S / 4 : S, table.shape[0]], overItems(ctx, n),
  );
}

export function indexedSumKernel(ctx: GpuCtx, [w, table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  launchStep(
    ctx, "indexedSum", "indexedSum", SUM,
    [ctx.ref(out, "indexedSum"), ctx.ref(w, "indexedSum"), ctx.ref(table, "indexedSum"), ctx.ref(idx, "indexedSum")],
    [n, lastDim(idx), table.shape[1], table.shape[0]], overItems(ctx, n),
  );
}

/** maxEntries from $MEMMAMBA_INDEX_CACHE (a whole number; 0 turns the cache off), else 64. */
function entriesFromEnv(): number {
  const v = readEnv("MEMMAMBA_INDEX_CACHE")?.trim();
  if (v === undefined || v === "") return 64;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`MEMMAMBA_INDEX_CACHE: expected the number of inverse indices to keep (0: none), got "${v}"`);
  return n;
}

/**
 * Tuning knobs of indexedOuter's inverse-index cache (IndexCache): at most `maxEntries` indices
 * and `maxBytes` of their buffers are kept per backend, the least recently used dropped first.
 * maxEntries 0 turns the cache off (every call builds its own index and gives it back, the
 * results bit for bit the same: the tests compare the two, and a benchmark can compare their
 * times with MEMMAMBA_INDEX_CACHE=0). Lowered limits apply from the next index kept.
 */
export const inverseIndexCache = { maxEntries: entriesFromEnv(), maxBytes: 256 * 2 ** 20 };

interface CachedIndex {
  /** The index tensor's buffer handle (a new object for every alloc, never reused). */
  readonly handle: BufferHandle;
  readonly inv: InverseIndex;
}

/**
 * The inverse indices of one backend (one GpuCtx), keyed by the index tensor's buffer handle plus
 * what else the index depends on: the index's shape (a view may reshape the same buffer), the
 * table rows and the list split. A KernelArg has no offset: a tensor owns its whole buffer.
 *
 * Stale entries: an entry is dropped when its buffer is freed or written (WebGpuBackend.free and
 * .write call forgetInverseIndices) and the whole cache when the backend is destroyed
 * (dropInverseIndices); its scratch goes back to the pool then. The key is the handle object
 * itself, which the backend makes anew for every alloc, so a pooled GPUBuffer that comes back
 * for another tensor can never match an old entry even if a hook were missed. Tensors are
 * immutable (a kernel writes only its fresh output), so an entry stays right while its buffer
 * lives. The scratch is pool memory, not tensor buffers: liveBuffers() does not count it.
 */
class IndexCache {
  /** Least recently used first (a Map keeps insertion order; a hit moves its entry last). */
  readonly entries = new Map<string, CachedIndex>();
  /** Entries per index buffer: a free() of any other buffer costs one lookup. */
  readonly handles = new Map<BufferHandle, number>();
  bytes = 0;
  hits = 0;
  misses = 0;

  drop(key: string, e: CachedIndex): void {
    this.entries.delete(key);
    const n = (this.handles.get(e.handle) ?? 1) - 1;
    if (n > 0) this.handles.set(e.handle, n);
    else this.handles.delete(e.handle);
    this.bytes -= e.inv.bytes;
    e.inv.release();
  }

  add(key: string, e: CachedIndex): void {
    this.entries.set(key, e);
    this.handles.set(e.handle, (this.handles.get(e.handle) ?? 0) + 1);
    this.bytes += e.inv.bytes;
  }
}

const caches = new WeakMap<GpuCtx, IndexCache>();
/** Small ids for the cache keys (the handles themselves are compared in CachedIndex.handle). */
const handleIds = new WeakMap<BufferHandle, number>();
let nextHandleId = 1;

function handleId(h: BufferHandle): number {
  let id = handleIds.get(h);
  if (id === undefined) handleIds.set(h, (id = nextHandleId++));
  return id;
}

/** An InverseIndex whose release() does nothing (the cache owns its buffers). */
const borrowed = (inv: InverseIndex): InverseIndex => ({ ...inv, release: () => {} });

/**
 * The inverse index of `idx` for indexedOuter: from the cache where this index (same buffer,
 * shape, rows, split) was built before, else built (13 launches) and kept. The caller calls
 * release() after encoding its launches, as for an uncached one.
 */
function sharedInverseIndex(ctx: GpuCtx, idx: KernelArg, rows: number, split: ListSplit): InverseIndex {
  const { maxEntries, maxBytes } = inverseIndexCache;
  if (maxEntries < 1) return buildInverseIndex(ctx, "indexedOuter", idx, rows, split);
  let cache = caches.get(ctx);
  if (!cache) caches.set(ctx, (cache = new IndexCache()));
  const key = `${handleId(idx.buf)}|${idx.shape.join(",")}|${rows}|${split.K}|${split.G}`;
  const hit = cache.entries.get(key);
  if (hit && hit.handle === idx.buf) {
    cache.entries.delete(key);
    cache.entries.set(key, hit);
    cache.hits++;
    return borrowed(hit.inv);
  }
  cache.misses++;
  const inv = buildInverseIndex(ctx, "indexedOuter", idx, rows, split);
  if (inv.bytes > maxBytes) return inv; // too large to keep: used once and given back
  for (const [k, e] of cache.entries) {
    if (cache.entries.size < maxEntries && cache.bytes + inv.bytes <= maxBytes) break;
    cache.drop(k, e);
  }
  cache.add(key, { handle: idx.buf, inv });
  return borrowed(inv);
}

/**
 * Drops the cached inverse indices of index buffer `buf` (WebGpuBackend calls it when the buffer
 * is freed or written): their scratch goes back to the pool.
 */
export function forgetInverseIndices(ctx: GpuCtx, buf: BufferHandle): void {
  const cache = caches.get(ctx);
  if (!cache || !cache.handles.has(buf)) return;
  for (const [k, e] of cache.entries) if (e.handle === buf) cache.drop(k, e);
}

/** Drops every cached inverse index of a backend (WebGpuBackend.destroy, before its pool is cleared). */
export function dropInverseIndices(ctx: GpuCtx): void {
  const cache = caches.get(ctx);
  if (!cache) return;
  for (const [k, e] of cache.entries) cache.drop(k, e);
  caches.delete(ctx);
}

/** What the inverse-index cache of a backend holds, and its hits and misses since it was made (tests). */
export function inverseIndexCacheStats(ctx: GpuCtx): { entries: number; bytes: number; hits: number; misses: number } {
  const c = caches.get(ctx);
  return { entries: c?.entries.size ?? 0, bytes: c?.bytes ?? 0, hits: c?.hits ?? 0, misses: c?.misses ?? 0 };
}

export function indexedOuterKernel(ctx: GpuCtx, [w, x, idx, w2, x2]: readonly KernelArg[], out: KernelArg, p: PrimParams["indexedOuter"]): void {
  const rows = p.rows, S = out.shape[1];
  if (rows === 0 || S === 0) return;
  const nIdx = prod(idx.shape);
  const P = nIdx === 0 ? 1 : lastDim(idx);
  // a row's entries in up to LISTS lists by blocks of BLOCK positions (ListSplit says why); no
  // more lists in all than entries, so the scratch stays O(entries + rows). The split depends
  // only on idx's shape and rows, so both calls of an attention's backward share one index.
  const K = Math.max(1, Math.min(LISTS, Math.ceil(nIdx / P / BLOCK), Math.floor(nIdx / rows)));
  const inv = sharedInverseIndex(ctx, idx, rows, { K, G: BLOCK * P });
  const part = ctx.temp(Math.max(1, inv.maxChunks * S) * 4);
  if (nIdx > 0) {
    const vec = S % 4 === 0, Sv = vec ? S / 4 : S;
    const pass = (ww: KernelArg, xx: KernelArg, more: boolean) => launchStep(
      ctx, "indexedOuter.sum", `indexedOuter:part${more ? "2" : ""}${vec ? ":vec4" : ""}`, OUTER_PART[`${vec ? "vec4" : "scalar"}${more ? "More" : ""}`],
      [part, inv.ord, inv.start, inv.cstart, inv.crow, ctx.ref(ww, "indexedOuter"), ctx.ref(xx, "indexedOuter")],
      [rows * K, Sv, inv.maxChunks * Sv, P], overItems(ctx, inv.maxChunks * Sv),
    );
    pass(w, x, false);
    // a second pair: its terms added to each chunk's sum in a second pass over the same lists
    // (one more binding than the 8 storage buffers a device must offer, so not the same pass)
    if (w2 && x2) pass(w2, x2, true);
  }
  // with no entries every row has no chunk, so the final step writes zeros
  sumChunks(ctx, "indexedOuter", inv, part, ctx.ref(out, "indexedOuter"), rows, S);
  ctx.releaseTemp(part);
  inv.release();
}
