/**
 * A checkpoint written by a 2-GPU DDP run of the PyTorch port on an H100 machine (NCCL, tiny
 * config, 10 steps; packages/bench/gpu/run-torch-x2b.sh) loads in TypeScript and gives the logits
 * that PyTorch computed for the same input on the GPU.
 */
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import { decodeSafetensors, disposeTree, fromArray, random } from "@memmamba/tensor";
import { lm, parseConfig } from "@memmamba/memmamba";
import { loadCheckpoint, restoreState } from "../src/checkpoint.ts";
import { expect, test } from "../../../test/support/harness.ts";

const dir = fileURLToPath(new URL("./fixtures/h100-ddp2/", import.meta.url));

test("the H100 2-GPU DDP checkpoint loads in TS with the logits PyTorch computed (1e-4)", async () => {
  const ck = loadCheckpoint(`${dir}checkpoint.safetensors`);
  expect(ck.step).toBe(10);
  const template = lm.init(random.key(0), parseConfig(ck.config));
  const { params } = restoreState(ck, template);
  disposeTree(template);
  const ref = decodeSafetensors(new Uint8Array(readFileSync(`${dir}logits.safetensors`)));
  const tok = ref.tensors.tokens;
  const tokens = fromArray(tok.data as Int32Array, [tok.shape[0], tok.shape[1]], "i32");
  const out = lm.apply(params, tokens);
  const ours = await out.logits.data();
  const theirs = ref.tensors.logits.data as Float32Array;
  expect(ours.length).toBe(theirs.length);
  let diff = 0;
  for (let i = 0; i < ours.length; i++) diff = Math.max(diff, Math.abs(ours[i] - theirs[i]));
  expect(diff).toBeLessThan(1e-4);
  disposeTree([params, tokens, out]);
});
