/**
 * indexedAttentionParts (ops/attention-fused.ts): several pool reads as one softmax, a slot valid
 * iff its index is not −1, against the join it replaces (the tables side by side, the indices
 * offset, valid = index ≥ 0, then indexedAttentionFused), on every backend:
 *
 * - one and two reads; rows of 4, 64 (vec4) and 7, 37 floats (the GPU's scalar path); 1, 5, 50
 *   slots a read; position counts that are no multiple of the GPU's 64-thread workgroups;
 *   positions whose slots are all empty (they read exactly 0); runs of positions that share
 *   their slots, as the model's do. Bit for bit on the CPU kernels, within f32 rounding on the GPU;
 * - one launch forward where the kernel applies (cpu, webgpu), the join on wasm, for three reads,
 *   and where a gradient is recorded (whose gradients are the join's, bit for bit);
 * - on the GPU, each of the kernel's layouts (attnReadTuning.partsLanes: a thread a position, 4 or
 *   8 lanes of a subgroup a position; one table as keys and values read once or twice), and which
 *   one runs: under Dawn (Bun, Node), whose lavapipe and GPUs have subgroups, the 4-lane kernel by
 *   default;
 * - clear errors: bad inputs to attnReadParts, an index out of range on the CPU, no gradient.
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Tensor } from "../src/index.ts";
import { mulberry32 } from "./gradcheck.ts";
import { attnReadTuning } from "../src/webgpu/kernels/attention.ts";
import { close, recordKeys } from "./indexed-attention-support.ts";

interface Read {
  P: number;
  M: number;
  index: Int32Array;
  keys: Float32Array;
  values: Float32Array;
}

interface Case {
  N: number;
  S: number;
  q: Float32Array;
  reads: Read[];
  /** Positions 0 … empty − 1 have no note in any read. */
  empty: number;
}

/** N positions, reads of P slots into tables of M rows; `runs`: positions share their slots in runs of about this many. */
function makeCase(N: number, S: number, reads: { P: number; M: number }[], seed: number, empty = 0, runs = 0): Case {
  const rand = mulberry32(seed);
  const u = (n: number, a = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * a);
  return {
    N, S, empty, q: u(N * S, 2),
    reads: reads.map(({ P, M }) => {
      const index = new Int32Array(N * P);
      for (let n = 0; n < N; n++) {
        if (runs && n > empty && rand() >= 1 / runs) {
          index.copyWithin(n * P, (n - 1) * P, n * P);
          continue;
        }
        for (let p = 0; p < P; p++) index[n * P + p] = n < empty || rand() < 0.3 ? -1 : Math.floor(rand() * M);
      }
      return { P, M, index, keys: u(M * S, 2), values: u(M * S, 3) };
    }),
  };
}

const CASES: Case[] = [
  makeCase(70, 4, [{ P: 5, M: 9 }], 1, 3),
  makeCase(70, 7, [{ P: 5, M: 9 }, { P: 1, M: 4 }], 2, 2),
  makeCase(130, 64, [{ P: 50, M: 200 }, { P: 50, M: 150 }], 3, 1, 20),
  makeCase(65, 64, [{ P: 50, M: 120 }], 4, 0, 10),
  makeCase(33, 37, [{ P: 9, M: 40 }, { P: 5, M: 12 }], 5, 4),
];

interface Built {
  q: Tensor;
  parts: T.AttentionPart[];
  dispose: () => void;
}

function build(c: Case): Built {
  const lead = c.N % 2 === 0 ? [2, c.N / 2] : [c.N];
  const q = T.fromArray(c.q, [...lead, c.S]);
  const parts = c.reads.map((r) => ({
    keys: T.fromArray(r.keys, [r.M, c.S]),
    values: T.fromArray(r.values, [r.M, c.S]),
    index: T.fromArray(r.index, [...lead, r.P], "i32"),
  }));
  return { q, parts, dispose: () => T.disposeTree([q, parts.map((p) => [p.keys, p.values, p.index])]) };
}

/** The join, written out: what indexedAttentionParts must equal. */
function joined(q: Tensor, parts: readonly T.AttentionPart[]): Tensor {
  let rows = 0;
  const index: Tensor[] = [], valid: Tensor[] = [];
  for (const p of parts) {
    const v = T.ge(p.index, 0);
    valid.push(v);
    index.push(rows === 0 ? p.index : T.where(v, T.add(p.index, rows), -1));
    rows += p.keys.shape[0];
  }
  return T.indexedAttentionFused(q, T.concat(parts.map((p) => p.keys), 0), T.concat(parts.map((p) => p.values), 0), T.concat(index, -1), T.concat(valid, -1));
}

