/**
 * A model of your own from MemMamba's layers: a small causal Transformer whose layers take notes
 * (Note Block, Eq. 5/8/9), read them back (cross-token attention, Eq. 6/10) and fuse the read
 * through a gate (Eq. 12). It trains a few AdamW steps on a fixed batch of random bytes (so the
 * only thing to learn is the batch itself) and prints the loss.
 *
 *   bun examples/custom-model.ts [steps]      deno run -A examples/custom-model.ts [steps]
 */
import { adamw, crossEntropy, disposeTree, fromArray, gather, matmul, mean, random, tidy, valueAndGrad, type Tensor } from "@memmamba/tensor";
import {
  crossTokenAttention, fuseMemory, fusionTerm, initCrossToken, initFusion, initNote, initRMSNorm, initTransformerLayer, preset, rmsNorm,
  ropeTables, selectNotes, takeNotes, transformerLayer, type CrossTokenParams, type FusionParams, type Key, type ModelConfig,
  type NoteParams, type RMSNorm, type TransformerLayerParams,
} from "@memmamba/memmamba";

interface Layer {
  attn: TransformerLayerParams;
  note: NoteParams;
  read: CrossTokenParams;
  fuse: FusionParams;
}
interface Params {
  embed: Tensor;
  layers: Layer[];
  norm: RMSNorm;
}

function init(key: Key, cfg: ModelConfig): Params {
  const [ke, ...kl] = random.split(key, cfg.nLayers + 1);
  const layers = kl.map((k) => {
    const [ka, kn, kr, kf] = random.split(k, 4);
    return { attn: initTransformerLayer(ka, cfg), note: initNote(kn, cfg), read: initCrossToken(kr, cfg), fuse: initFusion(kf, cfg) };
  });
  return { embed: random.normal(ke, [cfg.vocab, cfg.dModel], { std: 0.02 }), layers, norm: initRMSNorm(cfg.dModel) };
}

/** Logits [B, L, vocab] for tokens i32 [B, L]. */
function apply(p: Params, tokens: Tensor, cfg: ModelConfig): Tensor {
  const m = cfg.memory;
  const rope = ropeTables(tokens.shape[1], cfg.dModel / cfg.transformer.nHeads, cfg.transformer.ropeBase);
  let x = gather(p.embed, tokens);
  for (const layer of p.layers) {
    x = transformerLayer(layer.attn, x, cfg, rope);
    const h = rmsNorm(layer.note.norm, x, cfg.normEps);
    const notes = takeNotes(layer.note, h, m); // what to remember
    const { read } = selectNotes(notes, m); // which notes each position holds (causal)
    const { c } = crossTokenAttention(layer.read, h, h, read, m); // read them
    x = fuseMemory(x, [fusionTerm(layer.fuse, m.fusion, x, c).term]);
  }
  return matmul(rmsNorm(p.norm, x, cfg.normEps), p.embed, { transB: true });
}

/** Trains `steps` AdamW steps; returns the loss before each step. */
export async function main({ steps = 20, log = true }: { steps?: number; log?: boolean } = {}): Promise<number[]> {
  const cfg = preset("tiny", { kind: "transformer", memory: { fusion: "gated", poolSize: 8 } });
  const B = 2, L = 32;
  const bytes = random.randint(random.key(7), [B, L + 1], 0, cfg.vocab);
  const data = await bytes.data();
  bytes.dispose();
  const row = (off: number) => Int32Array.from({ length: B * L }, (_, i) => data[Math.floor(i / L) * (L + 1) + (i % L) + off]);
  const inputs = fromArray(row(0), [B, L], "i32");
  const targets = fromArray(row(1), [B, L], "i32");

  let params = init(random.key(0), cfg);
  let opt = adamw.init(params);
  const lossFn = (p: Params) => tidy(() => mean(crossEntropy(apply(p, inputs, cfg), targets)));
  const vg = valueAndGrad(lossFn);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { value, grads } = vg(params);
    losses.push(await value.item());
    ({ params, state: opt } = adamw.update(params, grads, opt, { lr: 1e-2, weightDecay: 0 }));
    disposeTree([value, grads]);
    if (log) console.log(`step ${String(s + 1).padStart(3)}  loss ${losses[s].toFixed(4)}`);
  }
  disposeTree([params, opt, inputs, targets]);
  return losses;
}

if (import.meta.main) {
  const steps = Number((globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? (globalThis as { process?: { argv: string[] } }).process?.argv[2] ?? 20);
  await main({ steps });
}
