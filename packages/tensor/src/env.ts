/**
 * Reads an environment variable under Node, Bun and Deno alike, and in browsers (none there):
 * `process.env` where it exists, else `Deno.env`; undefined where neither is readable (Deno
 * without --allow-env, a browser).
 */
export function readEnv(name: string): string | undefined {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  try {
    const v = g.process?.env?.[name];
    if (typeof v === "string") return v;
  } catch { /* Deno without --allow-env */ }
  try {
    return g.Deno?.env?.get(name);
  } catch {
    return undefined;
  }
}
