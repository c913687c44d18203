/**
 * The demo page in a real browser: Debian's `chromium`, headless, driven by puppeteer-core.
 * Builds the bundle (examples/browser/build.ts), serves it on 127.0.0.1 (serve.ts), and checks
 * with a fresh tiny model:
 * - CPU backend, 300 bytes of the built-in text: the page finishes, shows 5 predictions whose
 *   probabilities are positive and sum to at most 1, draws each layer's pool heatmap (the canvases
 *   hold coloured pixels), lists pool slots and events; a screenshot goes to
 *   out/test-artifacts/browser-demo.png;
 * - WebGPU (Chromium's SwiftShader, `--enable-unsafe-webgpu`): the page reports backend webgpu
 *   and its mean bits per byte over 30 bytes matches the CPU run's over the same bytes;
 * - a checkpoint (of the same fresh model) fetched by URL and decoded in the page streams the
 *   same bits per byte;
 * - passkey mode: the prompt streams and the model's greedy answer is shown.
 * Without a chromium binary it prints why and returns, except under CI=true, where it fails
 * (.ci/run installs chromium). SwiftShader streams about 11 bytes/s, hence only 30 bytes there.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { disposeTree } from "@memmamba/tensor";
import { encodeCheckpoint, treeToHost } from "@memmamba/cli";
import { freshModel } from "../examples/browser/session.ts";
import { buildDemo, ROOT } from "../examples/browser/build.ts";
import { serveDemo } from "../examples/browser/serve.ts";
import { expect, test } from "./support/harness.ts";

const ARTIFACTS = join(ROOT, "out", "test-artifacts");

function env(name: string): string | undefined {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g.process?.env?.[name] ?? g.Deno?.env?.get(name);
}

function findChromium(): string | undefined {
  const given = env("CHROMIUM_PATH");
  if (given) {
    if (!existsSync(given)) throw new Error(`CHROMIUM_PATH=${given}: no such file`);
    return given;
  }
  return ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => existsSync(p));
}

interface PageReport {
  status?: string;
  statusText: string | null;
  backend?: string;
  tokens?: string;
  bpb?: string;
  answer?: string;
  model: string | null;
  predictions: number[];
  /** Per heatmap canvas: pixels that are not black. */
  litPixels: number[];
  canvasPixels: number[];
  filledSlots: number;
  events: number;
}

async function runPage(browser: Browser, url: string, query: string, screenshot?: string): Promise<PageReport> {
  const page: Page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(`${url}?${query}`);
    await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.status ?? ""), { timeout: 60_000 });
    const report: PageReport = await page.evaluate(() => {
      const d = document.body.dataset;
      const canvases = [...document.querySelectorAll<HTMLCanvasElement>("canvas.heatmap")];
      const lit = canvases.map((c) => {
        const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < px.length; i += 4) if (px[i] + px[i + 1] + px[i + 2] > 30) n++;
        return n;
      });
      return {
        status: d.status, statusText: document.getElementById("status")!.textContent, backend: d.backend, tokens: d.tokens, bpb: d.bpb,
        answer: d.answer, model: document.getElementById("model-info")!.textContent,
        predictions: [...document.querySelectorAll("#predictions li")].map((li) => parseFloat(li.lastElementChild!.textContent!) / 100),
        litPixels: lit,
        canvasPixels: canvases.map((c) => c.width * c.height),
        filledSlots: [...document.querySelectorAll(".slots span")].filter((s) => s.textContent !== "·").length,
        events: document.querySelectorAll("#events div").length,
      };
    });
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    expect(errors).toEqual([]);
    expect(report.status).toBe("done"); // an "error" status shows its message in statusText
    return report;
  } catch (e) {
    const text = await page.evaluate(() => document.getElementById("status")?.textContent).catch(() => undefined);
    throw new Error(`${query}: ${e instanceof Error ? e.message : e}; page status: ${text}; page errors: ${errors.join(" | ")}`);
  } finally {
    await page.close();
  }
}

