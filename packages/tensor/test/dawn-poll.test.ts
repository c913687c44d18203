/**
 * The wait for Dawn (src/webgpu/dawn-poll.ts): MEMMAMBA_DAWN_POLL's values; the setImmediate
 * wrapper defers native callbacks (what dawn.node's polls are) after the spin window and leaves
 * JavaScript callbacks alone; and on the WebGPU backend through Dawn, a read's wait really goes
 * through it.
 */
import { fromArray, getBackend, matmul, setBackend } from "../src/index.ts";
import { dawnPollFromEnv, dawnPollStats, defaultSpinMs, installDawnPollBackoff } from "../src/webgpu/dawn-poll.ts";
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// deno-lint-ignore no-explicit-any
const g = globalThis as any;

test("MEMMAMBA_DAWN_POLL: backoff by default, backoff:<spin ms>, spin; anything else is an error naming the variable", () => {
  expect(dawnPollFromEnv(undefined)).toEqual({});
  expect(dawnPollFromEnv(" Backoff ")).toEqual({});
  expect(dawnPollFromEnv("backoff:10")).toEqual({ spinMs: 10 });
  expect([defaultSpinMs(true), defaultSpinMs(false)]).toEqual([2, 25]);
  expect(dawnPollFromEnv("spin")).toBeUndefined();
  expect(() => dawnPollFromEnv("sleep")).toThrow(`MEMMAMBA_DAWN_POLL=sleep: expected "backoff" (the default), "backoff:<spin ms>" or "spin"`);
  expect(() => dawnPollFromEnv("backoff:-1")).toThrow("MEMMAMBA_DAWN_POLL=backoff:-1");
});

test("the setImmediate wrapper: a native callback past the spin window waits for a timer, within it runs at once; JavaScript callbacks are untouched", async () => {
  if (typeof g.setImmediate !== "function") {
    console.log("skipping: this runtime has no global setImmediate (dawn.node polls through it; Deno's navigator.gpu does not)");
    return;
  }
  const ran: number[] = [];
  const native = Array.prototype.push.bind(ran, 1); // a bound function prints as native code, as dawn.node's polls do
  const saved = dawnPollStats().options;
  try {
    installDawnPollBackoff({ spinMs: 0 }); // every native poll deferred
    const s0 = dawnPollStats();
    expect(s0.installed).toBe(true);
    g.setImmediate(native);
    const s1 = dawnPollStats();
    expect([s1.polls - s0.polls, s1.deferred - s0.deferred]).toEqual([1, 1]);
    await sleep(30);
    expect(ran).toEqual([1]); // deferred, not lost
    let js = 0;
    g.setImmediate(() => js++);
    await sleep(5);
    expect(js).toBe(1);
    expect(dawnPollStats().polls).toBe(s1.polls); // not counted: left to the runtime
    installDawnPollBackoff({ spinMs: 60_000 }); // a later call sets the options
    g.setImmediate(native);
    const s2 = dawnPollStats();
    expect([s2.polls - s1.polls, s2.deferred - s1.deferred]).toEqual([1, 0]);
    await sleep(5);
    expect(ran).toEqual([1, 1]);
  } finally {
    installDawnPollBackoff(saved ?? {}); // as the backend left them (or the defaults)
  }
});

test("WebGPU through Dawn: a read's wait polls through the wrapper, and a long wait is deferred", async () => {
  if (!testBackends().includes("webgpu")) return;
  const before = getBackend();
  if (!(await useBackend("webgpu"))) return;
  const saved = dawnPollStats();
  try {
    // deno-lint-ignore no-explicit-any
    const via = (getBackend() as any).via;
    if (via !== "dawn") {
      console.log(`skipping: this WebGPU device came from ${via}, not Dawn (its waits do not poll through setImmediate)`);
      return;
    }
    expect(saved.installed).toBe(true);
    expect(saved.options!.spinMs).toBe(defaultSpinMs(String((getBackend() as { adapterInfo?: string }).adapterInfo).includes("[fallback adapter]")));
    await expectNoLeak(async () => {
      const n = 512;
      const a = fromArray(Float32Array.from({ length: n * n }, (_, i) => (i % 7) - 3), [n, n]);
      const s0 = dawnPollStats();
      installDawnPollBackoff({ spinMs: 0 }); // so that any wait at all is deferred
      let y = matmul(a, a);
      for (let i = 0; i < 3; i++) {
        const z = matmul(y, a);
        y.dispose();
        y = z;
      }
      const v = await y.data();
      expect(v.length).toBe(n * n);
      const s1 = dawnPollStats();
      expect(s1.polls).toBeGreaterThan(s0.polls);
      expect(s1.deferred).toBeGreaterThan(s0.deferred);
      y.dispose();
      a.dispose();
    });
  } finally {
    if (saved.options) installDawnPollBackoff(saved.options); // as the backend set them
    setBackend(before);
  }
});
