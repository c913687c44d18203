import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { random } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { HostRng, keyAt } from "../src/data/rng.ts";
import {
  booksTooShort, cutGutenberg, loadTexts, perplexity, pplWindows, pplWindowStarts, splitTexts, SUGGESTED_VALIDATION, type TextDoc,
  tokensToText, WindowSampler,
} from "../src/data/text.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const BOOKS = new URL("../../../../shared/data/books", import.meta.url).pathname;

function doc(name: string, text: string): TextDoc {
  return { name, bytes: enc.encode(text) };
}

describe("data: Gutenberg cut", () => {
  test("keeps the lines strictly between the START and END marker lines", () => {
    const raw = "Title: X\nsome header\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nChapter 1\nIt was.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicense";
    expect(dec.decode(cutGutenberg(enc.encode(raw)))).toBe("\nChapter 1\nIt was.\n");
  });

  test("the variant without a space after the stars, and missing markers", () => {
    expect(dec.decode(cutGutenberg(enc.encode("h\n***START OF THE PROJECT GUTENBERG EBOOK Y\nbody\n***END OF THE PROJECT GUTENBERG EBOOK Y\nf")))).toBe("body\n");
    expect(dec.decode(cutGutenberg(enc.encode("no markers at all\n")))).toBe("no markers at all\n");
    expect(dec.decode(cutGutenberg(enc.encode("head\n*** START OF IT\nbody only\n")))).toBe("body only\n");
    expect(dec.decode(cutGutenberg(enc.encode("body\n*** END OF IT\nlicense")))).toBe("body\n");
  });

  test("the shared books: all 69 cut, none keeps a marker, the suggested split holds out the six longest", () => {
    if (!existsSync(BOOKS)) return; // the data lives outside the repository; nothing to check without it
    const docs = loadTexts(BOOKS);
    expect(docs).toHaveLength(69);
    for (const d of docs) {
      const t = dec.decode(d.bytes);
      expect(t).not.toMatch(/\*\*\* ?(START|END) OF/);
      expect(d.bytes.length).toBeGreaterThan(200_000);
    }
    const split = splitTexts(docs);
    expect(split.validation.map((d) => d.name).sort()).toEqual([...SUGGESTED_VALIDATION].sort());
    expect(split.train).toHaveLength(63);
    expect(split.rule).toContain("suggested split");
  });
});

