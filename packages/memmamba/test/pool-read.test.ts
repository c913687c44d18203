/**
 * The model's pool reads use the fused indexedAttention (no gathered [B, L, P, S] keys or values):
 * cross-token attention over one pool and cross-layer attention over several pools, whose slots
 * share one softmax (tables joined, indices offset), equal the composite poolAttentionWeighted
 * over slots gathered per position, in value and in gradient, on every backend.
 */
import * as T from "@memmamba/tensor";
import type { Tensor } from "@memmamba/tensor";
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { crossLayerAttention, crossTokenAttention, poolAttentionWeighted, validOf } from "../src/index.ts";
import type { CrossLayerParams, CrossTokenParams } from "../src/attention.ts";
import type { PoolRead } from "../src/pool.ts";
import { maxAbsDiff } from "./support.ts";

const B = 2, L = 13, P = 3, S = 6, D = 5;

let seed = 99;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
};
const u = (n: number) => Float32Array.from({ length: n }, () => 2 * rand() - 1);

/** Host data of a pool read over a table of `rows` rows per sequence (positions < `empty` see nothing). */
function readData(rows: number, empty: number) {
  const index = new Int32Array(B * L * P), valid = new Float32Array(B * L * P);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < P; p++) {
        const e = (b * L + l) * P + p, ok = l >= empty && rand() < 0.75;
        valid[e] = ok ? 1 : 0;
        index[e] = ok ? b * rows + Math.floor(rand() * rows) : -1; // −1: an empty slot, as readAt writes it
      }
    }
  }
  return { table: u(B * rows * S), index, valid, rows: B * rows };
}

const DATA = [readData(L, 2), readData(L + 4, 4)]; // a chunked-mode table is longer than L
const W = { q: u(D * S), k: u(S * S), v: u(S * S), state: u(D), h: u(B * L * D), c: u(B * L * S) };

function reads(ts: Tensor[]): PoolRead[] {
  return DATA.map((d, i) => ({ table: ts[i], index: T.fromArray(d.index, [B, L, P], "i32"), valid: T.fromArray(d.valid, [B, L, P]) }));
}

/** The composite: gather the projected slots per position, then poolAttentionWeighted. */
function composite(h: Tensor, p: CrossLayerParams, rs: PoolRead[]) {
  // gather has no empty slot: row 0 where the index is −1 (its weight is 0)
  const slots = (r: PoolRead, w: Tensor) => T.gather(T.matmul(r.table, w), T.where(validOf(r), r.index, 0));
  return poolAttentionWeighted(T.matmul(h, p.q.w), rs.map((r) => slots(r, p.k.w)), rs.map((r) => slots(r, p.v.w)), rs.map(validOf));
}

for (const backend of testBackends()) {
  test(`[${backend}] cross-token and cross-layer reads (fused) equal the composite over gathered slots, with gradients`, async () => {
    const before = T.getBackend(); // put back afterwards: later test files in the same process run on the default backend
    if (!(await useBackend(backend))) return;
    try {
    await expectNoLeak(async () => {
      const params = {
        q: { w: T.fromArray(W.q, [D, S]) }, k: { w: T.fromArray(W.k, [S, S]) }, v: { w: T.fromArray(W.v, [S, S]) },
        h: T.fromArray(W.h, [B, L, D]),
        tables: DATA.map((d) => T.fromArray(d.table, [d.rows, S])),
      };
      const cot = T.fromArray(W.c, [B, L, S]);
      const state = { w: T.fromArray(W.state, [D, 1]), b: T.fromArray([0.3], [1]) };
      type Pm = typeof params;
      const m = { tau2: -1 } as Parameters<typeof crossTokenAttention>[4]; // the gate always open
      const loss = (f: (p: Pm) => Tensor) => T.valueAndGrad((p: Pm) => T.sum(T.mul(f(p), cot)))(params);
      const cases: [string, (p: Pm) => Tensor, (p: Pm) => Tensor][] = [
        ["cross-layer over two pools", (p) => crossLayerAttention(p, p.h, reads(p.tables)), (p) => composite(p.h, p, reads(p.tables)).out],
        [
          "cross-token over one pool",
          (p) => crossTokenAttention({ ...p, state } as CrossTokenParams, p.h, p.h, reads(p.tables)[0], m).c,
          (p) => {
            const score = T.sigmoid(T.add(T.matmul(p.h, state.w), state.b)); // [B, L, 1]
            return T.mul(composite(p.h, p, reads(p.tables).slice(0, 1)).out, score);
          },
        ],
      ];
      for (const [name, fused, ref] of cases) {
        const a = loss(fused), b = loss(ref);
        const flat = (g: Pm) => [g.q.w, g.k.w, g.v.w, g.h, ...g.tables];
        const ga = flat(a.grads), gb = flat(b.grads);
        expect(`${name}: ${Math.abs((await a.value.item()) - (await b.value.item())) < 1e-4}`).toBe(`${name}: true`);
        for (let i = 0; i < ga.length; i++) {
          const d = maxAbsDiff(await ga[i].data(), await gb[i].data());
          expect(`${name} grad #${i}: ${d < 1e-4}`).toBe(`${name} grad #${i}: true`);
        }
        T.disposeTree([a, b]);
      }
      // outside a gradient, reads without a valid mask (causalSelect's: a slot holds a note iff its
      // index is not −1) take indexedAttentionParts, one launch over both tables where they lie
      const bare = (p: Pm) => reads(p.tables).map((r) => (r.valid!.dispose(), { table: r.table, index: r.index }));
      const [got, want] = T.tidy(() => T.noGrad(() => [crossLayerAttention(params, params.h, bare(params)), composite(params.h, params, reads(params.tables)).out]));
      T.resetCounters();
      T.tidy(() => T.noGrad(() => crossLayerAttention(params, params.h, bare(params)))).dispose();
      const launches = T.readCounters().launches;
      expect(`mask-free reads: ${maxAbsDiff(await got.data(), await want.data()) < 1e-5}`).toBe("mask-free reads: true");
      // the index uploads (2), the folded query weight and the query, the read (wasm: the join's launches)
      if (backend === "wasm") expect(launches).toBeGreaterThan(5);
      else expect(launches).toBe(5);
      T.disposeTree([got, want, params, cot, state]);
    });
    } finally {
      T.setBackend(before);
    }
  });
}
