/**
 * The files of a training run's directory (see ./trainer.ts, which re-exports these): where they
 * are (`runFiles`) and the loss plot drawn from the log (`plotLoss`).
 */
import { join } from "node:path";
import { readJsonl } from "./log.ts";
import { linePlot, writeSvg, type Point } from "./plot.ts";

/** The three files of a run directory. */
export function runFiles(out: string): { checkpoint: string; log: string; plot: string } {
  return { checkpoint: join(out, "checkpoint.safetensors"), log: join(out, "train.jsonl"), plot: join(out, "loss.svg") };
}

/** Writes loss.svg from the log: the per-step loss and its moving average. */
export function plotLoss(logPath: string, plotPath: string, title = "training loss"): void {
  const recs = readJsonl(logPath).filter((r) => typeof r.step === "number");
  const pts: Point[] = recs.map((r) => [r.step as number, typeof r.loss === "number" && !r.skipped ? (r.loss as number) : NaN]);
  const series = [{ name: "loss", points: pts, color: "#9ecae1" }];
  const finite = pts.filter(([, y]) => Number.isFinite(y));
  if (finite.length >= 20) {
    const w = Math.max(5, Math.round(finite.length / 50));
    const avg: Point[] = [];
    let s = 0;
    for (let i = 0; i < finite.length; i++) {
      s += finite[i][1];
      if (i >= w) s -= finite[i - w][1];
      if (i >= w - 1) avg.push([finite[i][0], s / w]);
    }
    series.push({ name: `moving average (${w} steps)`, points: avg, color: "#08519c" });
  }
  writeSvg(plotPath, linePlot(series, { title, xLabel: "step", yLabel: "loss" }));
}
