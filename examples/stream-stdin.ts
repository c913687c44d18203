/**
 * Streams standard input through a MemMamba language model in constant memory: the bytes go in
 * chunk by chunk (the chunked mode, carrying the recurrent state and the note pools from one chunk
 * to the next), each chunk's bits per byte is printed as it is scored, and at the end the model
 * continues the text greedily.
 *
 *   cat book.txt | bun examples/stream-stdin.ts [model.safetensors] [--chunk N] [--continue N]
 *   deno run -A examples/stream-stdin.ts [...] < book.txt
 *
 * The model: the file given (a training checkpoint or a weights file), else the shipped MemMamba
 * weights under weights/ (not the Mamba baseline beside them), else a fresh, untrained tiny model
 * (about 8 bits per byte: it knows nothing; the point is then the mechanics). Memory stays flat
 * whatever the input's length: only the state (conv buffers, SSM states, pools) and one chunk's
 * logits are alive at a time.
 */
import process from "node:process";
import { disposeTree, fromArray, random, tidy } from "@memmamba/tensor";
import { lm, preset, StepCache, type LMParams, type LMState } from "@memmamba/memmamba";
import { loadModelSource } from "./model-source.ts";

export interface ChunkReport {
  /** Index of the chunk, its first byte's offset in the stream and its length. */
  index: number;
  offset: number;
  bytes: number;
  /** Mean −log2 p(byte) over the chunk's scored bytes (every byte but the stream's first). */
  bitsPerByte: number;
  scored: number;
}

export interface StreamResult {
  chunks: ChunkReport[];
  totalBytes: number;
  /** Over the whole stream. */
  bitsPerByte: number;
  /** The greedy continuation's bytes. */
  continuation: Uint8Array;
}

export interface StreamOptions {
  /** Bytes per model call (default 512). */
  chunk?: number;
  /** Greedy continuation length in bytes (default 80). */
  continueBytes?: number;
  onChunk?: (r: ChunkReport) => void;
}

/** −log2 softmax(row)[target], on the host. */
function bits(row: Float32Array, target: number): number {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return (Math.log(s) + m - row[target]) / Math.LN2;
}

/**
 * Re-chunks an async byte source into pieces of exactly `size` bytes (the last may be shorter).
 * Stdin arrives in whatever pieces the OS hands over; fixed chunks make the report readable.
 */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(0);
  for await (const piece of source) {
    const joined = new Uint8Array(buf.length + piece.length);
    joined.set(buf);
    joined.set(piece, buf.length);
    let off = 0;
    for (; joined.length - off >= size; off += size) yield joined.slice(off, off + size);
    buf = joined.slice(off);
  }
  if (buf.length) yield buf;
}

/** Streams `source` through the model (batch 1); see the module note. */
export async function streamThrough(params: LMParams, source: AsyncIterable<Uint8Array>, opts: StreamOptions = {}): Promise<StreamResult> {
  const chunk = opts.chunk ?? 512, want = opts.continueBytes ?? 80;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`streamThrough: chunk must be a positive integer, got ${chunk}`);
  if (params.config.kind === "transformer") throw new Error("streamThrough: the transformer baseline has no recurrent state to stream with");
  const V = params.config.vocab;
  let state: LMState = lm.initState(params.config, 1);
  let last: Float32Array | undefined; // the logits after the latest byte
  const chunks: ChunkReport[] = [];
  let total = 0, sumBits = 0, scoredAll = 0;
  const cache = new StepCache(); // the parameters' folded weights, computed once for the steps
  try {
    for await (const piece of rechunk(source, chunk)) {
      const n = piece.length;
      const r = tidy(() => lm.applyChunked(params, fromArray(Int32Array.from(piece), [1, n], "i32"), { chunk: n }, state));
      disposeTree(state);
      state = r.state;
      const logits = Float32Array.from(await r.logits.data());
      r.logits.dispose();
      let sum = 0, scored = 0;
      if (last) {
        sum += bits(last, piece[0]);
        scored++;
      }
      for (let i = 0; i + 1 < n; i++, scored++) sum += bits(logits.subarray(i * V, (i + 1) * V), piece[i + 1]);
      last = logits.slice((n - 1) * V, n * V);
      const rep: ChunkReport = { index: chunks.length, offset: total, bytes: n, bitsPerByte: scored ? sum / scored : NaN, scored };
      chunks.push(rep);
      opts.onChunk?.(rep);
      total += n;
      sumBits += sum;
      scoredAll += scored;
    }
    const continuation: number[] = [];
    while (last && continuation.length < want) {
      let best = 0;
      for (let i = 1; i < V; i++) if (last[i] > last[best]) best = i;
      continuation.push(best);
      if (continuation.length === want) break;
      const r = tidy(() => lm.step(params, fromArray(Int32Array.of(best), [1], "i32"), state, { cache }));
      disposeTree(state);
      state = r.state;
      last = Float32Array.from(await r.logits.data());
      r.logits.dispose();
    }
    return { chunks, totalBytes: total, bitsPerByte: scoredAll ? sumBits / scoredAll : NaN, continuation: Uint8Array.from(continuation) };
  } finally {
    disposeTree(state);
    cache.dispose();
  }
}

