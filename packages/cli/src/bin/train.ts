#!/usr/bin/env bun
/** `bun run train` / `deno task train`: see ../commands/train.ts and `--help`. */
import process from "node:process";
import { disposeTree } from "@memmamba/tensor";
import { runCli } from "../args.ts";
import { runTrain, trainCommand } from "../commands/train.ts";

await runCli(trainCommand, process.argv.slice(2), async (args) => {
  const r = await runTrain(args);
  disposeTree(r.params);
  return r.status === "diverged" ? 3 : 0; // 3: stopped on repeated NaN/Inf (the last good checkpoint is kept); a --max-minutes stop is a success
});
