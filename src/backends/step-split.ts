// Whether the steps of a sequence split across threads, per shape: the chooser both the wasm and
// the native backend use (option stepSplit).
//
// A sequence with a small batch (batch-1 streaming above all) splits each step over the threads,
// which meet after every step; where they wait there longer than their share of a step saves
// (two vCPUs of one core, cores busy with other work), the sequence runs faster on one thread.
// The choice never changes a result: every output element gets the same sums either way.

import type { CellKind } from './cells.js';

/** Steps of a shape timed each way (split, one thread), at the least, before StepSplitChooser keeps the faster. */
export const STEP_SPLIT_PROBE = 64;

/**
 * Calls of a shape timed each way, at the least, before StepSplitChooser keeps the faster: the
 * median call decides, so one call that met other work on the cores (another program's threads,
 * a garbage collection, a sleeping thread's wake-up) does not.
 */
export const STEP_SPLIT_CALLS = 3;

/**
 * Steps a shape runs the way it chose before StepSplitChooser times both ways again: the load of
 * the machine changes (other work comes and goes), and with it which way is faster. A new round
 * costs at most STEP_SPLIT_PROBE steps (or STEP_SPLIT_CALLS calls) the slower way, about 1.5% of
 * the steps in between.
 */
export const STEP_SPLIT_RECHECK = 64 * STEP_SPLIT_PROBE;

/** A call's pass in a shape key: an inference forward, a training forward (saves activations), a backward. */
export type StepSplitPass = 'forward' | 'training' | 'backward';

/**
 * The shape of a sequence call whose steps split across the threads one by one (the key of
 * StepSplitChooser): the cell kind ('lstm', 'gru', 'rnn_tanh', ...), batch, hidden size, threads and
 * pass; a call of one step (steps 1: a stream fed step by step) has a key of its own, as its split
 * pays a start of the threads per step where a longer sequence pays a barrier.
 */
export function stepSplitShape(cell: CellKind, B: number, H: number, threads: number, pass: StepSplitPass, steps?: number): string {
  return `${cell} B ${B}, H ${H}, ${threads} threads${pass === 'forward' ? '' : `, ${pass}`}${steps === 1 ? ', one step a call' : ''}`;
}

/** What StepSplitChooser measured for one shape, and what it chose (null: no round of timing has ended yet). */
export interface StepSplitChoice {
  shape: string;
  split: boolean | null;
  /** Microseconds per step measured split across the threads and on one thread (NaN: not yet). */
  splitUsPerStep: number;
  oneUsPerStep: number;
}

/**
 * Whether the steps of a sequence run split across the threads (meeting after every step) or on
 * one thread, per shape: decided by what the calls of that shape observe, in rounds. In a round,
 * until a shape has STEP_SPLIT_PROBE steps and STEP_SPLIT_CALLS calls timed each way, its calls
 * take the way with fewer timed calls (then fewer steps); then the way whose median call took
 * less time per step is kept for STEP_SPLIT_RECHECK steps, and a new round starts (the kept way
 * still reported until it ends). Both ways give the same bits.
 */
export class StepSplitChooser {
  private readonly shapes = new Map<string, {
    calls: [number[], number[]]; steps: [number, number]; // this round's us/step of each call and steps, one thread [0] and split [1]
    split: boolean | null; // the way the last round chose (null: none ended yet)
    timing: boolean; // a round is under way
    since: number; // steps run since the last round ended
    us: [number, number]; // us/step of each way's median call in the last round that ended
  }>();

  private get(shape: string) {
    let e = this.shapes.get(shape);
    if (!e) this.shapes.set(shape, (e = { calls: [[], []], steps: [0, 0], split: null, timing: true, since: 0, us: [NaN, NaN] }));
    return e;
  }

  /** Whether the next call of this shape runs split. */
  next(shape: string): boolean {
    const e = this.get(shape);
    if (!e.timing) return e.split!;
    const [one, split] = e.calls;
    return split.length !== one.length ? split.length < one.length : e.steps[1] <= e.steps[0];
  }

  /** A call of this shape ran (split or on one thread) `steps` steps in `ms` milliseconds. */
  observe(shape: string, split: boolean, ms: number, steps: number): void {
    const e = this.get(shape);
    if (!(steps > 0) || !(ms >= 0)) return;
    if (!e.timing) {
      e.since += steps;
      if (e.since >= STEP_SPLIT_RECHECK) Object.assign(e, { timing: true, calls: [[], []], steps: [0, 0] });
      return;
    }
    const i = split ? 1 : 0;
    e.calls[i].push((ms / steps) * 1e3);
    e.steps[i] += steps;
    const timed = (w: number) => e.steps[w] >= STEP_SPLIT_PROBE && e.calls[w].length >= STEP_SPLIT_CALLS;
    if (timed(0) && timed(1)) {
      e.us = [median(e.calls[0]), median(e.calls[1])];
      Object.assign(e, { split: e.us[1] < e.us[0], timing: false, since: 0 });
    }
  }

  /** Per shape: the way chosen (null before a first round ends) and the us/step behind it (of the round under way before then). */
  choices(): StepSplitChoice[] {
    return [...this.shapes].map(([shape, e]) => {
      const [one, split] = e.split === null ? [median(e.calls[0]), median(e.calls[1])] : e.us;
      return { shape, split: e.split, splitUsPerStep: split, oneUsPerStep: one };
    });
  }

  /**
   * The choices as info().detail says them ("; <shape>: steps split (split 31.0 us/step, one
   * thread 24.2 us/step)" each), after `; <forced>` when the option is 'always' and forced is set.
   */
  detail(mode: StepSplitMode, forced: string | null): string {
    const us = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)} us/step` : 'not timed');
    const steps = this.choices().map((c) => `; ${c.shape}: steps ${c.split === null ? 'being timed' : c.split ? 'split' : 'on one thread'}`
      + ` (split ${us(c.splitUsPerStep)}, one thread ${us(c.oneUsPerStep)})`).join('');
    return `${forced && mode === 'always' ? `; ${forced}` : ''}${steps}`;
  }
}

/** The option stepSplit: 'auto' (time each shape both ways, keep the faster) or 'always' (split). */
export type StepSplitMode = 'auto' | 'always';

/** options.stepSplit checked (a RangeError naming `kern` and the option otherwise); default 'auto'. */
export function stepSplitMode(kern: string, value: unknown): StepSplitMode {
  if (value !== undefined && value !== 'auto' && value !== 'always') {
    throw new RangeError(`${kern}: options.stepSplit must be 'auto' or 'always', received ${String(value)}`);
  }
  return (value ?? 'auto') as StepSplitMode;
}

/** The median of xs (the mean of the middle two for an even count; NaN for none). */
function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
