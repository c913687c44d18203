/**
 * poolInsert (ops/pool.ts): one recurrent write into bounded note pools, against its composite
 * (poolInsertOps) and against hand-worked pools, on every backend:
 *
 * - pools of 1, 2, 7 and 50 slots (the small model's), empty, partly filled and full; scores drawn
 *   from a few values (ties among the held notes and with the newcomer), writes on and off, both
 *   replacement modes: every output bit for bit the composite's (each is a copy of an input or an
 *   exact small number), in one launch where it fuses (cpu, wasm through the CPU kernel, webgpu);
 * - what the rules say on small pools worked by hand (first empty slot, FIFO's oldest, priority's
 *   lowest and its first among equals, a newcomer below every held note turned away);
 * - where a gradient is recorded: the composite, whose gradient reaches the note that went in;
 * - clear errors for wrong shapes, dtypes and modes.
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { PoolReplacement, Tensor } from "../src/index.ts";
import { mulberry32 } from "./gradcheck.ts";

interface Case {
  B: number;
  P: number;
  S: number;
  notes: Float32Array;
  scores: Float32Array;
  valid: Float32Array;
  note: Float32Array;
  score: Float32Array;
  write: Float32Array;
}

/** Row b holds `held[b]` notes (slots 0 … held − 1; zeros after), scores from a few values so that ties come up. */
function makeCase(B: number, P: number, S: number, seed: number): Case {
  const rand = mulberry32(seed);
  const pickScore = () => [0.125, 0.25, 0.5, 0.5, 0.75, 0.875][Math.floor(rand() * 6)];
  const notes = new Float32Array(B * P * S), scores = new Float32Array(B * P), valid = new Float32Array(B * P);
  for (let b = 0; b < B; b++) {
    // half the rows full, the others anywhere from empty to one short
    const held = rand() < 0.5 ? P : Math.floor(rand() * P);
    for (let i = 0; i < held; i++) {
      valid[b * P + i] = 1;
      scores[b * P + i] = pickScore();
      for (let e = 0; e < S; e++) notes[(b * P + i) * S + e] = rand() * 2 - 1;
    }
  }
  const note = Float32Array.from({ length: B * S }, () => rand() * 2 - 1);
  // a newcomer below every held score now and then (turned away by a full priority pool)
  const score = Float32Array.from({ length: B }, () => (rand() < 0.25 ? 0.0625 : pickScore()));
  const write = Float32Array.from({ length: B }, () => (rand() < 0.8 ? 1 : 0));
  return { B, P, S, notes, scores, valid, note, score, write };
}

const CASES = [makeCase(1, 50, 64, 1), makeCase(6, 7, 3, 2), makeCase(9, 2, 5, 3), makeCase(5, 1, 4, 4), makeCase(64, 50, 16, 5), makeCase(3, 70, 1, 6)];

type Impl = typeof T.poolInsert;
const OUTS = ["notes", "scores", "valid", "accepted", "evicted"] as const;
type Out = Record<(typeof OUTS)[number], Float32Array> & { launches: number };

async function run(c: Case, mode: PoolReplacement, impl: Impl): Promise<Out> {
  const ins = [
    T.fromArray(c.notes, [c.B, c.P, c.S]), T.fromArray(c.scores, [c.B, c.P]), T.fromArray(c.valid, [c.B, c.P]),
    T.fromArray(c.note, [c.B, c.S]), T.fromArray(c.score, [c.B]), T.fromArray(c.write, [c.B]),
  ];
  try {
    T.resetCounters();
    const r = T.tidy(() => impl(ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], mode));
    const launches = T.readCounters().launches;
    const data = (await Promise.all(OUTS.map((k) => r[k].data()))) as Float32Array[];
    T.disposeTree(r);
    return { notes: data[0], scores: data[1], valid: data[2], accepted: data[3], evicted: data[4], launches };
  } finally {
    T.disposeTree(ins);
  }
}

