/**
 * The passkey filler's book split (`splitPart`): training takes the training books, evaluation
 * the held-out ones, so the filler a model is evaluated on is text it never saw.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { splitPart, splitTexts, type TextDoc } from "../src/data/text.ts";
import { makeFiller } from "../src/tasks/passkey.ts";
import { HostRng } from "../src/data/rng.ts";
import { random } from "@memmamba/tensor";

const enc = new TextEncoder();
/** A document of one repeated letter, so any filler byte tells which document it came from. */
const doc = (name: string, letter: string, n: number): TextDoc => ({ name, bytes: enc.encode(`${letter.repeat(7)}. `.repeat(n)) });

describe("passkey filler split", () => {
  const docs = [doc("a.txt", "a", 50), doc("b.txt", "b", 60), doc("c.txt", "c", 400), doc("d.txt", "d", 70)];

  test("train and validation are disjoint, cover every document, and agree with splitTexts", () => {
    const tr = splitPart(docs, "train");
    const va = splitPart(docs, "validation");
    const all = splitPart(docs, "all");
    const s = splitTexts(docs);
    expect(tr.docs.map((d) => d.name)).toEqual(s.train.map((d) => d.name));
    expect(va.docs.map((d) => d.name)).toEqual(["c.txt"]); // the longest of 4 held out
    expect([...tr.docs, ...va.docs].map((d) => d.name).sort()).toEqual(docs.map((d) => d.name));
    expect(all.docs.map((d) => d.name)).toEqual(docs.map((d) => d.name));
    expect(tr.rule).toMatch(/^train split: /);
    expect(() => splitPart(docs, "test" as never)).toThrow(/train, validation or all/);
  });

  test("filler drawn from one part holds only that part's text", () => {
    for (const [part, allowed] of [["train", "abd. "], ["validation", "c. "]] as const) {
      const spec = { kind: "text" as const, docs: splitPart(docs, part).docs };
      for (let s = 0; s < 20; s++) {
        const f = makeFiller(spec, new HostRng(random.key(s)), 3000);
        const seen = new Set(new TextDecoder().decode(f));
        for (const ch of seen) expect(allowed.includes(ch)).toBe(true);
      }
    }
  });
});