test("browser demo streams a fresh tiny model in headless Chromium (CPU and WebGPU) and draws the pools", async () => {
  const exe = findChromium();
  if (!exe) {
    if (env("CI") === "true") throw new Error("no chromium binary (install Debian's chromium, or set CHROMIUM_PATH); CI must run the browser test");
    console.log("skipping the browser test: no chromium binary (apt-get install chromium, or set CHROMIUM_PATH)");
    return;
  }
  const built = await buildDemo();
  expect(built.bundleBytes).toBeGreaterThan(0);
  const server = await serveDemo(built.outDir, 0);
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. Launch timeout
  // 120 s (puppeteer's default is 30 s): on the 2-core machine with other jobs running (here: a
  // lavapipe test beside a CI run) Chromium's start-up once took longer than 30 s
  const browser = await puppeteer.launch({
    executablePath: exe,
    headless: true,
    timeout: 120_000,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-webgpu"],
  });
  try {
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, "browser-demo.png");
    const cpu = await runPage(browser, server.url, "autorun=1&model=fresh&seed=0&tokens=300&backend=cpu", shot);
    expect(cpu.backend).toBe("cpu");
    expect(cpu.tokens).toBe("300");
    expect(cpu.predictions.length).toBe(5);
    for (const p of cpu.predictions) expect(p).toBeGreaterThan(0);
    expect(cpu.predictions.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1.0001);
    expect(cpu.litPixels.length).toBe(2); // the tiny model's two layers
    // 300 steps fill most of the 240 columns × 16 slots: well over a tenth of each canvas is lit
    cpu.litPixels.forEach((n, i) => expect(n).toBeGreaterThan(cpu.canvasPixels[i] / 10));
    expect(cpu.filledSlots).toBeGreaterThan(0);
    expect(cpu.events).toBeGreaterThan(0);
    expect(existsSync(shot)).toBe(true);

    // WebGPU: the same first 30 bytes on both backends give the same mean bits per byte
    const cpu30 = await runPage(browser, server.url, "autorun=1&model=fresh&seed=0&tokens=30&backend=cpu");
    const gpu = await runPage(browser, server.url, "autorun=1&model=fresh&seed=0&tokens=30&backend=auto", join(ARTIFACTS, "browser-demo-webgpu.png"));
    if (gpu.backend !== "webgpu") {
      if (env("CI") === "true") throw new Error(`the page ran on ${gpu.backend}, not WebGPU (Chromium with --enable-unsafe-webgpu should offer SwiftShader)`);
      console.log(`browser test: WebGPU not available in this Chromium, the page fell back to ${gpu.backend}`);
    }
    expect(gpu.tokens).toBe("30");
    expect(gpu.predictions.length).toBe(5);
    expect(Math.abs(Number(gpu.bpb) - Number(cpu30.bpb))).toBeLessThan(1e-3);
    gpu.litPixels.forEach((n) => expect(n).toBeGreaterThan(0));

    // a checkpoint file, fetched by URL and decoded in the page, streams exactly as the model it holds
    const fresh = freshModel(0);
    const ck = { weights: await treeToHost(fresh.params), step: 0, key: [0, 0] as const, dataPosition: null, config: fresh.params.config as never };
    disposeTree(fresh.params);
    writeFileSync(join(built.outDir, "test-checkpoint.safetensors"), encodeCheckpoint(ck));
    const fromFile = await runPage(browser, server.url, "autorun=1&checkpoint=test-checkpoint.safetensors&tokens=30&backend=cpu");
    expect(fromFile.model).toContain("test-checkpoint.safetensors");
    expect(fromFile.bpb).toBe(cpu30.bpb);

    // passkey mode: the prompt streams, the answer is shown
    const pk = await runPage(browser, server.url, "autorun=1&model=fresh&seed=0&backend=cpu&mode=passkey&length=200&depth=0.5");
    expect(pk.answer?.length).toBeGreaterThan(0);
    expect(pk.tokens).toBe(String(200 + 9)); // the prompt, then 9 of the 10 answer bytes fed back
  } finally {
    await browser.close();
    await server.close();
  }
}, 120_000);
