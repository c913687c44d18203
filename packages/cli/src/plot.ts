/**
 * Dependency-free SVG plots: a line plot (loss curves) and a heatmap (passkey accuracy by
 * context length × needle depth). Pure functions from data to an SVG string; `writeSvg` saves one.
 *
 * Non-finite values are never drawn: a NaN/Inf point breaks a line into segments, and a heatmap
 * cell holding null/NaN is drawn hatched grey ("no data").
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";

/** A point (x, y). */
export type Point = readonly [number, number];

/** One line of a line plot. */
export interface Series {
  /** The legend entry. */
  name: string;
  /** The points, in x order. */
  points: readonly Point[];
  /** CSS colour; default from a colour-blind-safe palette (Okabe–Ito). */
  color?: string;
  /** Draw dashed (default solid). */
  dashed?: boolean;
}

/** Options of `linePlot`. */
export interface LinePlotOptions {
  /** Title above the plot. */
  title?: string;
  /** Caption of the x axis. */
  xLabel?: string;
  /** Caption of the y axis. */
  yLabel?: string;
  /** Width in pixels. */
  width?: number;
  /** Height in pixels. */
  height?: number;
  /** Logarithmic y axis (non-positive values are dropped). */
  logY?: boolean;
  /** Fixed y range (default: the data's, padded). */
  yMin?: number;
  /** Upper end of a fixed y range. */
  yMax?: number;
  /** Longer series are reduced to at most this many points, keeping each bucket's min and max (default 2000). */
  maxPoints?: number;
}

const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"];
const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"`;

/** Escapes text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Rounds a coordinate for output (2 decimals, no "-0"). */
function r2(x: number): string {
  const v = Math.round(x * 100) / 100;
  return String(v === 0 ? 0 : v);
}

/**
 * "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them
 * (Heckbert's labelling).
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  if (lo > hi) [lo, hi] = [hi, lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  const out: number[] = [];
  const start = Math.ceil(lo / step - 1e-9) * step;
  for (let v = start; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return out;
}

/** Ticks for a log axis: powers of ten, with 2 and 5 between them when the range is short. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0) || !(hi > 0)) return [];
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = a; e <= b; e++) {
    for (const m of mults) {
      const v = Number((m * 10 ** e).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

/** Short tick label: 0.0001 → "1e-4", 12000 → "12k", 2.5 → "2.5". */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 && Number.isInteger(v / 1e6)) return `${v / 1e6}M`;
  if (a >= 1e4 && Number.isInteger(v / 1e3)) return `${v / 1e3}k`;
  if (a < 1e-3 || a >= 1e7) return v.toExponential().replace(/\.?0+e/, "e").replace("e+", "e");
  return String(Number(v.toPrecision(6)));
}

/** At most `max` points: the first and last, and each bucket's lowest and highest y, in x order. */
export function downsample(points: readonly Point[], max: number): Point[] {
  if (points.length <= max || max < 4) return [...points];
  const buckets = Math.floor((max - 2) / 2);
  const inner = points.slice(1, -1);
  const out: Point[] = [points[0]];
  for (let b = 0; b < buckets; b++) {
    const s = Math.floor((b * inner.length) / buckets);
    const e = Math.floor(((b + 1) * inner.length) / buckets);
    if (e <= s) continue;
    let lo = s, hi = s;
    for (let i = s; i < e; i++) {
      if (!(inner[i][1] >= inner[lo][1])) lo = i;
      if (!(inner[i][1] <= inner[hi][1])) hi = i;
    }
    const pair = lo <= hi ? [lo, hi] : [hi, lo];
    out.push(inner[pair[0]]);
    if (pair[1] !== pair[0]) out.push(inner[pair[1]]);
  }
  out.push(points[points.length - 1]);
  return out;
}

/** The x and y ranges of the finite points of all series. */
function extent(series: readonly Series[], logY: boolean): { x0: number; x1: number; y0: number; y1: number } {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && !(y > 0))) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  return { x0, x1, y0, y1 };
}