describe("data: loading and splitting", () => {
  test("a directory of .txt files, sorted; a single file; errors name the path", () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-data-"));
    try {
      writeFileSync(join(dir, "b.txt"), "bravo");
      writeFileSync(join(dir, "a.txt"), "*** START OF X\nalpha\n*** END OF X\n");
      writeFileSync(join(dir, "notes.md"), "ignored");
      const docs = loadTexts(dir);
      expect(docs.map((d) => [d.name, dec.decode(d.bytes)])).toEqual([["a.txt", "alpha\n"], ["b.txt", "bravo"]]);
      expect(dec.decode(loadTexts(join(dir, "a.txt"), { cut: false })[0].bytes)).toContain("START");
      expect(() => loadTexts(join(dir, "nope"))).toThrow(`${join(dir, "nope")}: no such file or directory`);
      const empty = join(dir, "empty");
      mkdirSync(empty);
      expect(() => loadTexts(empty)).toThrow(`${empty}: the directory holds no .txt files`);
      const bin = join(dir, "model.safetensors");
      writeFileSync(bin, Uint8Array.of(8, 0, 0, 0, 0, 0, 0, 0, 123, 125));
      expect(() => loadTexts(bin)).toThrow(`${bin}: not a text file (a NUL byte at offset 1); expected UTF-8 text such as a .txt book`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("hold-out rules: the ⌈n/10⌉ longest documents; one document: its last 10%", () => {
    const docs = Array.from({ length: 12 }, (_, i) => doc(`d${String(i).padStart(2, "0")}.txt`, "x".repeat(100 + ((i * 37) % 12) * 10)));
    const s = splitTexts(docs);
    expect(s.validation.map((d) => d.name).sort()).toEqual(["d10.txt", "d11.txt"]); // the two longest (lengths 200, 210)
    expect(s.train).toHaveLength(10);
    expect(s.rule).toBe("the 2 longest of 12 documents held out");
    const one = splitTexts([doc("shakespeare.txt", "y".repeat(1000))]);
    expect(one.train[0].bytes.length).toBe(900);
    expect(one.validation[0].bytes.length).toBe(100);
    expect(one.validation[0].name).toBe("shakespeare.txt#validation");
  });
});

describe("data: training windows", () => {
  const docs = [doc("short.txt", "abc"), doc("a.txt", "The quick brown fox jumps over the lazy dog. ".repeat(4)), doc("b.txt", "0123456789".repeat(100))];
  const key = random.key(7);

  test("batch(step) is a pure function of (key, step): same batches from a new sampler, different steps differ", () => {
    const s1 = new WindowSampler(docs, 16, key);
    const s2 = new WindowSampler(docs, 16, key);
    for (const step of [0, 1, 5, 1234567]) {
      const a = s1.batch(step, 4);
      const b = s2.batch(step, 4);
      expect(Array.from(a.inputs)).toEqual(Array.from(b.inputs));
      expect(Array.from(a.targets)).toEqual(Array.from(b.targets));
      expect(a.origins).toEqual(b.origins);
    }
    expect(Array.from(s1.batch(3, 4).inputs)).not.toEqual(Array.from(s1.batch(4, 4).inputs));
    const other = new WindowSampler(docs, 16, random.key(8));
    expect(Array.from(other.batch(3, 4).inputs)).not.toEqual(Array.from(s1.batch(3, 4).inputs));
    // a row does not depend on the batch size
    expect(Array.from(s1.batch(9, 2).inputs)).toEqual(Array.from(s1.batch(9, 4).inputs.subarray(0, 32)));
  });

  test("rows are windows of the documents; targets are inputs shifted by one", () => {
    const s = new WindowSampler(docs, 16, key);
    const b = s.batch(11, 8);
    expect(b.inputs).toHaveLength(8 * 16);
    for (let r = 0; r < 8; r++) {
      const { doc: name, start } = b.origins[r];
      const src = docs.find((d) => d.name === name)!.bytes;
      expect(name).not.toBe("short.txt");
      expect(start + 17).toBeLessThanOrEqual(src.length);
      expect(Array.from(b.inputs.subarray(r * 16, r * 16 + 16))).toEqual(Array.from(src.subarray(start, start + 16)));
      expect(Array.from(b.targets.subarray(r * 16, r * 16 + 16))).toEqual(Array.from(src.subarray(start + 1, start + 17)));
    }
    expect(tokensToText(b.inputs.subarray(0, 16)).length).toBe(16);
  });

  test("windows are drawn uniformly over all windows of all documents", () => {
    const s = new WindowSampler(docs, 16, key);
    expect(s.windows).toBe(180 - 16 + 1000 - 16);
    let fromB = 0;
    const n = 100;
    for (let step = 0; step < n; step++) for (const o of s.batch(step, 10).origins) if (o.doc === "b.txt") fromB++;
    expect(fromB / (n * 10)).toBeGreaterThan(0.8); // 984 / 1148 ≈ 0.857
    expect(fromB / (n * 10)).toBeLessThan(0.91);
  });

  test("a sequence longer than every document is an error saying so", () => {
    expect(() => new WindowSampler(docs, 5000, key)).toThrow("WindowSampler: no document is longer than seqLen + 1 = 5001 bytes (the longest has 1000)");
  });

  test("HostRng: unbiased ranges, distinct samples, deterministic", () => {
    const r = new HostRng(keyAt(key, 1, 2));
    const xs = Array.from({ length: 2000 }, () => r.below(10));
    for (let v = 0; v < 10; v++) expect(xs.filter((x) => x === v).length).toBeGreaterThan(130);
    expect(new Set(r.sample(50, 20)).size).toBe(20);
    expect(new Set(r.sample(1000, 5)).size).toBe(5);
    const big = r.below(2 ** 40);
    expect(big).toBeLessThan(2 ** 40);
    expect(new HostRng(keyAt(key, 1, 2)).below(10)).toBe(xs[0]);
  });
});

describe("data: evaluation windows (PG-19 protocol)", () => {
  test("10 windows per book at stride (len − L)/10, NLL on the last 100 targets", () => {
    const book = doc("book.txt", Array.from({ length: 5000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(""));
    const L = 1024;
    const ws = [...pplWindows([book], L)];
    expect(ws).toHaveLength(10);
    const stride = Math.floor((5000 - L - 1) / 10);
    expect(ws.map((w) => w.start)).toEqual(Array.from({ length: 10 }, (_, i) => i * stride));
    for (const w of ws) {
      expect(w.inputs).toHaveLength(L);
      expect(w.targets).toHaveLength(L);
      expect(w.scoreFrom).toBe(L - 100);
      expect(w.targets[0]).toBe(book.bytes[w.start + 1]);
      expect(w.targets[L - 1]).toBe(book.bytes[w.start + L]);
      expect(w.start + L + 1).toBeLessThanOrEqual(5000);
    }
  });

  test("short books are skipped and reported; a book of exactly L + 1 bytes has one window", () => {
    const docs = [doc("tiny.txt", "x".repeat(50)), doc("exact.txt", "y".repeat(65)), doc("ok.txt", "z".repeat(200))];
    expect(booksTooShort(docs, 64)).toEqual(["tiny.txt"]);
    const ws = [...pplWindows(docs, 64, { scoredTokens: 10 })];
    expect(ws.filter((w) => w.doc === "exact.txt")).toHaveLength(1);
    expect(ws.filter((w) => w.doc === "ok.txt")).toHaveLength(10);
    expect(pplWindowStarts(70, 64)).toEqual([0]);
    expect(() => [...pplWindows(docs, 64, { scoredTokens: 100 })]).toThrow("scoredTokens must be in [1, seqLen = 64], got 100");
  });

  test("alignTo: every length scores the same targets (each window is the tail of one of the longest length's)", () => {
    let x = 12345;
    const text = Array.from({ length: 5000 }, () => String.fromCharCode(97 + ((x = (x * 1103515245 + 12345) % 2147483648) % 26))).join("");
    const book = doc("book.txt", text);
    const long = [...pplWindows([book], 1024, { scoredTokens: 50, alignTo: 1024 })];
    // aligned to its own length: the default windows
    expect(long.map((w) => w.start)).toEqual([...pplWindows([book], 1024, { scoredTokens: 50 })].map((w) => w.start));
    expect(long).toHaveLength(10);
    for (const L of [64, 256, 1024]) {
      const ws = [...pplWindows([book], L, { scoredTokens: 50, alignTo: 1024 })];
      expect(ws).toHaveLength(long.length);
      ws.forEach((w, i) => {
        expect(w.start + L).toBe(long[i].start + 1024);
        expect(w.inputs).toHaveLength(L);
        expect(Array.from(w.targets.subarray(w.scoreFrom))).toEqual(Array.from(long[i].targets.subarray(long[i].scoreFrom)));
      });
    }
    // each length's own windows score other bytes
    const own = [...pplWindows([book], 64, { scoredTokens: 50 })];
    expect(Array.from(own[1].targets.subarray(own[1].scoreFrom))).not.toEqual(Array.from(long[1].targets.subarray(long[1].scoreFrom)));
    // a book shorter than the aligned length has no window at any length
    expect([...pplWindows([doc("short.txt", "q".repeat(500))], 64, { scoredTokens: 50, alignTo: 1024 })]).toHaveLength(0);
    expect(() => [...pplWindows([book], 256, { alignTo: 128 })]).toThrow("alignTo must be an integer >= seqLen = 256, got 128");
  });

  test("perplexity from summed NLL", () => {
    const p = perplexity(100 * Math.LN2, 100);
    expect(p.ppl).toBeCloseTo(2, 12);
    expect(p.bitsPerByte).toBeCloseTo(1, 12);
  });
});
