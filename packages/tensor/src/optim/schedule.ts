/**
 * Learning-rate schedules: functions from a step to a learning rate.
 *
 * `step` is the number of optimizer updates already applied (0 for the first update), i.e. the
 * `state.step` an AdamW state holds before `adamw.update`. Configs are validated (zod) when the
 * schedule is made; a bad step (negative, NaN) throws when the schedule is called. The cosine
 * uses the deterministic cosine of ../cpu/detmath.ts, so the values are identical on every runtime.
 */
import { z } from "zod";
import { cos } from "../cpu/detmath.ts";

/** A learning-rate schedule. */
export type Schedule = (step: number) => number;

const rate: z.ZodNumber = z.number().nonnegative(); // zod 4 numbers reject ±Infinity and NaN
const steps: z.ZodNumber = z.number().int().nonnegative();

function parse<T>(schema: z.ZodType<T>, cfg: unknown, what: string): T {
  const r = schema.safeParse(cfg);
  if (r.success) return r.data;
  const parts = r.error.issues.map((iss) => `${iss.path.map(String).join(".") || "config"}: ${iss.message}`);
  throw new RangeError(`schedule.${what}: invalid config: ${parts.join("; ")}`);
}

function checkStep(what: string, step: number): void {
  if (!(step >= 0) || !Number.isFinite(step)) throw new RangeError(`schedule.${what}: step must be a finite number >= 0, got ${step}`);
}

/** The same learning rate at every step. */
export function constant(lr: number): Schedule {
  const v = parse(rate, lr, "constant");
  return (step) => {
    checkStep("constant", step);
    return v;
  };
}

const linearWarmupSchema: z.ZodType<{ peak: number; warmup: number; init: number }, { peak: number; warmup: number; init?: number }> = z.strictObject({
  peak: rate,
  warmup: steps,
  /** The learning rate at step 0 (default 0). */
  init: rate.default(0),
});
/** The settings of a linear warmup to a constant rate, as accepted by the schedule (defaults filled in). */
export type LinearWarmupConfig = z.input<typeof linearWarmupSchema>;

/**
 * Linear warmup then constant: init + (peak − init)·step / warmup for step < warmup, peak after
 * (as optax.linear_schedule / HF get_constant_schedule_with_warmup; step 0 gives `init`).
 * warmup = 0 gives `peak` at every step.
 */
export function linearWarmup(config: LinearWarmupConfig): Schedule {
  const { peak, warmup, init } = parse(linearWarmupSchema, config, "linearWarmup");
  return (step) => {
    checkStep("linearWarmup", step);
    if (step >= warmup) return peak;
    return init + (peak - init) * (step / warmup);
  };
}

const cosineSchema: z.ZodType<
  { peak: number; warmup: number; total: number; floor: number },
  { peak: number; warmup?: number; total: number; floor?: number }
> = z.strictObject({
  peak: rate,
  /** Linear warmup steps from 0 to peak (default 0). */
  warmup: steps.default(0),
  /** The step at which the decay reaches `floor` (counted from 0, warmup included). */
  total: steps,
  /** The final learning rate (default 0). */
  floor: rate.default(0),
})
  .refine((c) => c.total > c.warmup, { message: "total must be greater than warmup", path: ["total"] })
  .refine((c) => c.floor <= c.peak, { message: "floor must not exceed peak", path: ["floor"] });
/** The settings of a linear warmup followed by a cosine decay to `floor`, as accepted by the schedule. */
export type CosineConfig = z.input<typeof cosineSchema>;

/**
 * Linear warmup from 0 to `peak` over `warmup` steps, then cosine decay to `floor` at step `total`,
 * then `floor`:
 *   step < warmup:          peak · step / warmup
 *   warmup <= step <= total: floor + (peak − floor) · ½ (1 + cos(π (step − warmup) / (total − warmup)))
 *   step > total:           floor
 */
export function cosine(config: CosineConfig): Schedule {
  const { peak, warmup, total, floor } = parse(cosineSchema, config, "cosine");
  return (step) => {
    checkStep("cosine", step);
    if (step < warmup) return peak * (step / warmup);
    if (step >= total) return floor;
    const t = (step - warmup) / (total - warmup);
    return floor + (peak - floor) * 0.5 * (1 + cos(Math.PI * t));
  };
}
