/**
 * The Note Block (Eq. 5/8/9): after each layer's Mamba block, score every token, summarise it,
 * and mark the tokens worth writing to the layer's state pool.
 *
 *   h       = RMSNorm(x_l)                             [B, L, d]
 *   I_token = σ(h · w_tok + b_tok)                     [B, L]       (Eq. 8)
 *   s_t     = Pool_r(h W_n)                            [B, L, S]    (Eq. 9)
 *   write_t = I_token > τ1;  note_t = s_t ⊙ I_token                 (Eq. 5)
 *
 * Why the RMSNorm (ours; the paper writes x_l): the residual stream's scale differs by orders of
 * magnitude between layers and moves during training; a threshold on σ(x_l · w) would see it
 * drift. Normalising first, as pre-norm attention does, keeps the gates' operating point fixed.
 * The same h feeds the read queries (attention.ts).
 *
 * Why the note is scaled by its score: the comparison with τ1 has no gradient, so a scorer that
 * only gated would never learn. Scaling what it gates gives the scorer a gradient through every
 * note read (scores scale what they gate), and a more important token also writes a louder note.
 */
import { isRecording, matmul, matmulRows, matmulRowsMax, random, type Tensor } from "@memmamba/tensor";
import { checkConfig, type MemoryConfig, type ModelConfig } from "./config.ts";
import { initLinear, initRMSNorm, initScorer, scaleRows, scoreGate, scoreSigmoid, type Key, type Linear, type RMSNorm } from "./nn.ts";
import { poolSummary } from "./pooling.ts";

/** The Note Block's parameters (Eq. 5, 8, 9). */
export interface NoteParams {
  /** The memory path's pre-norm (weight [d]). */
  norm: RMSNorm;
  /** w_tok [d, 1], b_tok [1]. */
  token: Linear;
  /** W_n [d, S·r], no bias. */
  summary: Linear;
}

/** The Note Block of one layer: its pre-norm, the token-importance scorer and the summary projection. */
export function initNote(key: Key, config: ModelConfig): NoteParams {
  const cfg = checkConfig("initNote", config);
  const m = cfg.memory;
  const [kt, ks] = random.split(key, 2);
  return { norm: initRMSNorm(cfg.dModel), token: initScorer(kt, cfg.dModel), summary: initLinear(ks, cfg.dModel, m.summaryDim * m.summaryWindow, false) };
}

/** Eq. 8: I_token = σ(x · w_tok + b_tok), one importance per position [B, L]. */
export function tokenImportance(p: Linear, x: Tensor): Tensor {
  return scoreSigmoid(p, x);
}

/**
 * Eq. 9: s = Pool_r(x W_n) [B, L, S]. A key makes S3Pool sample (training). With `rows` (1/0 [B,
 * L]) only those rows are projected (matmulRows; with max pooling outside a gradient, matmulRowsMax:
 * the same numbers) and the others are the pooling of zeros: for notes that no pool will ever hold.
 * With `scale` [B, L] each row is then multiplied by its scale (the note's I_token).
 */
export function stateSummary(p: Linear, x: Tensor, m: MemoryConfig, key?: Key, rows?: Tensor, scale?: Tensor): Tensor {
  // max pooling of the kept rows outside a gradient: one launch (matmulRowsMax, the scale in its
  // store), with no [..., S·r] product in memory
  if (rows && m.pooling === "max" && !isRecording()) return matmulRowsMax(x, p.w, rows, m.summaryWindow, scale);
  const s = poolSummary(rows ? matmulRows(x, p.w, rows) : matmul(x, p.w), m.summaryWindow, m.pooling, { threshold: m.tmaxavgThreshold, key });
  return scale ? scaleRows(s, scale) : s;
}

/** What a layer offers its pool at each position (Eq. 5/8/9). */
export interface Notes {
  /** I_token [B, L]. */
  score: Tensor;
  /** 1 where I_token > τ1, else 0 [B, L] (no gradient). */
  write: Tensor;
  /** s ⊙ I_token [B, L, S]: what is written where `write` is 1. */
  note: Tensor;
}

/** Eq. 5/8/9: the notes a layer offers its pool, from its normalised output h = RMSNorm(x_l) [B, L, d]. */
export function takeNotes(p: NoteParams, x: Tensor, m: MemoryConfig, key?: Key): Notes {
  const { score, write, noteOf } = scoreNotes(p, x, m, key);
  return { score, write, note: noteOf() };
}

/** The Note Block's scores first, its notes on demand (see scoreNotes). */
export interface ScoredNotes {
  /** I_token [B, L]. */
  score: Tensor;
  /** 1 where I_token > τ1, else 0 [B, L] (no gradient). */
  write: Tensor;
  /** The notes s ⊙ I_token [B, L, S]; with `rows` (1/0 [B, L]) only those rows', the others 0. */
  noteOf(rows?: Tensor): Tensor;
}

/**
 * takeNotes in two steps: the scores and write marks, which say which notes a pool will hold,
 * then the notes, projected (Eq. 9's [d, S·r] matmul, the Note Block's largest cost) only where
 * asked. A chunked forward asks for the rows some pool holds: a few hundred of 60K. `scores`:
 * I_token and its write mark where the caller has them already (computed from x as here).
 */
export function scoreNotes(p: NoteParams, x: Tensor, m: MemoryConfig, key?: Key, scores?: { score: Tensor; write: Tensor }): ScoredNotes {
  // I_token (tokenImportance) and its write mark 1[I_token > τ1], one launch outside a gradient
  // (or given: the layer's rmsNormScores computed them with x)
  const { score, gate: write } = scores ? { score: scores.score, gate: scores.write } : scoreGate(p.token, x, m.tau1, false);
  const noteOf = (rows?: Tensor) => stateSummary(p.summary, x, m, key, rows, score);
  return { score, write, noteOf };
}