/**
 * A line plot of one or more series, with axes, ticks, grid, axis labels, a title and a legend.
 * Each series is one `<polyline>` per unbroken run of finite points, with `data-series` naming it.
 */
export function linePlot(series: readonly Series[], opts: LinePlotOptions = {}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 420;
  const logY = opts.logY ?? false;
  const maxPoints = opts.maxPoints ?? 2000;
  const m = { left: 72, right: 20, top: opts.title ? 40 : 16, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  let { x0, x1, y0, y1 } = extent(series, logY);
  const empty = !Number.isFinite(x0);
  if (empty) [x0, x1, y0, y1] = [0, 1, logY ? 1 : 0, logY ? 10 : 1];
  if (opts.yMin !== undefined) y0 = opts.yMin;
  if (opts.yMax !== undefined) y1 = opts.yMax;
  if (x0 === x1) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y0 === y1) [y0, y1] = logY ? [y0 / 2, y1 * 2] : [y0 - (Math.abs(y0) || 1) * 0.5, y1 + (Math.abs(y1) || 1) * 0.5];
  if (!logY && opts.yMin === undefined && opts.yMax === undefined) {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  const ty = logY ? Math.log10 : (v: number) => v;
  const ly0 = ty(y0), ly1 = ty(y1);
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((ty(y) - ly0) / (ly1 - ly0)) * ph;

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) parts.push(`<text x="${r2(W / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="600">${escapeXml(opts.title)}</text>`);

  // grid and ticks
  const xt = niceTicks(x0, x1, 6).filter((v) => v >= x0 && v <= x1);
  const yt = (logY ? logTicks(y0, y1) : niceTicks(y0, y1, 5)).filter((v) => v >= y0 && v <= y1);
  parts.push(`<g class="grid" stroke="#e5e5e5" stroke-width="1">`);
  for (const v of xt) parts.push(`<line x1="${r2(sx(v))}" y1="${m.top}" x2="${r2(sx(v))}" y2="${m.top + ph}"/>`);
  for (const v of yt) parts.push(`<line x1="${m.left}" y1="${r2(sy(v))}" x2="${m.left + pw}" y2="${r2(sy(v))}"/>`);
  parts.push(`</g>`);
  parts.push(`<g class="axes" stroke="#333333" stroke-width="1" fill="none">`);
  parts.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/>`);
  parts.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/>`);
  for (const v of xt) parts.push(`<line x1="${r2(sx(v))}" y1="${m.top + ph}" x2="${r2(sx(v))}" y2="${m.top + ph + 5}"/>`);
  for (const v of yt) parts.push(`<line x1="${m.left - 5}" y1="${r2(sy(v))}" x2="${m.left}" y2="${r2(sy(v))}"/>`);
  parts.push(`</g>`);
  parts.push(`<g class="tick-labels" fill="#333333">`);
  for (const v of xt) parts.push(`<text x="${r2(sx(v))}" y="${m.top + ph + 18}" text-anchor="middle">${escapeXml(tickLabel(v))}</text>`);
  for (const v of yt) parts.push(`<text x="${m.left - 8}" y="${r2(sy(v) + 4)}" text-anchor="end">${escapeXml(tickLabel(v))}</text>`);
  parts.push(`</g>`);
  if (opts.xLabel) parts.push(`<text x="${r2(m.left + pw / 2)}" y="${H - 14}" text-anchor="middle" font-size="13">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) {
    parts.push(`<text x="16" y="${r2(m.top + ph / 2)}" text-anchor="middle" font-size="13" transform="rotate(-90 16 ${r2(m.top + ph / 2)})">${escapeXml(opts.yLabel)}</text>`);
  }

  // data, clipped to the plot area
  parts.push(`<defs><clipPath id="plot-area"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  parts.push(`<g class="series" clip-path="url(#plot-area)" fill="none" stroke-width="1.6" stroke-linejoin="round">`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    const pts = downsample(s.points, maxPoints);
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1) {
        const [cx, cy] = run[0].split(",");
        parts.push(`<circle data-series="${escapeXml(s.name)}" cx="${cx}" cy="${cy}" r="2" fill="${color}" stroke="none"/>`);
      } else if (run.length > 1) {
        parts.push(`<polyline data-series="${escapeXml(s.name)}" stroke="${color}"${dash} points="${run.join(" ")}"/>`);
      }
      run = [];
    };
    for (const [x, y] of pts) {
      if (!Number.isFinite(x) || !Number.isFinite(y) || (logY && !(y > 0))) flush();
      else run.push(`${r2(sx(x))},${r2(sy(y))}`);
    }
    flush();
  });
  parts.push(`</g>`);
  if (empty) parts.push(`<text x="${r2(m.left + pw / 2)}" y="${r2(m.top + ph / 2)}" text-anchor="middle" fill="#888888">no data</text>`);

  // legend (top right, inside the plot)
  if (series.length > 1 || (series.length === 1 && series[0].name)) {
    const lw = Math.max(...series.map((s) => s.name.length)) * 7 + 40;
    const lx = m.left + pw - lw - 8;
    const lyTop = m.top + 8;
    parts.push(`<g class="legend">`);
    parts.push(`<rect x="${lx}" y="${lyTop}" width="${lw}" height="${series.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
    series.forEach((s, i) => {
      const y = lyTop + 16 + i * 18;
      const color = s.color ?? PALETTE[i % PALETTE.length];
      const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
      parts.push(`<line x1="${lx + 8}" y1="${y - 4}" x2="${lx + 30}" y2="${y - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
      parts.push(`<text x="${lx + 36}" y="${y}">${escapeXml(s.name)}</text>`);
    });
    parts.push(`</g>`);
  }
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