/** "ok", or the first element whose bits differ. */
function sameBits(what: string, got: Float32Array, want: Float32Array): string {
  if (got.length !== want.length) return `${what}: length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) return `${what}[${i}]: ${got[i]} vs ${want[i]}`;
  return "ok";
}

/** A one-row case from plain arrays (S = 1: each note is its own label). */
function row(notes: number[], scores: number[], note: number, score: number, write = 1): Case {
  const P = notes.length;
  const valid = Float32Array.from(notes, (v) => (Number.isNaN(v) ? 0 : 1));
  return {
    B: 1, P, S: 1, notes: Float32Array.from(notes, (v) => (Number.isNaN(v) ? 0 : v)), scores: Float32Array.from(scores), valid,
    note: Float32Array.of(note), score: Float32Array.of(score), write: Float32Array.of(write),
  };
}

for (const backend of testBackends()) {
  test(`[${backend}] poolInsert equals its composite bit for bit, in one launch (both modes, empty to full pools, ties)`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      // what the cases exercise: accepted writes into full pools, rejected ones, writes into pools with room, no write
      const seen = { evicted: 0, rejected: 0, room: 0, off: 0 };
      for (const c of CASES) {
        for (const mode of ["fifo", "priority"] as const) {
          const label = `B ${c.B} P ${c.P} S ${c.S} ${mode}`;
          const want = await run(c, mode, T.poolInsertOps);
          const got = await run(c, mode, T.poolInsert);
          for (const k of OUTS) expect(`${label} ${sameBits(k, got[k], want[k])}`).toBe(`${label} ok`);
          expect(got.launches).toBe(1);
          expect(want.launches).toBeGreaterThan(10);
          for (let b = 0; b < c.B; b++) {
            const full = c.valid[b * c.P + c.P - 1] === 1;
            if (c.write[b] === 0) seen.off++;
            else if (!full) seen.room++;
            else if (want.evicted[b] >= 0) seen.evicted++;
            else seen.rejected++;
          }
        }
      }
      expect(`${JSON.stringify(seen)} ${Object.values(seen).every((n) => n >= 5)}`).toMatch(/ true$/);
    });
  });

  test(`[${backend}] poolInsert follows the rules on pools worked by hand`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const E = NaN; // an empty slot
      const check = async (c: Case, mode: PoolReplacement, notes: number[], scores: number[], accepted: number, evicted: number) => {
        const label = `${mode} [${Array.from(c.notes)}] + ${c.note[0]}`;
        const got = await run(c, mode, T.poolInsert);
        expect(`${label}: ${Array.from(got.notes)} | ${Array.from(got.scores)} | ${got.accepted[0]} ${got.evicted[0]}`)
          .toBe(`${label}: ${notes} | ${scores} | ${accepted} ${evicted}`);
      };
      // room: the first empty slot, nothing leaves
      await check(row([1, 2, E, E], [0.5, 0.25, 0, 0], 9, 0.125), "priority", [1, 2, 9, 0], [0.5, 0.25, 0.125, 0], 1, -1);
      await check(row([1, 2, E, E], [0.5, 0.25, 0, 0], 9, 0.125), "fifo", [1, 2, 9, 0], [0.5, 0.25, 0.125, 0], 1, -1);
      // full, fifo: the oldest leaves whatever the scores
      await check(row([1, 2, 3], [0.125, 0.875, 0.875], 9, 0.0625), "fifo", [2, 3, 9], [0.875, 0.875, 0.0625], 1, 0);
      // full, priority: the lowest leaves, the first of equal lowest ones
      await check(row([1, 2, 3, 4], [0.5, 0.25, 0.75, 0.25], 9, 0.375), "priority", [1, 3, 4, 9], [0.5, 0.75, 0.25, 0.375], 1, 1);
      // a newcomer equal to the lowest still goes in (the oldest of equals leaves)
      await check(row([1, 2, 3], [0.5, 0.25, 0.75], 9, 0.25), "priority", [1, 3, 9], [0.5, 0.75, 0.25], 1, 1);
      // a newcomer below every held note is turned away
      await check(row([1, 2, 3], [0.5, 0.25, 0.75], 9, 0.125), "priority", [1, 2, 3], [0.5, 0.25, 0.75], 0, -1);
      // no write: the pool as it was
      await check(row([1, 2, E], [0.5, 0.25, 0], 9, 0.875, 0), "priority", [1, 2, 0], [0.5, 0.25, 0], 0, -1);
      // one slot
      await check(row([1], [0.5], 9, 0.75), "priority", [9], [0.75], 1, 0);
      await check(row([1], [0.5], 9, 0.25), "fifo", [9], [0.25], 1, 0);
    });
  });
}

test("[cpu] poolInsert where a gradient is recorded: the composite, with the gradient of the note that went in", async () => {
  if (!(await useBackend("cpu"))) return;
  await expectNoLeak(async () => {
    const c = row([1, 2, 3], [0.5, 0.25, 0.75], 9, 0.625);
    const notes = T.fromArray(c.notes, [1, 3, 1]), scores = T.fromArray(c.scores, [1, 3]), valid = T.fromArray(c.valid, [1, 3]);
    const score = T.fromArray(c.score, [1]), write = T.fromArray(c.write, [1]);
    const weights = T.fromArray([1, 10, 100], [1, 3, 1]), note = T.fromArray(c.note, [1, 1]);
    const loss = (ps: Tensor[]) => T.sum(T.mul(T.poolInsert(ps[0], scores, valid, ps[1], score, write, "priority").notes, weights));
    T.resetCounters();
    const { value, grads } = T.valueAndGrad(loss)([notes, note]);
    expect(T.readCounters().launches).toBeGreaterThan(10);
    // the new pool is [1, 3, 9]: note 9 sits in slot 2 (weight 100); old slot 2 moved to slot 1
    expect(await value.item()).toBe(1 + 30 + 900);
    expect(Array.from((await grads[1].data()) as Float32Array)).toEqual([100]);
    expect(Array.from((await grads[0].data()) as Float32Array)).toEqual([1, 0, 10]);
    T.disposeTree([value, grads, notes, note, scores, valid, score, write, weights]);
  });
});

test("[cpu] poolInsert: clear errors for wrong shapes, dtypes and modes", async () => {
  if (!(await useBackend("cpu"))) return;
  T.tidy(() => {
    const notes = T.zeros([2, 3, 4]), scores = T.zeros([2, 3]), valid = T.zeros([2, 3]), note = T.zeros([2, 4]), s = T.zeros([2]), w = T.zeros([2]);
    expect(() => T.poolInsert(notes, scores, valid, T.zeros([2, 5]), s, w, "fifo")).toThrow("poolInsert: note must be [2, 4] for notes [2, 3, 4], got [2, 5]");
    expect(() => T.poolInsert(notes, T.zeros([3, 2]), valid, note, s, w, "fifo")).toThrow("poolInsert: scores must be [2, 3]");
    expect(() => T.poolInsert(notes, scores, valid, note, s, T.zeros([2, 1]), "fifo")).toThrow("poolInsert: write must be [2]");
    expect(() => T.poolInsert(T.zeros([2, 3]), scores, valid, note, s, w, "fifo")).toThrow("poolInsert: notes must be [B, P, S]");
    expect(() => T.poolInsert(notes, scores, T.fromArray(new Int32Array(6), [2, 3], "i32"), note, s, w, "fifo")).toThrow("poolInsert: valid must be f32");
    // deno-lint-ignore no-explicit-any
    expect(() => T.poolInsert(notes, scores, valid, note, s, w, "lifo" as any)).toThrow('poolInsert: mode must be "fifo" or "priority", got "lifo"');
  });
});
