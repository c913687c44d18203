/**
 * A training progress display: step/total, loss, tokens/s and ETA.
 *
 * On a terminal (the stream's `isTTY`) one line is redrawn in place (`\r`, clear line) at most
 * every `minRedrawMs`; elsewhere (CI logs, files, pipes) a plain line is printed every
 * `plainEverySec` seconds and at the end, so logs stay readable. Messages given to `log` are
 * printed on their own line above the bar. Writes to stderr by default, so stdout stays free for
 * a command's results.
 *
 * Rates count only what this process did (a resumed run starts its clock at the resume step).
 */
import process from "node:process";

/** Where a progress display writes (process.stderr, or a test's stand-in). */
export interface ProgressStream {
  /** Writes text. */
  write(s: string): unknown;
  /** True on a terminal: the display redraws one line in place. */
  isTTY?: boolean;
  /** The terminal's width. */
  columns?: number;
}

/** Options of `Progress`. */
export interface ProgressOptions {
  /** The last step (steps are counted 1..total). */
  total: number;
  /** Step already done when this run started (resume); default 0. */
  startStep?: number;
  /** Where to write (default process.stderr). */
  stream?: ProgressStream;
  /** Force TTY or plain mode (default: stream.isTTY). */
  tty?: boolean;
  /** Plain mode: seconds between lines (default 10). */
  plainEverySec?: number;
  /** TTY mode: least milliseconds between redraws (default 100). */
  minRedrawMs?: number;
  /** A prefix, e.g. "train". */
  label?: string;
  /** Show the loss field (default true; evaluations turn it off). */
  showLoss?: boolean;
  /** Clock in milliseconds (tests inject one). Default performance.now. */
  now?: () => number;
  /**
   * Tokens the whole job will report (the updates' `tokens` summed): the ETA then follows the
   * tokens left rather than the steps left, for jobs whose steps differ in size (windows or
   * prompts of growing length).
   */
  totalTokens?: number;
}

/** What a step reports to the display. */
export interface ProgressUpdate {
  /** Latest loss (undefined: not known yet). */
  loss?: number;
  /** Tokens processed by this step (added to the running count). */
  tokens?: number;
  /** Any extra fields shown after the rate, e.g. { acc: "0.93" }. */
  extra?: Record<string, string | number>;
}

/** "1h02m", "3m05s", "12s". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, "0")}m`;
}

/** 1234 → "1.23k", 2_500_000 → "2.50M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "?";
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(2)}k`;
  return a >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function formatLoss(x: number | undefined): string {
  if (x === undefined) return "-";
  if (!Number.isFinite(x)) return String(x);
  return x.toFixed(4);
}

/** A progress display: one redrawn line on a terminal (step, rate, ETA, loss), a line every few seconds elsewhere. */
export class Progress {
  /** The last step. */
  readonly total: number;
  readonly #start: number;
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  readonly #plainMs: number;
  readonly #redrawMs: number;
  readonly #label: string;
  readonly #showLoss: boolean;
  readonly #now: () => number;
  readonly #t0: number;
  readonly #totalTokens: number | undefined;
  #step: number;
  #tokens = 0;
  #loss: number | undefined;
  #extra: Record<string, string | number> = {};
  #lastDraw = -Infinity;
  #lastPlain: number;
  #drawn = false;
  #finished = false;

  /** A display for steps 1..`opts.total` (see ProgressOptions). */
  constructor(opts: ProgressOptions) {
    if (!(opts.total >= 0)) throw new RangeError(`Progress: total must be >= 0, got ${opts.total}`);
    this.total = opts.total;
    this.#start = opts.startStep ?? 0;
    this.#step = this.#start;
    this.#stream = opts.stream ?? process.stderr;
    this.#tty = opts.tty ?? Boolean(this.#stream.isTTY);
    this.#plainMs = (opts.plainEverySec ?? 10) * 1000;
    this.#redrawMs = opts.minRedrawMs ?? 100;
    this.#label = opts.label ? `${opts.label} ` : "";
    this.#showLoss = opts.showLoss ?? true;
    this.#now = opts.now ?? (() => performance.now());
    this.#t0 = this.#now();
    this.#lastPlain = this.#t0;
    if (opts.totalTokens !== undefined && !(opts.totalTokens >= 0)) throw new RangeError(`Progress: totalTokens must be >= 0, got ${opts.totalTokens}`);
    this.#totalTokens = opts.totalTokens;
  }

