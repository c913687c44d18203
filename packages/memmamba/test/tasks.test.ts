import { existsSync } from "node:fs";
import { random } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { keyAt } from "../src/data/rng.ts";
import { loadTexts, type TextDoc } from "../src/data/text.ts";
import {
  CLASSIC_FILLER, FIXED_BYTES, needleText, PASSKEY_DEPTHS, passkeyGrid, passkeySample, passkeyTrainingBatch, QUESTION, scorePasskey,
  type FillerSpec,
} from "../src/tasks/passkey.ts";
import { DOCRET_KS, DOCRET_STOP, docretSample, docretSamples, docretTrainingBatch, paragraphsOf, scoreDocret, sentencesOf } from "../src/tasks/docret.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const key = random.key(2024);
const BOOKS = new URL("../../../../shared/data/books", import.meta.url).pathname;

function count(hay: string, needle: string): number {
  return hay.split(needle).length - 1;
}

const textFiller: FillerSpec = {
  kind: "text",
  docs: [{ name: "t.txt", bytes: enc.encode("In 1812 the army marched. It was cold!\nThey walked 40 miles a day? Yes. ".repeat(30)) }],
};

describe("passkey: samples", () => {
  const fillers: [string, FillerSpec][] = [["classic", { kind: "classic" }], ["random", { kind: "random" }], ["text", textFiller]];
  for (const [name, filler] of fillers) {
    test(`${name} filler: exact length, one needle at the right depth, question at the end`, () => {
      for (const length of [FIXED_BYTES, 300, 1024, 4096]) {
        for (const depth of PASSKEY_DEPTHS) {
          const s = passkeySample({ key: keyAt(key, length, depth * 100), length, depth, filler });
          const text = dec.decode(s.prompt);
          expect(s.prompt.length).toBe(length);
          expect(s.passkey).toMatch(/^[1-9]\d{4}$/);
          const needle = needleText(s.passkey);
          expect(count(text, needle)).toBe(1);
          expect(text.indexOf(needle)).toBe(s.needleStart);
          expect(s.needleEnd - s.needleStart).toBe(needle.length);
          expect(text.endsWith(QUESTION)).toBe(true);
          expect(s.fillerBytes).toBe(length - needle.length - QUESTION.length);
          // the passkey is the only number in the prompt (text filler digits are masked)
          expect(text.match(/\d+/g)).toEqual([s.passkey, s.passkey]);
          // depth: the needle sits at the sentence boundary nearest to depth × filler length
          const target = depth * s.fillerBytes;
          expect(Math.abs(s.needleStart - target)).toBeLessThanOrEqual(name === "text" ? 45 : 70);
          if (depth === 0) expect(s.needleStart).toBe(0);
          if (s.needleStart > 0) expect(text[s.needleStart - 1]).toMatch(/[ \n]/);
        }
      }
    });
  }

  test("classic filler is the classic sentence cycle", () => {
    const s = passkeySample({ key, length: 2000, depth: 1 });
    const filler = dec.decode(s.prompt.subarray(0, s.needleStart));
    const doubled = CLASSIC_FILLER + CLASSIC_FILLER;
    expect(doubled).toContain(filler.slice(0, CLASSIC_FILLER.length));
    expect(filler.split(". ").every((x) => ["The grass is green", "The sky is blue", "The sun is yellow", "Here we go", "There and back again", ""].includes(x.replace(/\.$/, "")))).toBe(true);
  });

  test("deterministic from the key; different keys give different samples", () => {
    const a = passkeySample({ key, length: 1500, depth: 0.5, filler: { kind: "random" } });
    const b = passkeySample({ key, length: 1500, depth: 0.5, filler: { kind: "random" } });
    const c = passkeySample({ key: keyAt(key, 1), length: 1500, depth: 0.5, filler: { kind: "random" } });
    expect(Array.from(a.prompt)).toEqual(Array.from(b.prompt));
    expect(Array.from(a.prompt)).not.toEqual(Array.from(c.prompt));
  });

  test("bad lengths and depths are errors naming the limit", () => {
    expect(() => passkeySample({ key, length: FIXED_BYTES - 1, depth: 0 })).toThrow(`length must be an integer >= ${FIXED_BYTES}`);
    expect(() => passkeySample({ key, length: 500, depth: 1.5 })).toThrow("depth must be in [0, 1], got 1.5");
  });

  test("the grid: lengths × depths × samples, cells independent of the other lengths", () => {
    const items = [...passkeyGrid({ key, lengths: [256, 512], depths: [0, 0.5, 1], samples: 2 })];
    expect(items).toHaveLength(12);
    expect(items.map((i) => i.sample.length)).toEqual([...Array(6).fill(256), ...Array(6).fill(512)]);
    const only512 = [...passkeyGrid({ key, lengths: [512], depths: [0.5], samples: 2 })];
    const same = items.filter((i) => i.sample.length === 512 && i.sample.depth === 0.5);
    expect(only512.map((i) => i.sample.passkey)).toEqual(same.map((i) => i.sample.passkey));
  });
});

