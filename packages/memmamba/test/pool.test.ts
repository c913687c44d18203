import { disposeTree, fromArray, gather, keep, liveBuffers, mul, reshape, sliceAxis, tidy, where, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { initPoolState, insertNote, preset, readPool, selectNotes, validOf, type Notes, type PoolRead, type PoolState, type ScoredNotes } from "../src/index.ts";
import { rng } from "./support.ts";

const B = 3, L = 40, P = 5, S = 2;

/** Notes whose content names them: note[b, t] = [t + 1, b + 1]; scores quantized to force ties. */
function makeNotes(seed: number): Notes {
  const r = rng(seed);
  const write = Float32Array.from({ length: B * L }, () => (r() < 0.6 ? 1 : 0));
  const score = Float32Array.from({ length: B * L }, () => [0.25, 0.5, 0.75][Math.floor(r() * 3)]);
  const note = Float32Array.from({ length: B * L * S }, (_, i) => {
    const bt = Math.floor(i / S);
    return i % S === 0 ? (bt % L) + 1 : Math.floor(bt / L) + 1;
  });
  return { write: fromArray(write, [B, L]), score: fromArray(score, [B, L]), note: fromArray(note, [B, L, S]) };
}

/** The notes a read holds [B, L, P, S], zero in empty slots (gather has no −1: row 0 there, masked). */
function held(read: PoolRead): Tensor {
  const valid = validOf(read);
  return mul(gather(read.table, where(valid, read.index, 0)), reshape(valid, [...valid.shape, 1]));
}

/** A sequence read's index is −1 exactly on its empty slots, a row of the table elsewhere; returns how many are empty. */
async function expectEmptySlotsMinusOne(read: PoolRead): Promise<number> {
  const v = tidy(() => validOf(read)); // (tidy: also frees the scalar 0 that ge compares with)
  const [index, valid] = await Promise.all([read.index.data(), v.data()]);
  if (v !== read.valid) v.dispose();
  const rows = read.table.shape[0];
  let empty = 0, bad = 0;
  for (let e = 0; e < index.length; e++) {
    if (valid[e] === 0) empty++;
    if (valid[e] === 0 ? index[e] !== -1 : !(index[e] >= 0 && index[e] < rows)) bad++;
  }
  expect(bad).toBe(0);
  return empty;
}

function slice(n: Notes, s: number, e: number): Notes {
  return { write: sliceAxis(n.write, 1, s, e), score: sliceAxis(n.score, 1, s, e), note: sliceAxis(n.note, 1, s, e) };
}

for (const replacement of ["fifo", "priority"] as const) {
  describe(`state pool (${replacement})`, () => {
    const m = preset("tiny", { memory: { poolSize: P, summaryDim: S, replacement } }).memory;

    test("insertNote one token at a time holds what causalSelect selects (ties included)", async () => {
      const base = liveBuffers();
      {
        const n = makeNotes(replacement === "fifo" ? 1 : 2);
        // the pools overflow (more notes written than P), so eviction is exercised
        const writes = await n.write.data();
        expect(Array.from(writes.subarray(0, L)).reduce((a, v) => a + v, 0)).toBeGreaterThan(2 * P);
        const parallel = tidy(() => held(selectNotes(n, m).read));
        const want = (await parallel.data()) as Float32Array;
        const whole = tidy(() => selectNotes(n, m).read);
        expect(await expectEmptySlotsMinusOne(whole)).toBeGreaterThan(0); // the check saw empty slots
        disposeTree(whole);
        let pool: PoolState = initPoolState(m, B);
        for (let t = 0; t < L; t++) {
          const got = tidy(() => held(readPool(pool)));
          const g = await got.data();
          for (let b = 0; b < B; b++) {
            const w = want.subarray((b * L + t) * P * S, (b * L + t + 1) * P * S);
            expect(Array.from(g.subarray(b * P * S, (b + 1) * P * S))).toEqual(Array.from(w));
          }
          got.dispose();
          const next = tidy(() => {
            const at = slice(n, t, t + 1);
            return insertNote(pool, reshape(at.note, [B, S]), reshape(at.score, [B]), reshape(at.write, [B]), m);
          });
          disposeTree(pool);
          pool = next;
        }
        disposeTree([pool, parallel, n]);
      }
      expect(liveBuffers()).toBe(base);
    });

    test("selectNotes chunk by chunk (carried pool as virtual positions) equals one pass", async () => {
      {
        const n = makeNotes(3);
        const whole = tidy(() => held(selectNotes(n, m).read));
        const want = (await whole.data()) as Float32Array;
        let pool: PoolState = initPoolState(m, B);
        for (let s = 0; s < L; s += 7) {
          const e = Math.min(L, s + 7);
          const r = tidy(() => {
            const { read, next } = selectNotes(slice(n, s, e), m, pool);
            return { got: held(read), next: next!, read };
          });
          await expectEmptySlotsMinusOne(r.read);
          disposeTree(r.read);
          const g = await r.got.data();
          for (let b = 0; b < B; b++) {
            const a = want.subarray((b * L + s) * P * S, (b * L + e) * P * S);
            expect(Array.from(g.subarray(b * (e - s) * P * S, (b + 1) * (e - s) * P * S))).toEqual(Array.from(a));
          }
          disposeTree([pool, r.got]);
          pool = r.next;
        }
        disposeTree([pool, whole, n]);
      }
    });

    test("selectNotes with notes on demand asks for exactly the positions a read or the next pool holds, and reads the same notes", async () => {
      const base = liveBuffers();
      {
        const n = makeNotes(4);
        let pool: PoolState = initPoolState(m, B);
        let asked = 0;
        for (let s = 0; s < L; s += 9) {
          const e = Math.min(L, s + 9), C = e - s;
          const chunk = slice(n, s, e);
          let rows: Tensor | undefined;
          const scored: ScoredNotes = {
            score: chunk.score, write: chunk.write,
            noteOf: (r) => {
              rows = keep(r!);
              return where(reshape(r!, [B, C, 1]), chunk.note, 0);
            },
          };
          const dense = tidy(() => {
            const { read, next } = selectNotes(chunk, m, pool);
            return { got: held(read), next: next!, index: read.index, valid: validOf(read), rowsPerSeq: read.table.shape[0] / B };
          });
          const sparse = tidy(() => {
            const { read, next } = selectNotes(scored, m, pool);
            return { got: held(read), next: next! };
          });
          expect(Array.from(await sparse.got.data())).toEqual(Array.from(await dense.got.data()));
          for (const k of ["notes", "scores", "valid"] as const) expect(Array.from(await sparse.next[k].data())).toEqual(Array.from(await dense.next[k].data()));
          // the chunk positions some read holds (table rows V.. of each sequence: after the P
          // replayed notes of a carried pool, V = P, or none for the initial empty pool, V = 0)
          // or the next pool holds
          const M = dense.rowsPerSeq, V = M - C;
          expect(V).toBe(s === 0 ? 0 : P);
          const want = new Float32Array(B * C);
          const [index, valid] = [await dense.index.data(), await dense.valid.data()];
          for (let e2 = 0; e2 < index.length; e2++) {
            if (valid[e2] === 0) continue;
            const b = Math.floor(e2 / (C * P)), row = index[e2] - b * M;
            if (row >= V) want[b * C + row - V] = 1;
          }
          const [nextNotes, nextValid] = [await dense.next.notes.data(), await dense.next.valid.data()];
          for (let b = 0; b < B; b++) {
            for (let j = 0; j < P; j++) {
              const t = nextNotes[(b * P + j) * S] - 1 - s; // a note names its position: [t + 1, b + 1]
              if (nextValid[b * P + j] !== 0 && t >= 0 && t < C) want[b * C + t] = 1;
            }
          }
          expect(Array.from(await rows!.data())).toEqual(Array.from(want));
          asked += want.reduce((a, v) => a + v, 0);
          disposeTree([pool, dense.got, dense.index, dense.valid, dense.next, sparse.got, rows!, chunk]);
          pool = sparse.next;
        }
        expect(asked).toBeGreaterThan(0);
        disposeTree([pool, n]);
      }
      expect(liveBuffers()).toBe(base);
    });
  });
}
