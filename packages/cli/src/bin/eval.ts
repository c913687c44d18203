#!/usr/bin/env bun
/** `eval ppl | docret | metrics`: see ../commands/eval.ts and `--help`. */
import process from "node:process";
import { runCli } from "../args.ts";
import { evalCommand, runEval } from "../commands/eval.ts";

await runCli(evalCommand, process.argv.slice(2), async (args) => {
  await runEval(args);
});
