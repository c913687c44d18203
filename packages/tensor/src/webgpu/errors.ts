/**
 * The WebGPU backend's error log (see backend.ts). WebGPU reports errors asynchronously:
 * validation errors (a bad shader, a bad binding) are collected here — the device's uncaptured
 * errors and the outcome of each pipeline's error scope — and thrown by the next read() or
 * sync() (check()).
 */
export class GpuErrors {
  #errors: string[] = [];
  #pendingChecks: Promise<void>[] = [];

  /** Records an error, thrown by the next check(). */
  push(message: string): void {
    this.#errors.push(message);
  }

  /** An error scope's outcome (it pushes the error, if any), awaited by the next check(). */
  pending(check: Promise<void>): void {
    this.#pendingChecks.push(check);
  }

  /** Awaits the pending checks, then throws the errors recorded since the last check, in one. */
  async check(): Promise<void> {
    if (this.#pendingChecks.length) {
      const checks = this.#pendingChecks;
      this.#pendingChecks = [];
      await Promise.all(checks);
    }
    if (this.#errors.length) {
      const errs = this.#errors;
      this.#errors = [];
      throw new Error(errs.join("\n"));
    }
  }
}
