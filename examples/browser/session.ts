/**
 * The demo page's model side, free of the DOM (so Bun and Deno test it too): load a model (a
 * checkpoint's bytes, or a fresh tiny one), stream bytes through it one at a time in recurrent
 * mode (`lm.step` with `trace: true`), and keep on the host what the page draws:
 *
 * - the next-byte distribution after each byte (top 5), and the bits the byte cost;
 * - per layer, which token positions the note pool holds, slot by slot, mirrored from the trace
 *   (a slot's note leaves where `evicted` says, a new note is appended where `accepted` says:
 *   packages/memmamba/test/stream-trace.test.ts holds this mirror equal to the pool state);
 * - the cross-token attention weights each byte put on the slots it read;
 * - the events: note written, note evicted, note rejected (priority pool, full, lowest score).
 *
 * Each step reads everything back in one transfer (logits and the trace concatenated), since on
 * WebGPU every readback is a round trip.
 */
import { cast, concat, disposeTree, random, reshape, tidy, fromArray, type Tensor } from "@memmamba/tensor";
import {
  lm, parseConfig, passkeySample, preset, scorePasskey, StepCache, type LayerTrace, type LMParams, type LMState, type ModelConfig,
} from "@memmamba/memmamba";
// The decoders of our two file kinds, by path: @memmamba/cli's index also exports the CLI's
// commands, which use node: modules; checkpoint.ts (with atomic-write.ts) and weights.ts use them
// only in their file functions, which the page never calls (the build stubs them: build.ts).
import { hostToTree } from "../../packages/cli/src/checkpoint.ts";
import { decodeModelFile } from "../../packages/cli/src/weights.ts";

/** A byte the model predicts next, with its probability. */
export interface Prediction {
  byte: number;
  p: number;
}

/** One pool slot: the token position whose note it holds (= the step it was written at). */
export interface Slot {
  pos: number;
  byte: number;
  /** I_token when it was written. */
  score: number;
}

/** What happened in one layer's pool at one step. */
export interface LayerStep {
  /** The slots the byte read (the pool before its own note went in), oldest first. */
  read: Slot[];
  /** Attention weights on `read`, one per slot (0 where the pool was empty). */
  attention: number[];
  /** I_token of this byte, and whether it was written, accepted, and which note left for it. */
  tokenScore: number;
  written: boolean;
  accepted: boolean;
  evicted?: Slot;
  /** I_state and whether the read gate was open (the read reached the residual stream). */
  stateScore: number;
  readGate: boolean;
}

export interface StepView {
  /** The position of the byte just fed (0-based). */
  t: number;
  byte: number;
  /** −log2 p(byte) under the prediction made before it (undefined for the first byte). */
  bits?: number;
  /** The 5 most likely next bytes. */
  top: Prediction[];
  /** Per layer with memory (empty for a plain Mamba). */
  layers: LayerStep[];
}

/** A pool event for the log. */
export interface PoolEvent {
  t: number;
  layer: number;
  kind: "write" | "evict" | "reject";
  /** The position of the note concerned (for "evict", the one that left). */
  pos: number;
}

export interface LoadedDemoModel {
  params: LMParams;
  /** A line for the page: where the model came from. */
  source: string;
}

/** The fresh model's config: the tiny preset with a 16-slot pool, so the heatmap has rows. */
export function demoConfig(): ModelConfig {
  return preset("tiny", { memory: { poolSize: 16 } });
}

/** A fresh (untrained) tiny model, randomly initialised from `seed`. */
export function freshModel(seed = 0, config: ModelConfig = demoConfig()): LoadedDemoModel {
  return { params: lm.init(random.key(seed), config), source: `fresh tiny model (random init, seed ${seed})` };
}

/**
 * A model from the bytes of a .safetensors file the CLI wrote: a training checkpoint
 * (packages/cli/src/checkpoint.ts) or a shipped weights file (packages/cli/src/weights.ts).
 * Errors name `name` and what is wrong.
 */