async function forward(c: Case, f: (q: Tensor, parts: readonly T.AttentionPart[]) => Tensor): Promise<{ out: Float32Array; launches: number }> {
  const b = build(c);
  try {
    T.resetCounters();
    const out = T.tidy(() => f(b.q, b.parts));
    const launches = T.readCounters().launches;
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return { out: data, launches };
  } finally {
    b.dispose();
  }
}

for (const backend of testBackends()) {
  test(`[${backend}] indexedAttentionParts equals the join of its reads (one launch where its kernel applies); empty positions read 0`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      for (const c of CASES) {
        const label = JSON.stringify([c.N, c.S, c.reads.map((r) => [r.P, r.M])]);
        const want = await forward(c, joined);
        const got = await forward(c, (q, parts) => T.indexedAttentionParts(q, parts));
        // the GPU's online softmax rescales its running sum where the max grows (the join's
        // kernel too, in another order of slots only where its workgroup layout differs): f32 rounding
        const tol = backend === "webgpu" ? 2e-5 : 0;
        expect(`${label} ${close("out", got.out, want.out, tol)}`).toBe(`${label} ok`);
        for (let i = 0; i < c.empty * c.S; i++) expect(got.out[i]).toBe(0);
        expect(got.out.every(Number.isFinite)).toBe(true);
        if (backend === "wasm") expect(got.launches).toBe(want.launches);
        else expect(got.launches).toBe(1);
      }
    });
  });

  test(`[${backend}] indexedAttentionParts joins three reads, and where a gradient is recorded (the join's gradients, bit for bit)`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const three = makeCase(20, 8, [{ P: 3, M: 7 }, { P: 2, M: 5 }, { P: 4, M: 6 }], 6, 2);
      const want = await forward(three, joined);
      const got = await forward(three, (q, parts) => T.indexedAttentionParts(q, parts));
      expect(close("three reads", got.out, want.out, 0)).toBe("ok");
      expect(got.launches).toBe(want.launches);
      const c = CASES[1];
      const b = build(c);
      const cOut = T.fromArray(Float32Array.from({ length: c.N * c.S }, (_, i) => Math.sin(i)), b.q.shape);
      try {
        const tables = b.parts.flatMap((p) => [p.keys, p.values]);
        const grads = async (f: (q: Tensor, parts: readonly T.AttentionPart[]) => Tensor) => {
          const r = T.valueAndGrad((ps: Tensor[]) => {
            const parts = b.parts.map((p, i) => ({ keys: ps[1 + 2 * i], values: ps[2 + 2 * i], index: p.index }));
            return T.sum(T.mul(f(ps[0], parts), cOut));
          })([b.q, ...tables]);
          const data = (await Promise.all(r.grads.map((g) => g.data()))) as Float32Array[];
          T.disposeTree(r);
          return data;
        };
        const g1 = await grads((q, parts) => T.indexedAttentionParts(q, parts));
        const g2 = await grads(joined);
        expect(g1.length).toBe(1 + 2 * c.reads.length);
        g1.forEach((g, i) => expect(close(`grad ${i}`, g, g2[i], 0)).toBe("ok"));
        expect(g1[0].some((x) => x !== 0)).toBe(true);
      } finally {
        T.disposeTree([cOut]);
        b.dispose();
      }
    });
  });
}