describe("passkey: scoring", () => {
  test("exact match of the leading digits of up to 10 decoded tokens", () => {
    expect(scorePasskey("12345", "12345")).toEqual({ correct: true, predicted: "12345" });
    expect(scorePasskey(" 12345. Remember", "12345").correct).toBe(true);
    expect(scorePasskey(enc.encode("12345\n"), "12345").correct).toBe(true);
    expect(scorePasskey("1234", "12345")).toEqual({ correct: false, predicted: "1234" });
    expect(scorePasskey("123456", "12345").correct).toBe(false);
    expect(scorePasskey("The key", "12345")).toEqual({ correct: false, predicted: "" });
    expect(scorePasskey("      12345", "12345").correct).toBe(false); // the digits end past token 10
    expect(scorePasskey(Array.from(enc.encode("    12345")), "12345").correct).toBe(true);
  });
});

describe("passkey: training batches", () => {
  test("inputs/targets shifted by one, the loss mask on exactly the 5 answer digits", () => {
    const L = 256;
    const b = passkeyTrainingBatch({ key, step: 3, batch: 4, seqLen: L });
    expect(b.inputs).toHaveLength(4 * L);
    for (let r = 0; r < 4; r++) {
      const inp = b.inputs.subarray(r * L, (r + 1) * L);
      const tgt = b.targets.subarray(r * L, (r + 1) * L);
      const m = b.mask.subarray(r * L, (r + 1) * L);
      expect(Array.from(inp.subarray(1))).toEqual(Array.from(tgt.subarray(0, L - 1)));
      expect(m.reduce((a, x) => a + x, 0)).toBe(5);
      const answer = Array.from(tgt).filter((_, t) => m[t] === 1);
      expect(dec.decode(Uint8Array.from(answer))).toBe(b.passkeys[r]);
      expect(Array.from(m.subarray(L - 5))).toEqual([1, 1, 1, 1, 1]);
      expect(dec.decode(Uint8Array.from(inp))).toContain(needleText(b.passkeys[r]));
      expect(dec.decode(Uint8Array.from(inp.subarray(0, L - 4)))).toMatch(/The pass key is $/);
      expect(b.depths[r]).toBeGreaterThanOrEqual(0);
      expect(b.depths[r]).toBeLessThan(1);
    }
  });

  test("a pure function of (key, step)", () => {
    const a = passkeyTrainingBatch({ key, step: 9, batch: 2, seqLen: 128, filler: { kind: "random" } });
    const b = passkeyTrainingBatch({ key, step: 9, batch: 2, seqLen: 128, filler: { kind: "random" } });
    const c = passkeyTrainingBatch({ key, step: 10, batch: 2, seqLen: 128, filler: { kind: "random" } });
    expect(Array.from(a.inputs)).toEqual(Array.from(b.inputs));
    expect(a.passkeys).toEqual(b.passkeys);
    expect(a.passkeys).not.toEqual(c.passkeys);
    expect(() => passkeyTrainingBatch({ key, step: 0, batch: 1, seqLen: 50 })).toThrow(/seqLen must be an integer >= \d+/);
  });
});

