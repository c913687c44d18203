// Rebuilds `eval docret`'s samples (its default seed, 123) and joins them with a run's predictions:
// where each answered id stands among the prompt's documents (0 = first). Session 29, for the run9
// eval files, which predate eval's own `predictedPosition`. From the repository root:
//   bun results/docret-small/run9-recall-then-docret-h200/positions.ts <eval-docret.json> runs/books
import { readFileSync } from "node:fs";
import { random } from "@memmamba/tensor";
import { docretSamples, loadTexts, paragraphsOf, splitTexts } from "@memmamba/memmamba";
const [file, data] = [process.argv[2], process.argv[3]];
interface Result { k: number; goldId: number; predicted: number }
const r = JSON.parse(readFileSync(file, "utf8")) as { docretChars: [number, number]; query: "echo"; rows: { k: number; accuracy: number; samples: number }[]; results: Result[] };
const docs = splitTexts(loadTexts(data)).validation;
const paragraphs = paragraphsOf(docs, { minChars: r.docretChars[0], maxChars: r.docretChars[1] });
console.log(`paragraphs ${paragraphs.length}`);
for (const row of r.rows) {
  const samples = docretSamples({ key: random.key(123), paragraphs, k: row.k, count: row.samples, query: r.query });
  const res = r.results.filter((x) => x.k === row.k);
  let inPrompt = 0, last = 0;
  const desc: string[] = [];
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i], p = res[i];
    if (s.goldId !== p.goldId) throw new Error(`sample ${i} of k ${row.k}: gold ${s.goldId} here, ${p.goldId} in the file`);
    const at = s.ids.indexOf(p.predicted);
    if (at >= 0) inPrompt++;
    if (at === s.ids.length - 1) last++;
    desc.push(`${at >= 0 ? at : "-"}/${s.goldPosition}`);
  }
  console.log(`k ${row.k}: accuracy ${row.accuracy} in prompt ${inPrompt}/${samples.length}, the last document ${last}; predicted/gold positions ${desc.join(" ")}`);
}
