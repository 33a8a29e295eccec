// The chooser both the wasm and the native backend use (option stepSplit): per shape, whether a
// small batch's steps split across the threads or run on one thread, from fed observations.
import { describe, expect, it } from 'vitest';
import { STEP_SPLIT_PROBE, STEP_SPLIT_RECHECK, StepSplitChooser, stepSplitMode, stepSplitShape } from '../src/backends/step-split.js';

describe('StepSplitChooser', () => {
  it('a shape is timed both ways until each has enough steps, then keeps the faster; an undecided shape takes the way with fewer timed steps', () => {
    expect(STEP_SPLIT_PROBE).toBe(64);
    const c = new StepSplitChooser();
    const a = stepSplitShape('lstm', 1, 256, 2, 'forward');
    expect(a).toBe('lstm B 1, H 256, 2 threads');
    expect(c.next(a)).toBe(true); // nothing timed: split first
    c.observe(a, true, 2, 40);
    expect(c.next(a)).toBe(false); // one thread has fewer timed steps
    c.observe(a, false, 1, 40);
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 1, 40); // 80 split, 40 one: still timing
    expect(c.choices()).toEqual([{ shape: a, split: null, splitUsPerStep: 37.5, oneUsPerStep: 25 }]);
    expect(c.detail('auto', null)).toBe('; lstm B 1, H 256, 2 threads: steps being timed (split 37.5 us/step, one thread 25.0 us/step)');
    c.observe(a, false, 1, 40); // both timed 64 steps or more: one thread (25 us/step) beats split (37.5)
    expect(c.choices()[0]).toMatchObject({ split: false, splitUsPerStep: 37.5, oneUsPerStep: 25 });
    c.observe(a, true, 0, 1000); // decided: no longer timed
    expect(c.next(a)).toBe(false);
    c.observe(a, false, -1, 10); // a negative time or no steps is not an observation
    c.observe(a, false, 1, 0);
    const b = stepSplitShape('gru', 2, 160, 3, 'backward');
    expect(b).toBe('gru B 2, H 160, 3 threads, backward');
    c.observe(b, true, 1, 64);
    c.observe(b, false, 3, 64);
    expect(c.next(b)).toBe(true);
    expect(c.next(a)).toBe(false);
    expect(c.detail('always', 'small-batch steps always split')).toBe('; small-batch steps always split'
      + '; lstm B 1, H 256, 2 threads: steps on one thread (split 37.5 us/step, one thread 25.0 us/step)'
      + '; gru B 2, H 160, 3 threads, backward: steps split (split 15.6 us/step, one thread 46.9 us/step)');
    const fresh = new StepSplitChooser();
    fresh.next(stepSplitShape('rnn_tanh', 1, 300, 2, 'training'));
    expect(fresh.detail('auto', 'forced')).toBe('; rnn_tanh B 1, H 300, 2 threads, training: steps being timed (split not timed, one thread not timed)');
  });

  it('after STEP_SPLIT_RECHECK steps the way kept, a shape is timed both ways again (the load of the machine changes), the last choice reported until the new round ends', () => {
    expect(STEP_SPLIT_RECHECK).toBe(64 * STEP_SPLIT_PROBE);
    const c = new StepSplitChooser();
    const a = stepSplitShape('lstm', 1, 256, 2, 'forward');
    c.observe(a, true, 1, 64); // split 15.6 us/step
    c.observe(a, false, 2, 64); // one thread 31.3 us/step: split kept
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 100, STEP_SPLIT_RECHECK - 1); // kept ways are not timed (100 ms is not a round's time)
    expect(c.next(a)).toBe(true);
    expect(c.choices()[0]).toMatchObject({ split: true, splitUsPerStep: 15.625, oneUsPerStep: 31.25 });
    c.observe(a, true, 0, 1); // the recheck is due: a new round, split taken first again
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 3, 64); // now split is slower (46.9 us/step)
    expect(c.next(a)).toBe(false);
    expect(c.choices()[0]).toMatchObject({ split: true, splitUsPerStep: 15.625, oneUsPerStep: 31.25 });
    c.observe(a, false, 1, 64); // one thread 15.6 us/step: the new round chooses one thread
    expect(c.next(a)).toBe(false);
    expect(c.choices()[0]).toMatchObject({ split: false, splitUsPerStep: 46.875, oneUsPerStep: 15.625 });
  });

  it('the option is checked', () => {
    expect(stepSplitMode('createX', undefined)).toBe('auto');
    expect(stepSplitMode('createX', 'always')).toBe('always');
    expect(() => stepSplitMode('createX', 'sometimes')).toThrow(
      new RangeError("createX: options.stepSplit must be 'auto' or 'always', received sometimes"));
  });
});
