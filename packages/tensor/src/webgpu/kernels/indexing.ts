/**
 * Index kernels: gather, scatterAdd, oneHot.
 *
 * A shader cannot throw, so indices outside the valid range behave as follows (the CPU throws
 * for gather and scatterAdd; the host-side shape rules are the same on both backends):
 * - gather: the output row is zeros;
 * - scatterAdd: the update is dropped;
 * - oneHot: a zero row (as on the CPU).
 *
 * scatterAdd is deterministic without float atomics (WGSL has none): it builds an inverse index
 * (for each output row, the updates that land in it, sorted into index order) and adds each row's
 * list in order, as the CPU does, so the results match it bit for bit (see scatterAddKernel).
 * The inverse index is exported (buildInverseIndex, sumChunks) for indexedOuter (indexed.ts).
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { type BufRef, ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, type GpuCtx } from "../context.ts";

const WG = 256;

/**
 * The opening of a kernel with one thread per item, launched as workgroups of `size` threads over
 * a grid() of ceil(items / size) of them: `let <item>` is the thread's item (the kernel guards the
 * tail). Every kernel here but the scan's three (which work in blocks of SCAN_BLOCK) starts so.
 */
function perItemMain(size: number, item: string): string {
  return `@compute @workgroup_size(${size})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let ${item} = wg * ${size}u + lid;`;
}

const GATHER = `${header(3, [{ name: "out", type: "u32", write: true }, { name: "tab", type: "u32" }, { name: "idx", type: "i32" }])}
${perItemMain(WG, "e")}
  if (e >= ${pu(0)}) { return; }
  let row = ${pu(1)};
  let r = idx[e / row];
  if (r < 0i || u32(r) >= ${pu(2)}) { out[e] = 0u; } else { out[e] = tab[u32(r) * row + e % row]; }
}`;

