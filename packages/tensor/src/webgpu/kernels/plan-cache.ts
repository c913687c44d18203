/**
 * PlanCache: the bounded per-problem plan cache of the WebGPU kernels that compute their launches
 * once per problem (matmul.ts's matmulPlans, reduce.ts, nn.ts), emptied when their tuning knobs
 * or the device limits change.
 */

/**
 * A bounded map of per-problem plans, emptied when the tuning object it depends on changes
 * (tests and benchmarks set the knobs between calls): `stale` compares each knob with the
 * values the plans were made under. At `max` entries the oldest is dropped, so a model that
 * runs many shapes keeps its recent ones without growing without bound. Knobs are compared by
 * identity: assign a new tile to matmulTuning.force rather than mutating the one it holds.
 */
export class PlanCache<V, K extends string | number = string> {
  readonly #map = new Map<K, V>();
  readonly #tuning: Record<string, unknown>;
  readonly #keys: string[];
  #seen: unknown[];
  #limits: unknown = null;
  constructor(tuning: object, readonly max = 256) {
    this.#tuning = tuning as Record<string, unknown>;
    this.#keys = Object.keys(tuning);
    this.#seen = this.#keys.map((k) => this.#tuning[k]);
  }
  /** The plan for `key` under these `limits` (plans of other limits or knobs are dropped first). */
  get(key: K, limits: unknown): V | undefined {
    const keys = this.#keys, seen = this.#seen, t = this.#tuning;
    let same = limits === this.#limits;
    for (let i = 0; i < keys.length && same; i++) same = t[keys[i]] === seen[i];
    if (!same) {
      this.#map.clear();
      this.#limits = limits;
      this.#seen = keys.map((k) => t[k]);
      return undefined;
    }
    return this.#map.get(key);
  }
  set(key: K, v: V): void {
    if (this.#map.size >= this.max) this.#map.delete(this.#map.keys().next().value as K);
    this.#map.set(key, v);
  }
  get size(): number {
    return this.#map.size;
  }
  clear(): void {
    this.#map.clear();
  }
}