/** Synthetic books: paragraphs of sentences, each paragraph with its own invented word. */
function syntheticBooks(nPar: number): TextDoc[] {
  const word = (i: number) => {
    let s = "";
    for (let n = i + 26; n > 0; n = Math.floor(n / 26)) s = String.fromCharCode(97 + (n % 26)) + s;
    return s;
  };
  const books: TextDoc[] = [];
  for (let b = 0; b < 3; b++) {
    const pars: string[] = [];
    for (let p = b; p < nPar; p += 3) {
      const w = word(p);
      pars.push(`The traveller named ${w} walked along the\nriver for a while. Then ${w} sat down under an old tree and watched the water.\n` +
        `Nobody else in the valley knew where ${w} had come from, and nobody asked. In the evening the wind turned cold and ${w} went home.`);
    }
    books.push({ name: `book${b}.txt`, bytes: enc.encode(pars.join("\n\n")) });
  }
  return books;
}

describe("docret", () => {
  const paragraphs = paragraphsOf(syntheticBooks(240));

  test("paragraphs: whitespace collapsed, prose only, unique", () => {
    expect(paragraphs).toHaveLength(240);
    expect(paragraphs.every((p) => !p.text.includes("\n") && p.text.length >= 200 && p.text.length <= 1000)).toBe(true);
    const withTable = paragraphsOf([{ name: "x", bytes: enc.encode(`${"1 2 3 4 5 6 7 8 9 0 ".repeat(20)}. A. B.`) }]);
    expect(withTable).toHaveLength(0);
    expect(sentencesOf('He said "go." Then he left! Why? ok')).toEqual(['He said "go."', "Then he left!", "Why?"]);
  });

  for (const k of DOCRET_KS) {
    test(`k = ${k}: k + 1 documents with distinct ids, the gold id once, the query only in the gold document`, () => {
      const s = docretSample({ key: keyAt(key, k), paragraphs, k });
      const lines = s.prompt.split("\n");
      const docLines = lines.filter((l) => l.startsWith("[Doc "));
      expect(docLines).toHaveLength(k + 1);
      expect(new Set(s.ids).size).toBe(k + 1);
      expect(count(s.prompt, `[Doc ${s.goldId}]`)).toBe(1);
      expect(s.ids[s.goldPosition]).toBe(s.goldId);
      expect(docLines[s.goldPosition].startsWith(`[Doc ${s.goldId}] `)).toBe(true);
      const holders = docLines.filter((l) => l.includes(s.query));
      expect(holders).toEqual([docLines[s.goldPosition]]);
      expect(s.prompt.endsWith(`Question: Which document contains the sentence "${s.query}"? Answer: [Doc `)).toBe(true);
      expect(s.answer).toBe(String(s.goldId));
      expect(dec.decode(s.bytes)).toBe(s.prompt);
      expect(s.query.length).toBeGreaterThanOrEqual(30);
    });
  }

  test("first-words queries, determinism, and the gold position varies", () => {
    const s = docretSample({ key, paragraphs, k: 10, query: "first-words" });
    expect(s.prompt).toContain(`Which document begins with "${s.query}"?`);
    expect(s.docs[s.goldPosition].text.startsWith(s.query)).toBe(true);
    const a = docretSamples({ key, paragraphs, k: 20, count: 8 });
    const b = docretSamples({ key, paragraphs, k: 20, count: 8 });
    expect(a.map((x) => x.prompt)).toEqual(b.map((x) => x.prompt));
    expect(new Set(a.map((x) => x.goldPosition)).size).toBeGreaterThan(3);
    expect(() => docretSample({ key, paragraphs: paragraphs.slice(0, 5), k: 10 })).toThrow("k = 10 needs at least 11 paragraphs, only 5 given");
  });

  test("last-words queries: each id written after its document, right after the quoted words", () => {
    for (const k of [1, 10]) {
      const s = docretSample({ key: keyAt(key, 7, k), paragraphs, k, query: "last-words" });
      const [docPart, question] = s.prompt.split("\n\n");
      const lines = docPart.split("\n");
      expect(lines).toHaveLength(k + 1);
      lines.forEach((l, j) => expect(l).toBe(`${s.docs[j].text} [Doc ${s.ids[j]}]`));
      expect(s.docs[s.goldPosition].text.endsWith(s.query)).toBe(true);
      expect(s.query.split(" ")).toHaveLength(8);
      // the gold id follows the quoted words, and only the gold document ends with them
      expect(lines.filter((l) => l.includes(`${s.query} [Doc `))).toEqual([`${s.docs[s.goldPosition].text} [Doc ${s.goldId}]`]);
      expect(question).toBe(`Question: Which document ends with "${s.query}"? Answer: [Doc `);
    }
    expect(() => docretSample({ key, paragraphs, k: 2, query: "middle" as never })).toThrow('query must be one of sentence, first-words, last-words, echo, got "middle"');
    const b = docretTrainingBatch({ key, step: 1, batch: 3, seqLen: 2600, paragraphs, ks: [1, 2], query: "last-words" });
    for (let r = 0; r < 3; r++) {
      const { start, end } = b.answerSpans[r];
      const prompt = dec.decode(Uint8Array.from(Array.from(b.inputs.subarray(r * 2600, r * 2600 + start + 1))));
      expect(prompt).toContain(` [Doc ${b.goldIds[r]}]`);
      expect(prompt).not.toContain(`[Doc ${b.goldIds[r]}] `); // never before a text
      expect(prompt.endsWith("? Answer: [Doc ")).toBe(true);
      expect(dec.decode(Uint8Array.from(Array.from(b.targets.subarray(r * 2600 + start, r * 2600 + end))))).toBe(`${b.goldIds[r]}]`);
    }
  });

  test("echo queries: the answer repeats the quoted words, so the prompt ends with the bytes before the gold id", () => {
    for (const k of [1, 10]) {
      const s = docretSample({ key: keyAt(key, 7, k), paragraphs, k, query: "echo" });
      const l = docretSample({ key: keyAt(key, 7, k), paragraphs, k, query: "last-words" });
      // the same documents, ids and quote as last-words; only the answer's opening differs
      expect(s.ids).toEqual(l.ids);
      expect(s.query).toBe(l.query);
      const [docPart, question] = s.prompt.split("\n\n");
      expect(docPart).toBe(l.prompt.split("\n\n")[0]);
      expect(question).toBe(`Question: Which document ends with "${s.query}"? Answer: ${s.query} [Doc `);
      // the prompt's last 8 words and " [Doc " occur in the documents once: right before the gold id
      const tail = `${s.query} [Doc `;
      const at = docPart.indexOf(tail);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(docPart.indexOf(tail, at + 1)).toBe(-1);
      expect(docPart.slice(at + tail.length).startsWith(`${s.goldId}]`)).toBe(true);
    }
    const b = docretTrainingBatch({ key, step: 1, batch: 2, seqLen: 2600, paragraphs, ks: [1, 2], query: "echo" });
    for (let r = 0; r < 2; r++) {
      const { start, end } = b.answerSpans[r];
      const prompt = dec.decode(Uint8Array.from(Array.from(b.inputs.subarray(r * 2600, r * 2600 + start + 1))));
      expect(prompt.endsWith(" [Doc ")).toBe(true);
      expect(prompt).not.toContain("? Answer: [Doc ");
      expect(dec.decode(Uint8Array.from(Array.from(b.targets.subarray(r * 2600 + start, r * 2600 + end))))).toBe(`${b.goldIds[r]}]`);
    }
  });

  test("scoring: exact match of the leading integer", () => {
    expect(scoreDocret("17]", 17)).toEqual({ correct: true, predicted: 17 });
    expect(scoreDocret(" 17] is it", 17).correct).toBe(true);
    expect(scoreDocret(enc.encode("170]"), 17).correct).toBe(false);
    expect(scoreDocret("017]", 17).correct).toBe(false);
    expect(scoreDocret("none", 17).correct).toBe(false);
    expect(scoreDocret("none", 17).predicted).toBeNaN();
  });

  test("training batches: one sample a row from position 0, the id and the stop the scored targets, zeros after", () => {
    const L = 2600;
    const b = docretTrainingBatch({ key, step: 3, batch: 6, seqLen: L, paragraphs, ks: [1, 2, 3] });
    expect([b.inputs.length, b.targets.length, b.mask.length, b.answerSpans.length]).toEqual([6 * L, 6 * L, 6 * L, 6]);
    for (let r = 0; r < 6; r++) {
      const { start, end } = b.answerSpans[r];
      const row = (a: Int32Array | Float32Array) => Array.from(a.subarray(r * L, (r + 1) * L));
      const [inp, tgt, m] = [row(b.inputs), row(b.targets), row(b.mask)];
      // the prompt as the evaluation builds it: the same sample from the row's key
      const prompt = dec.decode(Uint8Array.from(inp.slice(0, start + 1)));
      expect(prompt.startsWith("[Doc ")).toBe(true);
      expect(prompt.endsWith("? Answer: [Doc ")).toBe(true);
      expect(prompt.split("\n").filter((l) => l.startsWith("[Doc "))).toHaveLength(b.ks[r] + 1);
      expect([1, 2, 3]).toContain(b.ks[r]);
      expect(dec.decode(Uint8Array.from(tgt.slice(start, end)))).toBe(`${b.goldIds[r]}${DOCRET_STOP}`);
      expect(prompt).toContain(`[Doc ${b.goldIds[r]}] `);
      for (let t = 0; t + 1 < end; t++) expect(tgt[t]).toBe(inp[t + 1]); // targets: the inputs shifted by one
      expect(m.map((w, t) => (t >= start && t < end ? w === 1 : w === 0)).every(Boolean)).toBe(true);
      expect(inp.slice(end).every((v) => v === 0) && tgt.slice(end).every((v) => v === 0)).toBe(true);
    }
    expect(new Set(b.ks).size).toBeGreaterThan(1);
    // a pure function of (key, step); another step, other samples
    expect(docretTrainingBatch({ key, step: 3, batch: 6, seqLen: L, paragraphs, ks: [1, 2, 3] }).inputs).toEqual(b.inputs);
    expect(docretTrainingBatch({ key, step: 4, batch: 6, seqLen: L, paragraphs, ks: [1, 2, 3] }).goldIds).not.toEqual(b.goldIds);
  });

  test("training batches: every byte weighted with otherWeight; a row too short for k drops to a smaller k, then is an error", () => {
    const L = 1400;
    const b = docretTrainingBatch({ key, step: 0, batch: 4, seqLen: L, paragraphs, ks: [1, 6], query: "first-words", answerWeight: 5, otherWeight: 1 });
    expect(b.ks.every((k) => k === 1)).toBe(true); // 7 documents of ≥ 200 bytes never fit in 1,400
    for (let r = 0; r < 4; r++) {
      const { start, end } = b.answerSpans[r];
      const m = Array.from(b.mask.subarray(r * L, (r + 1) * L));
      expect(m.slice(0, start).every((w) => w === 1) && m.slice(start, end).every((w) => w === 5) && m.slice(end).every((w) => w === 0)).toBe(true);
      expect(dec.decode(Uint8Array.from(Array.from(b.inputs.subarray(r * L, r * L + start + 1))))).toContain("Which document begins with");
    }
    expect(() => docretTrainingBatch({ key, step: 0, batch: 2, seqLen: 300, paragraphs, ks: [1] })).toThrow(/seqLen 300 is too short for k = 1: 8 samples of row 0 needed at least \d+ tokens \(raise the sequence length\)/);
    expect(() => docretTrainingBatch({ key, step: 0, batch: 2, seqLen: 300, paragraphs, ks: [2, 3] })).toThrow("(raise the sequence length or lower k)");
    expect(() => docretTrainingBatch({ key, step: 0, batch: 2, seqLen: L, paragraphs, ks: [] })).toThrow("ks must be positive integers, got []");
    expect(() => docretTrainingBatch({ key, step: 0, batch: 2, seqLen: L, paragraphs, ks: [0] })).toThrow("ks must be positive integers, got [0]");
    expect(() => docretTrainingBatch({ key, step: 0, batch: 2, seqLen: L, paragraphs, ks: [1], otherWeight: -1 })).toThrow("must be finite, >= 0 and not both 0");
  });

  test("the shared books give thousands of paragraphs and valid k = 200 samples", () => {
    if (!existsSync(BOOKS)) return;
    const books = loadTexts(BOOKS).slice(0, 10);
    const ps = paragraphsOf(books);
    expect(ps.length).toBeGreaterThan(1000);
    const s = docretSample({ key, paragraphs: ps, k: 200 });
    expect(s.prompt.split("\n").filter((l) => l.startsWith("[Doc "))).toHaveLength(201);
    expect(count(s.prompt, `[Doc ${s.goldId}]`)).toBe(1);
  });
});
