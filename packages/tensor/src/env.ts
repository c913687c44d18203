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

/** $MEMMAMBA_CPU_THREADS (a whole number from 1), or undefined when unset; anything else is an error that names it. */
export function cpuThreadsFromEnv(): number | undefined {
  const v = readEnv("MEMMAMBA_CPU_THREADS")?.trim();
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MEMMAMBA_CPU_THREADS: expected the number of threads (a whole number from 1), got "${v}"`);
  return n;
}
