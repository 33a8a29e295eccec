// Evaluation metrics: classification (accuracy, precision, recall, F1), sequences (edit
// distance, word / phoneme error rate) and regression (RMSE, MAE). Plain numbers in, numbers out.

function checkSameLength(where: string, a: ArrayLike<unknown>, b: ArrayLike<unknown>): void {
  if (a.length !== b.length) throw new RangeError(`${where}: predictions have ${a.length} entries but targets have ${b.length}`);
  if (a.length === 0) throw new RangeError(`${where}: no entries`);
}

/** Fraction of predictions equal to their target. */
export function accuracy(predictions: ArrayLike<number>, targets: ArrayLike<number>): number {
  checkSameLength('accuracy', predictions, targets);
  let right = 0;
  for (let i = 0; i < targets.length; i++) if (predictions[i] === targets[i]) right++;
  return right / targets.length;
}

/** Accuracy, precision, recall and F1 of a binary classifier. */
export interface BinaryScores {
  accuracy: number;
  /** TP / (TP + FP); 0 when nothing was predicted positive. */
  precision: number;
  /** TP / (TP + FN); 0 when there is no positive target. */
  recall: number;
  /** Harmonic mean of precision and recall; 0 when both are 0. */
  f1: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Precision, recall and F1 of one class (positive, default 1) against all others. */
export function binaryScores(predictions: ArrayLike<number>, targets: ArrayLike<number>, positive = 1): BinaryScores {
  checkSameLength('binaryScores', predictions, targets);
  let tp = 0, fp = 0, tn = 0, fn = 0;
  for (let i = 0; i < targets.length; i++) {
    const p = predictions[i] === positive;
    const t = targets[i] === positive;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
    else tn++;
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { accuracy: (tp + tn) / targets.length, precision, recall, f1, tp, fp, tn, fn };
}

/** Levenshtein distance (insertions, deletions, substitutions, each cost 1) between two sequences. */
export function editDistance<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  const n = a.length;
  const m = b.length;
  let prev = new Int32Array(m + 1);
  let cur = new Int32Array(m + 1);
  for (let j = 0; j <= m; j++) prev[j] = j;
  for (let i = 1; i <= n; i++) {
    cur[0] = i;
    for (let j = 1; j <= m; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[m];
}

/**
 * Token error rate over a corpus: total edit distance / total reference length. With phoneme
 * sequences this is the phoneme error rate (PER); with the words of sentences, the word error
 * rate of speech recognition.
 */
export function tokenErrorRate<T>(hypotheses: ReadonlyArray<ArrayLike<T>>, references: ReadonlyArray<ArrayLike<T>>): number {
  checkSameLength('tokenErrorRate', hypotheses, references);
  let edits = 0;
  let total = 0;
  for (let i = 0; i < references.length; i++) {
    edits += editDistance(hypotheses[i], references[i]);
    total += references[i].length;
  }
  return edits / Math.max(1, total);
}

/** Sequence error rate: the fraction of hypotheses not exactly equal to their reference (g2p's word error rate). */
export function sequenceErrorRate<T>(hypotheses: ReadonlyArray<ArrayLike<T>>, references: ReadonlyArray<ArrayLike<T>>): number {
  checkSameLength('sequenceErrorRate', hypotheses, references);
  let wrong = 0;
  for (let i = 0; i < references.length; i++) if (editDistance(hypotheses[i], references[i]) > 0) wrong++;
  return wrong / references.length;
}

/** Root mean squared error. */
export function rmse(predictions: ArrayLike<number>, targets: ArrayLike<number>): number {
  checkSameLength('rmse', predictions, targets);
  let s = 0;
  for (let i = 0; i < targets.length; i++) s += (predictions[i] - targets[i]) ** 2;
  return Math.sqrt(s / targets.length);
}

/** Mean absolute error. */
export function mae(predictions: ArrayLike<number>, targets: ArrayLike<number>): number {
  checkSameLength('mae', predictions, targets);
  let s = 0;
  for (let i = 0; i < targets.length; i++) s += Math.abs(predictions[i] - targets[i]);
  return s / targets.length;
}