/** Standard input as an async byte source, in Bun, Deno and Node alike. */
export function stdinBytes(): AsyncIterable<Uint8Array> {
  return process.stdin as unknown as AsyncIterable<Uint8Array>;
}

export const HELP = `usage: stream-stdin.ts [MODEL.safetensors] [--chunk N] [--continue N] < text
Streams stdin through a MemMamba model in constant memory; prints each chunk's bits per byte and
the model's greedy continuation.
  MODEL          a training checkpoint or weights file (default: the MemMamba among
                 weights/*.safetensors, else a fresh untrained tiny model)
  --chunk N      bytes per chunk (default 512)
  --continue N   bytes of greedy continuation (default 80)
  --seed N       the fresh model's seed (default 0)
  --help`;

export interface Args {
  model?: string;
  chunk: number;
  continueBytes: number;
  seed: number;
}

/** Parses the command line; null means --help. Errors name the flag. */
export function parseArgs(argv: readonly string[]): Args | null {
  const a: Args = { chunk: 512, continueBytes: 80, seed: 0 };
  const int = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (v === undefined || v === "" || !Number.isSafeInteger(n) || n < min) throw new Error(`--${name} needs an integer >= ${min}, got ${v === undefined ? "nothing" : `"${v}"`}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const [name, inline] = arg.startsWith("--") && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (name === "--help" || name === "-h") return null;
    else if (name === "--chunk") a.chunk = int("chunk", inline ?? argv[++i], 1);
    else if (name === "--continue") a.continueBytes = int("continue", inline ?? argv[++i], 0);
    else if (name === "--seed") a.seed = int("seed", inline ?? argv[++i], 0);
    else if (name.startsWith("-")) throw new Error(`unknown argument "${arg}"`);
    else if (a.model === undefined) a.model = arg;
    else throw new Error(`one model file only, got "${a.model}" and "${arg}"`);
  }
  return a;
}

/** Printable text of bytes (control bytes other than newline and tab as \xNN). */
function show(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** The whole program, for the command line and the tests. */
export async function main(args: Args, source: AsyncIterable<Uint8Array>, log: (line: string) => void = console.log, weightsDir?: string): Promise<StreamResult> {
  const found = loadModelSource(args.model, weightsDir);
  const params = found?.params ?? lm.init(random.key(args.seed), preset("tiny"));
  log(`model: ${found?.source ?? `fresh untrained tiny model (seed ${args.seed}; no file given, no weights/*.safetensors)`}`);
  try {
    const r = await streamThrough(params, source, {
      chunk: args.chunk,
      continueBytes: args.continueBytes,
      onChunk: (c) => log(`chunk ${String(c.index).padStart(4)}  bytes ${c.offset}..${c.offset + c.bytes}  ${Number.isNaN(c.bitsPerByte) ? "   (nothing scored)" : `${c.bitsPerByte.toFixed(3)} bits/byte`}`),
    });
    if (r.totalBytes === 0) log("stdin was empty: nothing to stream");
    else {
      log(`${r.totalBytes} bytes, ${r.bitsPerByte.toFixed(3)} bits/byte overall`);
      log(`continuation: ${show(r.continuation)}`);
    }
    return r;
  } finally {
    disposeTree(params);
  }
}

if (import.meta.main) {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const argv: string[] = deno ? [...deno.args] : process.argv.slice(2);
  let args: Args | null;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`stream-stdin: ${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (!args) console.log(HELP);
  else {
    try {
      await main(args, stdinBytes());
    } catch (e) {
      console.error(`stream-stdin: ${(e as Error).message}`);
      process.exit(1);
    }
  }
}