/** Options of `heatmap`. */
export interface HeatmapOptions {
  /** Labels of the rows (top to bottom). */
  rowLabels: readonly string[];
  /** Labels of the columns (left to right). */
  colLabels: readonly string[];
  /** values[row][col]; null or NaN = no data. */
  values: readonly (readonly (number | null)[])[];
  /** Title above the heatmap. */
  title?: string;
  /** Caption of the column axis (below). */
  xLabel?: string;
  /** Caption of the row axis (left). */
  yLabel?: string;
  /** Colour scale range (default 0..1, as an accuracy). */
  min?: number;
  /** Upper end of the colour scale. */
  max?: number;
  /** Text written in each cell (default: 2 decimals); return "" for none. */
  format?: (v: number) => string;
  /** Width of a cell in pixels. */
  cellWidth?: number;
  /** Height of a cell in pixels. */
  cellHeight?: number;
}

// viridis, sampled at 9 stops
const VIRIDIS = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"];

function hexToRgb(h: string): [number, number, number] {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
}

/** The viridis colour of t in [0, 1] (clamped) as "#rrggbb". */
export function colorScale(t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(u));
  const f = u - i;
  const a = hexToRgb(VIRIDIS[i]);
  const b = hexToRgb(VIRIDIS[i + 1]);
  const c = a.map((x, k) => Math.round(x + (b[k] - x) * f));
  return `#${c.map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * A heatmap of rows × columns with labels, a value in each cell and a colour bar. Each cell is a
 * `<rect>` with `data-row`, `data-col` and `data-value` attributes (empty value for missing data).
 */
export function heatmap(opts: HeatmapOptions): string {
  const { rowLabels, colLabels, values } = opts;
  if (values.length !== rowLabels.length || values.some((r) => r.length !== colLabels.length)) {
    throw new RangeError(`heatmap: values must be ${rowLabels.length} rows × ${colLabels.length} columns, got ${values.length} rows of [${values.map((r) => r.length).join(", ")}]`);
  }
  const lo = opts.min ?? 0;
  const hi = opts.max ?? 1;
  const fmt = opts.format ?? ((v: number) => v.toFixed(2));
  const cw = opts.cellWidth ?? Math.max(48, Math.max(0, ...colLabels.map((l) => l.length)) * 7 + 10);
  const ch = opts.cellHeight ?? 32;
  const rowLabelW = Math.max(40, Math.max(0, ...rowLabels.map((l) => l.length)) * 7 + 12);
  const m = { left: rowLabelW + (opts.yLabel ? 28 : 8), top: opts.title ? 44 : 16, right: 90, bottom: opts.xLabel ? 56 : 36 };
  const W = m.left + cw * colLabels.length + m.right;
  const H = m.top + ch * rowLabels.length + m.bottom;
  const gw = cw * colLabels.length;
  const gh = ch * rowLabels.length;

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  parts.push(`<defs><pattern id="no-data" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbbbbb" stroke-width="2"/></pattern>`);
  parts.push(`<linearGradient id="scale" x1="0" y1="1" x2="0" y2="0">${VIRIDIS.map((c, i) => `<stop offset="${r2(i / (VIRIDIS.length - 1))}" stop-color="${c}"/>`).join("")}</linearGradient></defs>`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (opts.title) parts.push(`<text x="${r2(m.left + gw / 2)}" y="26" text-anchor="middle" font-size="15" font-weight="600">${escapeXml(opts.title)}</text>`);

  parts.push(`<g class="cells">`);
  for (let r = 0; r < rowLabels.length; r++) {
    for (let c = 0; c < colLabels.length; c++) {
      const v = values[r][c];
      const x = m.left + c * cw;
      const y = m.top + r * ch;
      const has = v !== null && Number.isFinite(v);
      const t = has ? (hi === lo ? 1 : ((v as number) - lo) / (hi - lo)) : 0;
      const fill = has ? colorScale(t) : "url(#no-data)";
      parts.push(`<rect data-row="${r}" data-col="${c}" data-value="${has ? String(v) : ""}" x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${fill}" stroke="#ffffff" stroke-width="1"/>`);
      if (has) {
        const label = fmt(v as number);
        if (label) {
          const ink = t > 0.6 ? "#000000" : "#ffffff";
          parts.push(`<text x="${r2(x + cw / 2)}" y="${r2(y + ch / 2 + 4)}" text-anchor="middle" fill="${ink}">${escapeXml(label)}</text>`);
        }
      }
    }
  }
  parts.push(`</g>`);
  parts.push(`<g class="labels" fill="#333333">`);
  rowLabels.forEach((l, r) => parts.push(`<text x="${m.left - 6}" y="${r2(m.top + r * ch + ch / 2 + 4)}" text-anchor="end">${escapeXml(l)}</text>`));
  colLabels.forEach((l, c) => parts.push(`<text x="${r2(m.left + c * cw + cw / 2)}" y="${m.top + gh + 18}" text-anchor="middle">${escapeXml(l)}</text>`));
  parts.push(`</g>`);
  if (opts.xLabel) parts.push(`<text x="${r2(m.left + gw / 2)}" y="${H - 12}" text-anchor="middle" font-size="13">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) {
    const cy = r2(m.top + gh / 2);
    parts.push(`<text x="14" y="${cy}" text-anchor="middle" font-size="13" transform="rotate(-90 14 ${cy})">${escapeXml(opts.yLabel)}</text>`);
  }

  // colour bar
  const bx = m.left + gw + 24;
  const bh = Math.max(gh, 60);
  parts.push(`<g class="color-bar">`);
  parts.push(`<rect x="${bx}" y="${m.top}" width="14" height="${bh}" fill="url(#scale)" stroke="#999999"/>`);
  for (const v of niceTicks(lo, hi, 4).filter((v) => v >= lo && v <= hi)) {
    const y = m.top + bh - ((v - lo) / (hi - lo || 1)) * bh;
    parts.push(`<line x1="${bx + 14}" y1="${r2(y)}" x2="${bx + 18}" y2="${r2(y)}" stroke="#333333"/>`);
    parts.push(`<text x="${bx + 21}" y="${r2(y + 4)}" fill="#333333">${escapeXml(tickLabel(v))}</text>`);
  }
  parts.push(`</g>`);
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

/** Writes an SVG (or any text) atomically: temporary file, then rename. */
export function writeSvg(path: string, svg: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, svg);
  renameSync(tmp, path);
}