test("[cpu] attnReadParts: clear errors for bad inputs, an index out of range, and a gradient", async () => {
  if (!(await useBackend("cpu"))) return;
  {
    T.tidy(() => {
      const q = T.zeros([3, 4]), tab = T.ones([5, 4]);
      const idx = T.fromArray(new Int32Array([0, -1, 4, 2, 1, 3]), [3, 2], "i32");
      expect(() => T.indexedAttentionParts(q, [])).toThrow("indexedAttentionParts: needs at least one read");
      expect(() => T.bind("attnReadParts", [q, tab, tab], { scale: 1 })).toThrow(/attnReadParts: expected q and \(keys, values, index\) per read, got 3 inputs/);
      expect(() => T.indexedAttentionParts(q, [{ keys: tab, values: tab, index: T.zeros([3, 2]) }])).toThrow(/attnReadParts: read 0's index must be i32/);
      expect(() => T.indexedAttentionParts(q, [{ keys: tab, values: tab, index: idx }, { keys: tab, values: T.ones([4, 4]), index: idx }])).toThrow(/read 1's keys \[5, 4\] and values \[4, 4\] must be the same/);
      expect(() => T.indexedAttentionParts(T.zeros([2, 4]), [{ keys: tab, values: tab, index: idx }])).toThrow(/q \[2, 4\], read 0's table \[5, 4\] and index \[3, 2\] must be/);
      const wide = T.zeros([3, 65]), wideTab = T.ones([5, 65]);
      expect(() => T.bind("attnReadParts", [wide, wideTab, wideTab, idx], { scale: 1 })).toThrow(/attnReadParts: S 65 must be in 1\.\.64/);
      // rows wider than 64 run the join instead
      expect(T.indexedAttentionParts(wide, [{ keys: wideTab, values: wideTab, index: idx }]).shape).toEqual([3, 65]);
      const bad = T.fromArray(new Int32Array([0, -1, 5, 2, 1, 3]), [3, 2], "i32");
      expect(() => T.indexedAttentionParts(q, [{ keys: tab, values: tab, index: idx }, { keys: tab, values: tab, index: bad }])).toThrow(
        /attnReadParts: read 1's index 5 at position 2 is outside \[0, 5\) of table \[5, 4\]/,
      );
      expect(() => T.valueAndGrad((x: Tensor) => T.sum(T.bind("attnReadParts", [x, tab, tab, idx], { scale: 1 })))(q)).toThrow(/attnReadParts has no gradient/);
    });
  }
});

test("webgpu: attnReadParts' layouts (a thread a position; 4 or 8 subgroup lanes a position) give the join's numbers; Dawn's default is 4 lanes", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  // deno-lint-ignore no-explicit-any
  const sub: number = (gpu as any).ctx.subgroupMinSize ?? 0;
  // deno-lint-ignore no-explicit-any
  if ((gpu as any).via === "dawn") expect(sub).toBeGreaterThanOrEqual(4); // Dawn reports subgroups on lavapipe and on GPUs: the lanes kernels run here
  console.log(`attnReadParts layouts: subgroups of at least ${sub} (0: none, a thread a position only)`);
  const want = [];
  for (const c of CASES) want.push(await forward(c, joined));
  try {
    for (const lanes of ["auto", 1, 4, 8] as const) {
      attnReadTuning.partsLanes = lanes;
      const rec = recordKeys(gpu);
      try {
        for (const [i, c] of CASES.entries()) {
          const label = JSON.stringify([lanes, c.N, c.S, c.reads.length]);
          const got = await forward(c, (q, parts) => T.indexedAttentionParts(q, parts));
          expect(`${label} ${close("out", got.out, want[i].out, 2e-5)}`).toBe(`${label} ok`);
          for (let e = 0; e < c.empty * c.S; e++) expect(got.out[e]).toBe(0);
        }
      } finally {
        rec.restore();
      }
      // S 64 (16 vec4s) takes the lanes where the subgroups are wide enough; S 4, 7 and 37 never
      const n = lanes === "auto" ? 4 : lanes;
      const keys = [...rec.seen].filter((k) => k.startsWith("attnReadParts")).sort();
      const tag = n > 1 && sub >= n ? `:sg${n}` : "";
      expect(keys).toEqual(["attnReadParts:1:v1", `attnReadParts:1:v16${tag}`, "attnReadParts:2:s37", "attnReadParts:2:s7", `attnReadParts:2:v16${tag}`].sort());
    }
    // one table as keys and values (MemMamba's notes): the key row in registers is added as the
    // value row (":kv"), or, with partsSharedRows off, loaded again as the values'
    const one = { ...CASES[2], reads: CASES[2].reads.map((r) => ({ ...r, values: r.keys })) };
    const same = (q: Tensor, parts: readonly T.AttentionPart[]) => parts.map((p) => ({ ...p, values: p.keys }));
    const wantOne = await forward(one, (q, parts) => joined(q, same(q, parts)));
    for (const shared of [true, false]) {
      for (const lanes of [1, 4] as const) {
        Object.assign(attnReadTuning, { partsLanes: lanes, partsSharedRows: shared });
        const rec = recordKeys(gpu);
        const got = await forward(one, (q, parts) => T.indexedAttentionParts(q, same(q, parts)));
        rec.restore();
        const label = JSON.stringify([shared, lanes]);
        expect(`${label} ${close("out", got.out, wantOne.out, 2e-5)}`).toBe(`${label} ok`);
        expect([...rec.seen].filter((k) => k.startsWith("attnReadParts"))).toEqual([`attnReadParts:2:v16${lanes > 1 && sub >= lanes ? `:sg${lanes}` : ""}${shared ? ":kv" : ""}`]);
      }
    }
    attnReadTuning.partsSharedRows = true;
    attnReadTuning.partsLanes = 2 as 4;
    await expect(forward(CASES[0], (q, parts) => T.indexedAttentionParts(q, parts))).rejects.toThrow('attnReadTuning.partsLanes must be "auto", 1, 4 or 8, got 2');
  } finally {
    Object.assign(attnReadTuning, { partsLanes: "auto", partsSharedRows: true });
  }
});