  /** The last step reported. */
  get step(): number {
    return this.#step;
  }

  /** Elapsed seconds since this display started. */
  get elapsedSec(): number {
    return (this.#now() - this.#t0) / 1000;
  }

  /** Tokens per second so far in this run. */
  get tokensPerSec(): number {
    const s = this.elapsedSec;
    return s > 0 ? this.#tokens / s : 0;
  }

  /** Seconds left at the current pace (NaN before the first step): per step, or per token when totalTokens was given. */
  get etaSec(): number {
    if (this.#totalTokens !== undefined) {
      if (this.#tokens <= 0) return NaN;
      return (this.elapsedSec / this.#tokens) * Math.max(0, this.#totalTokens - this.#tokens);
    }
    const done = this.#step - this.#start;
    if (done <= 0) return NaN;
    return (this.elapsedSec / done) * (this.total - this.#step);
  }

  /** Records that `step` is done; redraws (TTY) or prints a line when due (plain). */
  update(step: number, u: ProgressUpdate = {}): void {
    this.#step = step;
    if (u.loss !== undefined) this.#loss = u.loss;
    if (u.tokens) this.#tokens += u.tokens;
    if (u.extra) this.#extra = { ...this.#extra, ...u.extra };
    const t = this.#now();
    if (this.#tty) {
      if (t - this.#lastDraw >= this.#redrawMs || step >= this.total) {
        this.#draw();
        this.#lastDraw = t;
      }
    } else if (t - this.#lastPlain >= this.#plainMs) {
      this.#stream.write(`${this.line()}\n`);
      this.#lastPlain = t;
    }
  }

  /** Prints a message on its own line (above the bar on a TTY). */
  log(message: string): void {
    if (this.#tty && this.#drawn) {
      this.#stream.write(`\r\x1b[2K${message}\n`);
      this.#draw();
    } else this.#stream.write(`${message}\n`);
  }

  /** Final line (TTY: the bar is left in place, followed by a newline). Idempotent. */
  finish(message?: string): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#tty) {
      this.#draw();
      this.#stream.write("\n");
    } else this.#stream.write(`${this.line()}\n`);
    if (message) this.#stream.write(`${message}\n`);
  }

  /** The status text: "train step 120/1000 (12.0%) loss 2.3456 | 5.21k tok/s | elapsed 23s | ETA 2m51s". */
  line(): string {
    const pct = this.total > 0 ? ((100 * this.#step) / this.total).toFixed(1) : "100.0";
    const w = String(this.total).length;
    const extra = Object.entries(this.#extra).map(([k, v]) => ` | ${k} ${v}`).join("");
    const loss = this.#showLoss ? ` loss ${formatLoss(this.#loss)}` : "";
    return `${this.#label}step ${String(this.#step).padStart(w)}/${this.total} (${pct}%)${loss}` +
      ` | ${formatCount(this.tokensPerSec)} tok/s${extra} | elapsed ${formatDuration(this.elapsedSec)} | ETA ${formatDuration(this.etaSec)}`;
  }

  #draw(): void {
    const cols = this.#stream.columns ?? 100;
    const text = this.line();
    const barWidth = Math.max(0, Math.min(30, cols - text.length - 4));
    let bar = "";
    if (barWidth >= 5) {
      const frac = this.total > 0 ? Math.min(1, this.#step / this.total) : 1;
      const full = Math.round(frac * barWidth);
      bar = `[${"#".repeat(full)}${".".repeat(barWidth - full)}] `;
    }
    const s = `${bar}${text}`;
    this.#stream.write(`\r\x1b[2K${s.length > cols - 1 ? s.slice(0, cols - 1) : s}`);
    this.#drawn = true;
  }
}