export function gatherKernel(ctx: GpuCtx, [table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const rows = table.shape[0];
  const row = prod(table.shape.slice(1));
  ctx.dispatch({
    label: "gather", key: "gather", wgsl: () => GATHER,
    buffers: [ctx.ref(out, "gather"), ctx.ref(table, "gather"), ctx.ref(idx, "gather")],
    params: new ParamWords().u(n).u(row).u(rows).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

// scatterAdd: five steps over an inverse index (CSR) that lists, for each output row, the
// updates that land in it, in index order; the last step adds each row's list in that order from
// 0, as the CPU does, so the sums agree with it bit for bit. (The first version walked every
// index from every thread: 85% of a small MemMamba training step on an H100, 3.2 s of 3.7.)
//   1. count:  cnt[r] += 1 per valid index (u32 atomics: counts do not depend on the order)
//   2. scan:   start = exclusive prefix sum of cnt (rows + 1 entries; start[rows] = valid total)
//   3. fill:   seg[start[r] + slot] = i, the slot taken from an atomic cursor (any order)
//   4. rank:   each entry's rank among its row's entries (how many are smaller) puts it in index
//              order: ord[start[r] + rank] = i (one thread per entry, walking its own row)
//   5. sum:    out[r, j] = Σ over ord[start[r] .. start[r+1]) of upd[i, j], in that order (long
//              lists in chunks: see the kernel)
const SCAT_WG = 256;
/** Entries per workgroup of the scan's first and last steps (4 per thread). */
const SCAN_BLOCK = 4 * SCAT_WG;

const SCAT_ZERO = `${header(1, [{ name: "a", type: "u32", write: true }])}
${perItemMain(SCAT_WG, "e")}
  if (e < ${pu(0)}) { a[e] = 0u; }
}`;

/**
 * The entries an inverse index lists: the indices in range, [0, rows), whatever a user's weights
 * are (so that one index serves every weighting of the same idx: indexedOuter shares it between
 * calls). Index −1 (an empty slot) and any other out-of-range index are left out.
 */
const KEEP_ENTRY = `r >= 0i && u32(r) < ${pu(1)}`;
/**
 * The list entry e of row r goes to: list (e / G) mod K of the row (params 2 and 3: K, G; K = 1:
 * one list per row, in index order, as scatterAdd uses it). See ListSplit.
 */
const LIST_OF = `fn listOf(r: u32, e: u32) -> u32 { return r * ${pu(2)} + (e / ${pu(3)}) % ${pu(2)}; }`;

/**
 * The opening of the count and the fill: one thread per entry e of idx (params: nIdx, rows, K, G),
 * r its index.
 */
const PER_INDEX_ENTRY = `${LIST_OF}
${perItemMain(SCAT_WG, "e")}
  if (e >= ${pu(0)}) { return; }
  let r = idx[e];`;

// params: nIdx, rows, K, G.
const SCAT_COUNT = `${header(4, [{ name: "cnt", type: "atomic<u32>", write: true }, { name: "idx", type: "i32" }])}
${PER_INDEX_ENTRY}
  if (${KEEP_ENTRY}) { atomicAdd(&cnt[listOf(u32(r), e)], 1u); }
}`;

/** Hillis–Steele inclusive scan of sh[0..WG) in place (every thread of the workgroup calls it). */
const WG_SCAN = `
  for (var off = 1u; off < ${SCAT_WG}u; off = off << 1u) {
    var t = 0u;
    if (lid >= off) { t = sh[lid - off]; }
    workgroupBarrier();
    sh[lid] = sh[lid] + t;
    workgroupBarrier();
  }`;

/**
 * The opening of the scan's first and last steps (params: n): one workgroup per block of
 * SCAN_BLOCK entries, thread lid holding entries base .. base + 3 of it, and the workgroup's
 * scratch `sh` for WG_SCAN.
 */
const SCAN_BLOCK_MAIN = `var<workgroup> sh: array<u32, ${SCAT_WG}>;
@compute @workgroup_size(${SCAT_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let n = ${pu(0)};
  let base = wg * ${SCAN_BLOCK}u + lid * 4u;`;

// params: n. Block sums of 1024 entries.
const SCAT_BSUM = `${header(1, [{ name: "bsum", type: "u32", write: true }, { name: "cnt", type: "u32" }])}
${SCAN_BLOCK_MAIN}
  var s = 0u;
  for (var k = 0u; k < 4u; k++) { if (base + k < n) { s = s + cnt[base + k]; } }
  sh[lid] = s;
  workgroupBarrier();
  ${WG_SCAN}
  if (lid == ${SCAT_WG - 1}u) { bsum[wg] = sh[lid]; }
}`;

// params: nb. One workgroup: exclusive scan of the block sums, in place, 256 at a time.
const SCAT_BSCAN = `${header(1, [{ name: "bsum", type: "u32", write: true }])}
var<workgroup> sh: array<u32, ${SCAT_WG}>;
@compute @workgroup_size(${SCAT_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let nb = ${pu(0)};
  var carry = 0u;
  for (var c = 0u; c < nb; c = c + ${SCAT_WG}u) {
    let i = c + lid;
    var v = 0u;
    if (i < nb) { v = bsum[i]; }
    sh[lid] = v;
    workgroupBarrier();
    ${WG_SCAN}
    if (i < nb) { bsum[i] = carry + sh[lid] - v; }
    carry = carry + sh[${SCAT_WG - 1}u];
    workgroupBarrier();
  }
}`;

// params: n. start[i] = block prefix + exclusive prefix within the block.
const SCAT_START = `${header(1, [{ name: "start", type: "u32", write: true }, { name: "cnt", type: "u32" }, { name: "bsum", type: "u32" }])}
${SCAN_BLOCK_MAIN}
  var c: vec4<u32>;
  for (var k = 0u; k < 4u; k++) { if (base + k < n) { c[k] = cnt[base + k]; } }
  let s = c.x + c.y + c.z + c.w;
  sh[lid] = s;
  workgroupBarrier();
  ${WG_SCAN}
  var acc = bsum[wg] + sh[lid] - s;
  for (var k = 0u; k < 4u; k++) {
    if (base + k < n) { start[base + k] = acc; }
    acc = acc + c[k];
  }
}`;

// params: nIdx, rows, K, G.
const SCAT_FILL = `${header(4, [{ name: "seg", type: "u32", write: true }, { name: "cur", type: "atomic<u32>", write: true }, { name: "start", type: "u32" }, { name: "idx", type: "i32" }])}
${PER_INDEX_ENTRY}
  if (${KEEP_ENTRY}) {
    let v = listOf(u32(r), e);
    let slot = atomicAdd(&cur[v], 1u);
    seg[start[v] + slot] = e;
  }
}`;

// params: nIdx, rows, K, G (the valid total is start[rows · K]).
const SCAT_RANK = `${header(4, [{ name: "ord", type: "u32", write: true }, { name: "seg", type: "u32" }, { name: "start", type: "u32" }, { name: "idx", type: "i32" }])}
${LIST_OF}
${perItemMain(SCAT_WG, "q")}
  if (q >= start[${pu(1)} * ${pu(2)}]) { return; }
  let e = seg[q];
  let v = listOf(u32(idx[e]), e);
  let s0 = start[v];
  let s1 = start[v + 1u];
  var rank = 0u;
  for (var p = s0; p < s1; p++) { if (seg[p] < e) { rank++; } }
  ord[s0 + rank] = e;
}`;

/** Entries one thread of the sum adds (a row's list is cut into chunks of this many). */
export const SUM_CHUNK = 32;

// params: rows. Chunks per row: ceil(len / SUM_CHUNK) (entry rows: 0, so that its scan is the total).
const SCAT_NCHUNK = `${header(1, [{ name: "nch", type: "u32", write: true }, { name: "start", type: "u32" }])}
${perItemMain(SCAT_WG, "r")}
  let rows = ${pu(0)};
  if (r > rows) { return; }
  if (r == rows) { nch[r] = 0u; return; }
  nch[r] = (start[r + 1u] - start[r] + ${SUM_CHUNK - 1}u) / ${SUM_CHUNK}u;
}`;

// params: rows. chunkRow[c] = the row of chunk c.
const SCAT_CHROW = `${header(1, [{ name: "crow", type: "u32", write: true }, { name: "cstart", type: "u32" }])}
${perItemMain(SCAT_WG, "r")}
  if (r >= ${pu(0)}) { return; }
  for (var c = cstart[r]; c < cstart[r + 1u]; c++) { crow[c] = r; }
}`;

// params: rows, row, threads (chunks · row). partial[c, j] = Σ of chunk c's updates, in order.
const SCAT_PART = `${header(3, [{ name: "part", type: "f32", write: true }, { name: "ord", type: "u32" }, { name: "start", type: "u32" }, { name: "cstart", type: "u32" }, { name: "crow", type: "u32" }, { name: "upd", type: "f32" }])}
${perItemMain(SCAT_WG, "t")}
  if (t >= ${pu(2)}) { return; }
  let row = ${pu(1)};
  let c = t / row;
  if (c >= cstart[${pu(0)}]) { return; }
  let j = t - c * row;
  let r = crow[c];
  let p0 = start[r] + (c - cstart[r]) * ${SUM_CHUNK}u;
  let p1 = min(p0 + ${SUM_CHUNK}u, start[r + 1u]);
  var acc = 0.0f;
  for (var p = p0; p < p1; p++) { acc = acc + upd[ord[p] * row + j]; }
  part[t] = acc;
}`;

// params: rows, row, threads (rows · row), K. out[r, j] = Σ of row r's chunk sums, in order (the
// chunks of its K lists, one after the other).
const SCAT_FINAL = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "part", type: "f32" }, { name: "cstart", type: "u32" }])}
${perItemMain(SCAT_WG, "t")}
  if (t >= ${pu(2)}) { return; }
  let row = ${pu(1)};
  let r = t / row;
  let j = t - r * row;
  var acc = 0.0f;
  let K = ${pu(3)};
  for (var c = cstart[r * K]; c < cstart[r * K + K]; c++) { acc = acc + part[c * row + j]; }
  out[t] = acc;
}`;

/**
 * An inverse index (CSR) of `idx` over `rows` rows, in scratch buffers: each row's entries (flat
 * positions into idx) in K lists (K = 1 unless split: see buildInverseIndex), list v = r·K + k;
 * `ord` holds the lists one after the other, each in index order; `start` [rows·K + 1] where
 * each list begins; and the lists cut into chunks of SUM_CHUNK entries: `cstart` [rows·K + 1]
 * (each list's first chunk; cstart[rows·K] = the chunk count), `crow` (each chunk's list). At
 * most `maxChunks` chunks (the host never reads the exact count).
 */
export interface InverseIndex {
  /** Lists per row. */
  readonly K: number;
  readonly start: BufRef;
  readonly ord: BufRef;
  readonly cstart: BufRef;
  readonly crow: BufRef;
  readonly maxChunks: number;
  /** Bytes of GPU memory the four buffers above hold (their pool size classes). */
  readonly bytes: number;
  /** Gives the scratch buffers back (after the launches that read them are encoded). */
  release(): void;
}

/** One launch of a step of an inverse-index user; params as u32 words. */
export function launchStep(ctx: GpuCtx, label: string, key: string, wgsl: string, buffers: BufRef[], params: number[], groups: [number, number, number]): void {
  ctx.dispatch({ label, key, wgsl: () => wgsl, buffers, params: params.reduce((w, v) => w.u(v), new ParamWords()).words(), groups });
}

/** Workgroups of SCAT_WG threads for one thread per item. */
export function overItems(ctx: GpuCtx, items: number): [number, number, number] {
  return grid(ceilDiv(items, SCAT_WG), ctx.limits.maxComputeWorkgroupsPerDimension);
}

/**
 * How a row's entries are spread over K lists: entry e goes to list (e / G) mod K of its row.
 * Ranking an entry walks its own list, so a row of len entries costs len² in one list and about
 * len²/K in K lists of similar length: a pool note held for a thousand positions (the trained
 * small model at 2K tokens: rows of about 1,000 entries) is then ranked within its ~64 entries
 * of one block of positions. The sum order is still fixed (list by list, each in index order).
 */
export interface ListSplit {
  readonly K: number;
  readonly G: number;
}

/**
 * Steps 1–4 of scatterAdd (see above) and the chunking of step 5, for `prim` (profiler labels):
 * 13 launches where idx has entries. It lists the entries whose index is in [0, rows) — by
 * validity alone, never by a weight, so the result depends only on idx, rows and `split` (each
 * row's entries in split.K lists: see ListSplit) and a user may keep it for several sums over
 * the same idx (indexedOuter does). The scratch of the steps is given back at once; the returned
 * index holds four buffers until its release().
 */
export function buildInverseIndex(ctx: GpuCtx, prim: string, idx: KernelArg, rows: number, split: ListSplit = { K: 1, G: 1 }): InverseIndex {
  const nIdx = prod(idx.shape);
  const { K, G } = split;
  const lists = rows * K;
  const maxG = ctx.limits.maxComputeWorkgroupsPerDimension;
  // pipeline keys carry the primitive, so a profile (keyed by pipeline) charges each user its own steps
  const launch = (phase: string, step: string, wgsl: string, buffers: BufRef[], params: number[], groups: [number, number, number]) =>
    launchStep(ctx, `${prim}.${phase}`, `${prim}:${step}`, wgsl, buffers, params, groups);
  const over = (items: number) => overItems(ctx, items);
  const n = lists + 1; // counts and starts: one more entry, so that start[lists] is the valid total
  const nb = ceilDiv(n, SCAN_BLOCK);
  const cnt = ctx.temp(n * 4), start = ctx.temp(n * 4), bsum = ctx.temp(nb * 4);
  const seg = ctx.temp(Math.max(1, nIdx) * 4), ord = ctx.temp(Math.max(1, nIdx) * 4);
  // exclusive prefix sum of n u32 counts (three launches: block sums, their scan, the starts)
  const scanU32 = (src: BufRef, dst: BufRef) => {
    launch("scan", "bsum", SCAT_BSUM, [bsum, src], [n], grid(nb, maxG));
    launch("scan", "bscan", SCAT_BSCAN, [bsum], [nb], [1, 1, 1]);
    launch("scan", "start", SCAT_START, [dst, src, bsum], [n], grid(nb, maxG));
  };
  launch("zero", "zero", SCAT_ZERO, [cnt], [n], over(n));
  if (nIdx > 0) {
    const idxRef = ctx.ref(idx, prim);
    launch("count", "count", SCAT_COUNT, [cnt, idxRef], [nIdx, rows, K, G], over(nIdx));
    scanU32(cnt, start);
    launch("zero", "zero", SCAT_ZERO, [cnt], [n], over(n)); // now the fill's cursors
    launch("fill", "fill", SCAT_FILL, [seg, cnt, start, idxRef], [nIdx, rows, K, G], over(nIdx));
    launch("rank", "rank", SCAT_RANK, [ord, seg, start, idxRef], [nIdx, rows, K, G], over(nIdx));
  } else {
    scanU32(cnt, start);
  }
  // chunks of the rows' lists: rows whose list is long (a note that stays in the pool is read by
  // every later position: thousands of entries) are summed in chunks of SUM_CHUNK in parallel
  const nch = ctx.temp(n * 4), cstart = ctx.temp(n * 4);
  launch("chunks", "nchunk", SCAT_NCHUNK, [nch, start], [lists], over(n));
  scanU32(nch, cstart);
  // chunks in all: at most nIdx / SUM_CHUNK + lists
  const maxChunks = Math.floor(nIdx / SUM_CHUNK) + lists;
  const crow = ctx.temp(Math.max(1, maxChunks) * 4);
  launch("chunks", "chrow", SCAT_CHROW, [crow, cstart], [lists], over(lists));
  // the steps' own scratch: free for the launches encoded after these
  for (const b of [cnt, bsum, seg, nch]) ctx.releaseTemp(b);
  const kept = [start, ord, cstart, crow];
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    for (const b of kept) ctx.releaseTemp(b);
  };
  return { K, start, ord, cstart, crow, maxChunks, bytes: kept.reduce((a, b) => a + b.buf.size, 0), release };
}

/** Step 5's second half: out[r, j] = Σ of row r's chunk sums part[c, j] (its K lists' chunks), in order. */
export function sumChunks(ctx: GpuCtx, prim: string, inv: InverseIndex, part: BufRef, out: BufRef, rows: number, row: number): void {
  launchStep(ctx, `${prim}.sum`, `${prim}:final`, SCAT_FINAL, [out, part, inv.cstart], [rows, row, rows * row, inv.K], overItems(ctx, rows * row));
}

export function scatterAddKernel(ctx: GpuCtx, [idx, upd]: readonly KernelArg[], out: KernelArg, p: PrimParams["scatterAdd"]): void {
  const rows = p.rows;
  const row = rows === 0 ? 0 : prod(out.shape) / rows;
  if (rows === 0 || row === 0) return;
  const inv = buildInverseIndex(ctx, "scatterAdd", idx, rows);
  // 5. sums: each chunk of a row's list in index order, then the chunk sums in order. A row of
  // at most SUM_CHUNK entries is summed in index order, exactly as on the CPU; a longer one in
  // chunks (a fixed order: deterministic, and equal to the CPU's sequential sum within f32
  // rounding).
  const part = ctx.temp(Math.max(1, inv.maxChunks * row) * 4);
  launchStep(
    ctx, "scatterAdd.sum", "scatterAdd:part", SCAT_PART,
    [part, inv.ord, inv.start, inv.cstart, inv.crow, ctx.ref(upd, "scatterAdd")],
    [rows, row, inv.maxChunks * row], overItems(ctx, inv.maxChunks * row),
  );
  sumChunks(ctx, "scatterAdd", inv, part, ctx.ref(out, "scatterAdd"), rows, row);
  ctx.releaseTemp(part);
  inv.release();
}

const ONE_HOT = `${header(2, [{ name: "out", type: "f32", write: true }, { name: "idx", type: "i32" }])}
${perItemMain(WG, "e")}
  if (e >= ${pu(0)}) { return; }
  let depth = ${pu(1)};
  out[e] = select(0.0f, 1.0f, idx[e / depth] == i32(e % depth));
}`;

export function oneHotKernel(ctx: GpuCtx, [idx]: readonly KernelArg[], out: KernelArg, p: PrimParams["oneHot"]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  ctx.dispatch({
    label: "oneHot", key: "oneHot", wgsl: () => ONE_HOT,
    buffers: [ctx.ref(out, "oneHot"), ctx.ref(idx, "oneHot")],
    params: new ParamWords().u(n).u(p.depth).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
