/**
 * Smoke test of the WebGPU path: find a device, run one small compute shader, read it back.
 * Without an adapter this "skips" (prints why and returns) on a developer machine, but fails
 * under CI (CI set), where .ci/run installs lavapipe and a missing adapter is a broken setup.
 */
// deno-lint-ignore-file no-explicit-any
import { expect, runtime, test } from "../../../test/support/harness.ts";
import { acquireGpu, type AcquiredGpu } from "../src/webgpu/probe.ts";

function inCi(): boolean {
  const g = globalThis as any;
  let v: string | undefined;
  try {
    v = g.process?.env?.CI ?? g.Deno?.env?.get("CI");
  } catch { /* no env permission: treat as not CI */ }
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

const N = 1000; // not a multiple of the workgroup size: the bounds check in the shader matters
const WORKGROUP = 64;
const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i < arrayLength(&out)) { out[i] = a[i] + b[i]; }
}`;

test("webgpu probe: acquire a device, add two f32 arrays, read back", async () => {
  const t0 = performance.now();
  let gpu: AcquiredGpu;
  try {
    gpu = await acquireGpu();
  } catch (e) {
    const why = (e as Error).message;
    if (inCi()) throw new Error(`CI is set, so a missing WebGPU device is a failure:\n${why}`);
    console.log(`[webgpu-probe] skipped under ${runtime} (set CI=true to make this fail):\n${why}`);
    return;
  }
  const { device, via, adapterInfo } = gpu;
  const acquireMs = performance.now() - t0;
  const L = device.limits;
  console.log(
    `[webgpu-probe] ${runtime} via ${via}: ${adapterInfo}; device in ${acquireMs.toFixed(1)} ms; limits ` +
      JSON.stringify({
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxBufferSize: L.maxBufferSize,
        maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
      }),
  );
  const buffers: GPUBuffer[] = [];
  try {
    expect(L.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    const a = Float32Array.from({ length: N }, (_, i) => i * 0.5);
    const b = Float32Array.from({ length: N }, (_, i) => 1000 - i);
    const bytes = N * 4;
    const upload = (data: Float32Array, label: string) => {
      const buf = device.createBuffer({ label, size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buf, 0, data);
      buffers.push(buf);
      return buf;
    };
    const bufA = upload(a, "a");
    const bufB = upload(b, "b");
    const out = device.createBuffer({ label: "out", size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const staging = device.createBuffer({ label: "staging", size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    buffers.push(out, staging);

    device.pushErrorScope("validation");
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code: SHADER }), entryPoint: "main" },
    });
    const bind = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [bufA, bufB, out].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(Math.ceil(N / WORKGROUP));
    pass.end();
    enc.copyBufferToBuffer(out, 0, staging, 0, bytes);
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    expect(err?.message ?? null).toBe(null);

    await staging.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    let bad = -1;
    for (let i = 0; i < N; i++) if (got[i] !== a[i]! + b[i]!) { bad = i; break; }
    expect(bad === -1 ? "all equal" : `element ${bad}: ${got[bad]} != ${a[bad]! + b[bad]!}`).toBe("all equal");
    console.log(`[webgpu-probe] ${runtime} via ${via}: compute + readback in ${(performance.now() - t0 - acquireMs).toFixed(1)} ms`);
  } finally {
    for (const buf of buffers) buf.destroy();
    device.destroy();
  }
  // Referenced after the last await so that Bun's GC keeps Dawn's GPU object alive until here.
  expect(gpu.keepAlive).toBeDefined();
});
