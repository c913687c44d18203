/**
 * Writes packages/memmamba/reference/config.schema.json: the model config's zod schema as JSON
 * Schema (configJsonSchema(), the input side: what a user may write in a config file). The Python
 * port checks its own fields, defaults and enums against this file
 * (reference/tests/test_config_schema.py); packages/cli/test/distributed.test.ts checks that the
 * committed file equals what the TS schema produces now, so neither side can drift silently.
 *
 *   tools/node_modules/.bin/bun packages/memmamba/reference/export-config-schema.ts
 */
import { writeFileSync } from "node:fs";
import { configJsonSchema } from "../src/index.ts";

export const SCHEMA_PATH = new URL("./config.schema.json", import.meta.url).pathname;

/** The file's text: the schema, 2-space JSON, one trailing newline. */
export function configSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

if (import.meta.main) {
  writeFileSync(SCHEMA_PATH, configSchemaText());
  console.log(`wrote ${SCHEMA_PATH}`);
}
