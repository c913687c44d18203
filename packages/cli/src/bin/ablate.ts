#!/usr/bin/env bun
/** `bun run ablate` / `deno task ablate`: see ../commands/ablate.ts and `--help`. */
import process from "node:process";
import { runCli } from "../args.ts";
import { ablateCommand, runAblate } from "../commands/ablate.ts";

await runCli(ablateCommand, process.argv.slice(2), async (args) => {
  await runAblate(args);
});
