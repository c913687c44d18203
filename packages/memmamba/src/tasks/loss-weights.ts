/** The loss weights of a task's training rows (passkey, docret): the answer's and every other target's. */

/**
 * `answerWeight` (default 1) and `otherWeight` (default 0), checked: finite, >= 0 and not both 0;
 * a bad pair is a RangeError that names `fn`.
 */
export function checkedLossWeights(fn: string, answerWeight = 1, otherWeight = 0): { answerWeight: number; otherWeight: number } {
  if (!(answerWeight >= 0 && otherWeight >= 0 && answerWeight + otherWeight > 0) || !Number.isFinite(answerWeight + otherWeight)) {
    throw new RangeError(`${fn}: answerWeight and otherWeight must be finite, >= 0 and not both 0, got ${answerWeight} and ${otherWeight}`);
  }
  return { answerWeight, otherWeight };
}
