// Learning-rate schedules: constant, step decay, cosine; each with an optional linear warm-up.

/**
 * A learning-rate schedule: 'constant', 'step' (multiply by gamma every stepSize steps) or
 * 'cosine' (decay to minLr over the budget), each with optional linear warm-up.
 */
export type ScheduleKind = 'constant' | 'step' | 'cosine';
/** The learning-rate schedules by name. */
export const SCHEDULES: readonly ScheduleKind[] = ['constant', 'step', 'cosine'];

/** Parameters of a learning-rate schedule (see `learningRate`). */
export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up from lr / warmup to lr (0 = none). */
  warmup?: number;
  /** step: multiply by gamma every stepSize steps. */
  stepSize?: number;
  gamma?: number;
  /** cosine: steps over which to decay (after warm-up) and the floor it decays to. */
  totalSteps?: number;
  minLr?: number;
}

/**
 * Learning rate for a step (1-based: the rate used by the step-th optimizer update).
 * For cosine without totalSteps, `progress` (0..1, e.g. the fraction of a time budget) is used.
 */
export function learningRate(o: ScheduleOptions, step: number, progress?: number): number {
  const warmup = o.warmup ?? 0;
  if (warmup > 0 && step <= warmup) return (o.lr * step) / warmup;
  const after = step - warmup; // 1-based step after the warm-up
  switch (o.kind) {
    case 'constant':
      return o.lr;
    case 'step': {
      const size = o.stepSize ?? 1000;
      return o.lr * Math.pow(o.gamma ?? 0.1, Math.floor((after - 1) / size));
    }
    case 'cosine': {
      const minLr = o.minLr ?? 0;
      let frac: number;
      if (o.totalSteps && o.totalSteps > warmup) frac = (after - 1) / (o.totalSteps - warmup);
      else frac = progress ?? 0;
      frac = Math.min(1, Math.max(0, frac));
      return minLr + 0.5 * (o.lr - minLr) * (1 + Math.cos(Math.PI * frac));
    }
    default:
      throw new RangeError(`learning-rate schedule must be one of ${SCHEDULES.join(', ')}, received '${String(o.kind)}'`);
  }
}
