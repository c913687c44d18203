#!/usr/bin/env -S deno run -A
/** `deno task passkey` / `bun run passkey`: see ../commands/passkey.ts and `--help`. */
import process from "node:process";
import { runCli } from "../args.ts";
import { passkeyCommand, runPasskey } from "../commands/passkey.ts";

await runCli(passkeyCommand, process.argv.slice(2), async (args) => {
  await runPasskey(args);
});