export function modelFromCheckpoint(bytes: Uint8Array, name: string): LoadedDemoModel {
  const ck = decodeModelFile(bytes, name);
  let config: ModelConfig;
  try {
    config = parseConfig(ck.config);
  } catch (e) {
    throw new Error(`${name}: the checkpoint's config is not a valid model config: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (config.kind === "transformer") throw new Error(`${name}: a transformer baseline has no recurrent state to stream; load a memmamba checkpoint`);
  const template = lm.init(random.key(0), config);
  try {
    return { params: hostToTree(template, ck.weights, name), source: `${name} (step ${ck.step}, ${config.kind}, d=${config.dModel}, ${config.nLayers} layers)` };
  } finally {
    disposeTree(template);
  }
}

function topK(probs: Float32Array, k: number): Prediction[] {
  const idx = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  return idx.slice(0, k).map((byte) => ({ byte, p: probs[byte] }));
}

function softmaxHost(logits: Float32Array): Float32Array {
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  const out = new Float32Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += out[i] = Math.exp(logits[i] - m);
  for (let i = 0; i < out.length; i++) out[i] /= s;
  return out;
}

/** Per memory layer, the trace values packed after the logits: 6 scalars, then P weights. */
const SCALARS = 6;

/** Logits [V] and each layer's trace, as one f32 vector (one readback). */
function packStep(logits: Tensor, trace: readonly LayerTrace[]): Tensor {
  const f = (t: Tensor): Tensor => reshape(t.dtype === "f32" ? t : cast(t, "f32"), [t.size]);
  const parts: Tensor[] = [f(logits)];
  for (const tr of trace) {
    const zero = fromArray(new Float32Array(1), [1]);
    parts.push(
      f(tr.tokenScore), f(tr.write), f(tr.accepted!), f(tr.evicted!),
      tr.stateScore ? f(tr.stateScore) : zero, tr.readGate ? f(tr.readGate) : zero,
    );
    if (tr.attention) parts.push(f(tr.attention));
  }
  return concat(parts, 0);
}

/**
 * A stream of bytes through one model (batch 1), from an empty state. Not reentrant: await each
 * `push` before the next. `dispose()` frees the state and the step cache (not the params, which
 * the caller owns).
 */
export class StreamSession {
  readonly config: ModelConfig;
  readonly poolSize: number;
  /** Per memory layer: the positions its pool holds, in slot order (the host mirror). */
  readonly pools: Slot[][];
  readonly events: PoolEvent[] = [];
  /** Every byte fed so far. */
  readonly bytes: number[] = [];
  /** The distribution over the next byte (after the last byte fed); undefined before the first. */
  next?: Float32Array;
  #state: LMState;
  #memLayers: number;
  /** The parameters' folded weights, kept across pushes (derived.ts). */
  #cache = new StepCache();

  constructor(readonly params: LMParams, readonly maxEvents = 500) {
    this.config = params.config;
    this.#state = lm.initState(this.config, 1);
    const mem = this.config.kind === "memmamba" && this.config.memory.enabled;
    this.#memLayers = mem ? this.config.nLayers : 0;
    this.poolSize = mem ? this.config.memory.poolSize : 0;
    this.pools = Array.from({ length: this.#memLayers }, () => []);
  }

  /** Bytes fed so far. */
  get length(): number {
    return this.bytes.length;
  }

  /** Feeds one byte (0..255); returns what the model did with it. */
  async push(byte: number): Promise<StepView> {
    if (!Number.isInteger(byte) || byte < 0 || byte >= this.config.vocab) {
      throw new RangeError(`StreamSession.push: a byte must be an integer in [0, ${this.config.vocab}), got ${byte}`);
    }
    const t = this.bytes.length;
    const r = tidy(() => {
      const out = lm.step(this.params, fromArray(Int32Array.of(byte), [1], "i32"), this.#state, { trace: this.#memLayers > 0, cache: this.#cache });
      return { packed: packStep(out.logits, out.trace ?? []), state: out.state };
    });
    disposeTree(this.#state);
    this.#state = r.state;
    const data = Float32Array.from(await r.packed.data());
    r.packed.dispose();

    const V = this.config.vocab, P = this.poolSize;
    const bits = this.next ? -Math.log2(Math.max(this.next[byte], 1e-30)) : undefined;
    this.next = softmaxHost(data.subarray(0, V));
    this.bytes.push(byte);
    const layers: LayerStep[] = [];
    const hasAttn = this.#memLayers > 0 && this.config.memory.crossToken;
    let off = V;
    for (let l = 0; l < this.#memLayers; l++) {
      const [tokenScore, write, accepted, evicted, stateScore, gate] = data.subarray(off, off + SCALARS);
      off += SCALARS;
      const attention = hasAttn ? Array.from(data.subarray(off, off + P)) : new Array<number>(P).fill(0);
      if (hasAttn) off += P;
      const pool = this.pools[l];
      const read = pool.slice();
      const step: LayerStep = {
        read, attention: attention.slice(0, read.length), tokenScore, written: write === 1, accepted: accepted === 1,
        stateScore, readGate: gate === 1,
      };
      if (accepted === 1) {
        if (evicted >= 0) {
          step.evicted = pool.splice(evicted, 1)[0];
          this.#event({ t, layer: l, kind: "evict", pos: step.evicted.pos });
        }
        pool.push({ pos: t, byte, score: tokenScore });
        this.#event({ t, layer: l, kind: "write", pos: t });
      } else if (write === 1) {
        this.#event({ t, layer: l, kind: "reject", pos: t });
      }
      layers.push(step);
    }
    return { t, byte, bits, top: topK(this.next, 5), layers };
  }

  #event(e: PoolEvent): void {
    this.events.push(e);
    if (this.events.length > this.maxEvents) this.events.splice(0, this.events.length - this.maxEvents);
  }

  /** The most likely next byte (greedy); throws before the first byte. */
  greedyNext(): number {
    if (!this.next) throw new Error("StreamSession.greedyNext: feed at least one byte first");
    let best = 0;
    for (let i = 1; i < this.next.length; i++) if (this.next[i] > this.next[best]) best = i;
    return best;
  }

  /** Frees the recurrent state (and the values kept from the parameters). */
  dispose(): void {
    disposeTree(this.#state);
    this.#cache.dispose();
  }
}

/** A built-in text for the page (a few paragraphs, so a few hundred tokens stream by). */
export const SAMPLE_TEXT =
  "The note pool is a small memory beside the state. Each layer scores every byte it reads; " +
  "a byte that scores above the threshold writes a short note into the pool, and when the pool " +
  "is full the weakest or the oldest note leaves. Every later byte may read the notes back " +
  "through a softmax over the slots, so a detail from far back can reach the present without " +
  "passing through every step of the recurrence in between. Watch the heatmap: each colour is " +
  "one note, its row is its slot, and its brightness is how much the current byte attends to it.\n";

/** A passkey prompt for the page (packages/memmamba/src/tasks/passkey.ts): classic filler, key hidden at `depth`. */
export function passkeyPrompt(seed: number, length: number, depth: number) {
  return passkeySample({ key: random.key(seed), length, depth, filler: { kind: "classic" } });
}

export interface PasskeyRun {
  passkey: string;
  /** The model's greedy continuation after the prompt (10 bytes), as text. */
  answer: string;
  correct: boolean;
  predicted: string;
  /** Per memory layer: positions inside the needle that the pool holds at the end of the prompt. */
  needleInPool: number[][];
}

/**
 * Streams a passkey prompt through `session` (calling `onStep` after each byte), then decodes
 * greedily; says whether the model found the key and which needle bytes its pools held.
 */
export async function runPasskey(
  session: StreamSession,
  sample: ReturnType<typeof passkeyPrompt>,
  onStep?: (v: StepView) => void | Promise<void>,
  shouldStop?: () => boolean,
): Promise<PasskeyRun | undefined> {
  const start = session.length;
  for (const b of sample.prompt) {
    if (shouldStop?.()) return undefined;
    const v = await session.push(b);
    await onStep?.(v);
  }
  const needleInPool = session.pools.map((pool) =>
    pool.map((s) => s.pos - start).filter((p) => p >= sample.needleStart && p < sample.needleEnd)
  );
  const out: number[] = [];
  for (let i = 0; i < 10; i++) {
    const b = session.greedyNext();
    out.push(b);
    if (i < 9) {
      const v = await session.push(b); // feed the answer back, as greedy decoding does
      await onStep?.(v);
    }
  }
  const score = scorePasskey(out, sample.passkey);
  return { passkey: sample.passkey, answer: new TextDecoder().decode(Uint8Array.from(out)), ...score, needleInPool };
}
