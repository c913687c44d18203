import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { JsonlLogger, readJsonl, readLogForResume, truncateFromStep } from "../src/log.ts";
import { formatCount, formatDuration, Progress } from "../src/progress.ts";

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 120, write: (s: string) => void chunks.push(s) } };
}

describe("progress", () => {
  test("plain mode prints a line every N seconds and at the end, with step, loss, tokens/s and ETA", () => {
    let now = 0;
    const { chunks, stream } = sink(false);
    const p = new Progress({ total: 100, stream, plainEverySec: 10, label: "train", now: () => now });
    for (let s = 1; s <= 100; s++) {
      now += 1000; // one second per step
      p.update(s, { loss: 5 - s / 50, tokens: 2048 });
    }
    p.finish("done");
    const lines = chunks.join("").trimEnd().split("\n");
    expect(lines).toHaveLength(10 + 1 + 1); // every 10 s, the final line, the message
    expect(lines[0]).toBe("train step  10/100 (10.0%) loss 4.8000 | 2.05k tok/s | elapsed 10s | ETA 1m30s");
    expect(lines[10]).toContain("step 100/100 (100.0%)");
    expect(lines[10]).toContain("ETA 0s");
    expect(lines[11]).toBe("done");
    expect(chunks.join("")).not.toContain("\r");
  });

  test("TTY mode redraws one line in place and prints messages above it", () => {
    let now = 0;
    const { chunks, stream } = sink(true);
    const p = new Progress({ total: 4, stream, minRedrawMs: 0, now: () => now });
    p.update(1, { loss: 2 });
    now += 500;
    p.log("step 2 skipped: loss is NaN");
    p.update(2, { loss: 1.5, tokens: 100 });
    p.finish();
    const out = chunks.join("");
    expect(out.split("\n")).toHaveLength(3); // the message, the final bar, ""
    expect(out).toContain("\r\x1b[2K");
    expect(out).toContain("\r\x1b[2Kstep 2 skipped: loss is NaN\n");
    expect(out).toMatch(/\[#+\.*\] step 2\/4 \(50\.0%\) loss 1\.5000/);
  });

  test("a resumed run counts rates from its start step", () => {
    let now = 0;
    const { stream } = sink(false);
    const p = new Progress({ total: 20, startStep: 10, stream, now: () => now });
    now = 5000;
    p.update(15, { tokens: 500 });
    expect(p.tokensPerSec).toBe(100);
    expect(p.etaSec).toBe(5);
  });

  test("with totalTokens the ETA follows the tokens left, not the steps left", () => {
    let now = 0;
    const { stream } = sink(false);
    // 4 steps of 1K, 2K, 4K and 8K tokens: after the first (1 s), 14K tokens are left
    const p = new Progress({ total: 4, stream, now: () => now, totalTokens: 15 * 1024 });
    now = 1000;
    p.update(1, { tokens: 1024 });
    expect(p.etaSec).toBe(14);
    const byStep = new Progress({ total: 4, stream, now: () => now });
    now = 2000;
    byStep.update(1, { tokens: 1024 });
    expect(byStep.etaSec).toBe(3); // per step: 1 s for the first, 3 left
    expect(() => new Progress({ total: 4, stream, totalTokens: NaN })).toThrow("totalTokens must be >= 0, got NaN");
  });

  test("formatting helpers", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(185)).toBe("3m05s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(formatDuration(NaN)).toBe("?");
    expect(formatCount(1234)).toBe("1.23k");
    expect(formatCount(2_500_000)).toBe("2.50M");
  });
});

describe("JSONL log", () => {
  test("appends one object per line, keeps non-finite numbers, truncates on resume", () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-log-"));
    try {
      const path = join(dir, "sub", "train.jsonl");
      const log = new JsonlLogger(path);
      for (let s = 1; s <= 5; s++) log.write({ step: s, loss: s === 3 ? NaN : 1 / s });
      log.close();
      const again = new JsonlLogger(path); // appends
      again.write({ step: 6, loss: Infinity });
      again.close();
      const lines = readFileSync(path, "utf8").trimEnd().split("\n");
      expect(lines).toHaveLength(6);
      expect(JSON.parse(lines[2])).toEqual({ step: 3, loss: "NaN" });
      expect(readJsonl(path).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);

      truncateFromStep(path, 4);
      expect(readJsonl(path).map((r) => r.step)).toEqual([1, 2, 3, 4]);

      writeFileSync(path, readFileSync(path, "utf8") + '{"step": 5, "lo'); // torn last line
      expect(readJsonl(path).map((r) => r.step)).toEqual([1, 2, 3, 4]);
      writeFileSync(path, '{"step": 1}\n{oops\n{"step": 2}\n');
      expect(() => readJsonl(path)).toThrow(/train\.jsonl:2: not valid JSON/);
      expect(readJsonl(join(dir, "missing.jsonl"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("readLogForResume reads the log once: its last step, then the truncation from what it read", () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-log-"));
    try {
      const path = join(dir, "train.jsonl");
      writeFileSync(path, '{"step": 1, "loss": 2}\n{"note": "no step"}\n{"step": 3, "loss": "NaN"}\n{"step": 2}\n');
      const log = readLogForResume(path);
      expect(log.lastStep).toBe(3);
      rmSync(path); // not read again: the truncation writes what was read
      log.truncateFromStep(2);
      expect(readJsonl(path)).toEqual([{ step: 1, loss: 2 }, { note: "no step" }, { step: 2 }]);
      // no file: no last step, and the truncation makes none
      const missing = readLogForResume(join(dir, "missing.jsonl"));
      expect(missing.lastStep).toBeUndefined();
      missing.truncateFromStep(0);
      expect(existsSync(join(dir, "missing.jsonl"))).toBe(false);
      // a bad line before the last is the same error as readJsonl's, at once
      writeFileSync(path, '{"step": 1}\n{oops\n{"step": 2}\n');
      expect(() => readLogForResume(path)).toThrow(/train\.jsonl:2: not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
