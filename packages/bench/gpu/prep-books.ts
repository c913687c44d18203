/**
 * Writes the books' text, cut to what lies between the Gutenberg START and END markers
 * (memmamba/src/data/text.ts cutGutenberg), into a git-ignored folder, one `<id>.txt` a book,
 * so that the GPU machine — where ../shared/data is absent — can read them:
 *
 *   bun packages/bench/gpu/prep-books.ts [--from ../shared/data/books] [--to runs/books]
 *
 * The names stay, so `splitTexts` there finds the six held-out books and makes the same split
 * (train / validation) as on this machine. experiments.sh's `--pack-data` compresses the folder
 * (runs/books.tar.xz, about a third of its size) for the 64 MiB that travel there.
 * The book texts themselves are never committed (runs/ is git-ignored).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { cutGutenberg, loadTexts, splitTexts } from "@memmamba/memmamba";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write("usage: bun packages/bench/gpu/prep-books.ts [--from ../shared/data/books] [--to runs/books]\n");
  process.exit(0);
}
const from = opt("--from", "../shared/data/books");
const to = opt("--to", "runs/books");
const docs = loadTexts(from); // cut
mkdirSync(to, { recursive: true });
let bytes = 0;
for (const d of docs) {
  // a second cut must change nothing, or loading the written file would lose text
  if (cutGutenberg(d.bytes).length !== d.bytes.length) throw new Error(`${d.name}: the cut text still holds a START/END marker line`);
  writeFileSync(join(to, d.name), d.bytes);
  bytes += d.bytes.length;
}
const s = splitTexts(docs);
const sum = (xs: { bytes: Uint8Array }[]) => xs.reduce((a, d) => a + d.bytes.length, 0);
process.stdout.write(
  `prep-books: ${docs.length} books, ${(bytes / 2 ** 20).toFixed(1)} MiB of book text to ${to} ` +
    `(${s.train.length} train ${(sum(s.train) / 2 ** 20).toFixed(1)} MiB, ${s.validation.length} validation ${(sum(s.validation) / 2 ** 20).toFixed(1)} MiB; ${s.rule})\n`,
);
