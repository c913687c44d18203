#!/usr/bin/env bun
/** `bun run export-weights` / `deno task export-weights`: see ../commands/export.ts and `--help`. */
import process from "node:process";
import { runCli } from "../args.ts";
import { exportCommand, runExport } from "../commands/export.ts";

await runCli(exportCommand, process.argv.slice(2), (args) => {
  runExport(args);
});
