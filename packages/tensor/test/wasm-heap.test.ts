/**
 * The wasm heap's allocator (src/wasm/heap.ts) on its own: size classes, reuse, and what it does
 * when the top would pass the memory's maximum (free neighbours merged, the top lowered, a block cut
 * from a merged run), checked against a model of the blocks it has handed out.
 */
import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { classAtMost, sizeClass, WasmHeap } from "../src/wasm/heap.ts";

const PAGE = 65536;
const heapOf = (pages: number) => new WasmHeap(new WebAssembly.Memory({ initial: 1, maximum: pages }), 0, pages * PAGE);

describe("wasm heap", () => {
  test("classAtMost is the largest size class not above a multiple of 64", () => {
    for (let b = 64; b <= 1 << 20; b += 64) {
      const c = classAtMost(b);
      expect(c <= b && sizeClass(c) === c).toBe(true);
      // no class lies in (c, b]: the next class above c is sizeClass(c + 1)
      expect(sizeClass(c + 1) > b).toBe(true);
    }
  });

  test("out of memory names the sizes, the free bytes, the limit and what fits instead", () => {
    const heap = heapOf(2);
    const a = heap.alloc(65536);
    expect(() => heap.alloc(100_000)).toThrow(
      /^wasm heap: out of memory: 100000 bytes asked, 65536 in use, 0 free in blocks too small for it, the memory's maximum is 131072 bytes \(0\.00 GiB, a wasm32 memory's limit; .*fewer tokens a micro-batch, or the WebGPU backend, fit\)$/,
    );
    heap.free(a, 65536);
    expect(() => heap.alloc(65536)).not.toThrow(); // the block freed comes back
  });

  test("at the maximum, free neighbours merge: a larger block is cut from them, and a run at the top lowers the top", () => {
    const heap = heapOf(4);
    const q = [0, 1, 2, 3].map(() => heap.alloc(PAGE)); // the whole memory in four blocks of one class
    expect(q).toEqual([0, PAGE, 2 * PAGE, 3 * PAGE]);
    heap.free(q[1], PAGE);
    heap.free(q[2], PAGE);
    // no free block of 2 pages' class and no room at the top: the two free neighbours serve it
    const two = heap.alloc(2 * PAGE);
    expect(two).toBe(PAGE);
    expect(() => heap.alloc(PAGE)).toThrow(/out of memory: 65536 bytes asked, 262144 in use, 0 free/);
    heap.free(q[3], PAGE);
    heap.free(two, 2 * PAGE);
    // blocks 1-3 are free and end at the top: the top comes down to block 1, and 3 pages fit there
    expect(heap.alloc(3 * PAGE)).toBe(PAGE);
    expect(heap.stats()).toEqual(expect.objectContaining({ inUseBytes: 4 * PAGE, topBytes: 4 * PAGE }));
    // a 100-byte block (class 128) now sits in block 0: the 65,408 bytes left there hold no page
    heap.free(q[0], PAGE);
    expect(heap.alloc(100)).toBe(0);
    expect(() => heap.alloc(PAGE)).toThrow(/out of memory: 65536 bytes asked, 196736 in use, 65408 free in blocks too small for it/);
  });

  test("random allocations and frees: blocks never overlap, stay aligned and inside the memory, and an allocation fails only when no gap holds it", async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("alloc" as const), bytes: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 3000, max: 40_000 })) }),
      fc.record({ kind: fc.constant("free" as const), which: fc.nat() }),
    );
    await fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 300 }), (ops) => {
      const max = 2 * PAGE;
      const heap = heapOf(2);
      const live: { p: number; bytes: number; cls: number }[] = [];
      for (const o of ops) {
        if (o.kind === "free") {
          if (!live.length) continue;
          const [b] = live.splice(o.which % live.length, 1);
          heap.free(b.p, b.bytes);
          continue;
        }
        const cls = sizeClass(o.bytes);
        let p: number;
        try {
          p = heap.alloc(o.bytes);
        } catch (e) {
          expect(String(e)).toContain("wasm heap: out of memory");
          // every gap between live blocks (and after the last, to the maximum) is shorter than the class
          const sorted = [...live].sort((a, b) => a.p - b.p);
          let at = 0;
          for (const b of sorted) {
            expect(b.p - at < cls).toBe(true);
            at = b.p + b.cls;
          }
          expect(max - at < cls).toBe(true);
          continue;
        }
        expect(p % 64).toBe(0);
        expect(p >= 0 && p + cls <= max).toBe(true);
        for (const b of live) expect(p + cls <= b.p || b.p + b.cls <= p).toBe(true);
        live.push({ p, bytes: o.bytes, cls });
        expect(heap.stats().inUseBytes).toBe(live.reduce((n, b) => n + b.cls, 0));
      }
    }), { numRuns: 200 });
  });
});
