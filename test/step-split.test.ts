// The chooser both the wasm and the native backend use (option stepSplit): per shape, whether a
// small batch's steps split across the threads or run on one thread, from fed observations.
import { describe, expect, it } from 'vitest';
import { STEP_SPLIT_CALLS, STEP_SPLIT_PROBE, STEP_SPLIT_RECHECK, StepSplitChooser, stepSplitMode, stepSplitShape } from '../src/backends/step-split.js';

describe('StepSplitChooser', () => {
  it('a shape is timed both ways until each has enough steps and calls, then keeps the way of the faster median call; an undecided shape takes the way with fewer timed calls', () => {
    expect(STEP_SPLIT_PROBE).toBe(64);
    expect(STEP_SPLIT_CALLS).toBe(3);
    const c = new StepSplitChooser();
    const a = stepSplitShape('lstm', 1, 256, 2, 'forward');
    expect(a).toBe('lstm B 1, H 256, 2 threads');
    expect(stepSplitShape('lstm', 1, 256, 2, 'forward', 64)).toBe(a);
    expect(stepSplitShape('lstm', 1, 256, 2, 'forward', 1)).toBe('lstm B 1, H 256, 2 threads, one step a call');
    expect(c.next(a)).toBe(true); // nothing timed: split first
    c.observe(a, true, 2, 40); // split 50 us/step
    expect(c.next(a)).toBe(false); // one thread has fewer timed calls
    c.observe(a, false, 1, 40); // one thread 25 us/step
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 1, 40); // split 25 us/step
    expect(c.choices()).toEqual([{ shape: a, split: null, splitUsPerStep: 37.5, oneUsPerStep: 25 }]);
    expect(c.detail('auto', null)).toBe('; lstm B 1, H 256, 2 threads: steps being timed (split 37.5 us/step, one thread 25.0 us/step)');
    c.observe(a, false, 1, 40);
    expect(c.next(a)).toBe(true); // 80 steps each way but two calls: still timing
    expect(c.choices()[0].split).toBe(null);
    c.observe(a, true, 4, 40); // split 100 us/step: its median call 50
    c.observe(a, false, 1, 40); // three calls each way: one thread (25 us/step) beats split (50)
    expect(c.choices()[0]).toMatchObject({ split: false, splitUsPerStep: 50, oneUsPerStep: 25 });
    c.observe(a, true, 0, 1000); // decided: no longer timed
    expect(c.next(a)).toBe(false);
    c.observe(a, false, -1, 10); // a negative time or no steps is not an observation
    c.observe(a, false, 1, 0);
    const b = stepSplitShape('gru', 2, 160, 3, 'backward');
    expect(b).toBe('gru B 2, H 160, 3 threads, backward');
    for (let i = 0; i < 3; i++) {
      c.observe(b, true, 1, 64);
      c.observe(b, false, 3, 64);
    }
    expect(c.next(b)).toBe(true);
    expect(c.next(a)).toBe(false);
    expect(c.detail('always', 'small-batch steps always split')).toBe('; small-batch steps always split'
      + '; lstm B 1, H 256, 2 threads: steps on one thread (split 50.0 us/step, one thread 25.0 us/step)'
      + '; gru B 2, H 160, 3 threads, backward: steps split (split 15.6 us/step, one thread 46.9 us/step)');
    const fresh = new StepSplitChooser();
    fresh.next(stepSplitShape('rnn_tanh', 1, 300, 2, 'training'));
    expect(fresh.detail('auto', 'forced')).toBe('; rnn_tanh B 1, H 300, 2 threads, training: steps being timed (split not timed, one thread not timed)');
  });

  it('one slow call does not decide: the median call of each way does (a sleeping thread woken late, other work on the cores)', () => {
    const c = new StepSplitChooser();
    const a = stepSplitShape('lstm', 1, 256, 2, 'forward');
    // split 20, 200, 20 us/step (mean 80), one thread 30 us/step
    for (const ms of [5.12, 51.2, 5.12]) {
      expect(c.next(a)).toBe(true);
      c.observe(a, true, ms, 256);
      expect(c.next(a)).toBe(false);
      c.observe(a, false, 7.68, 256);
    }
    expect(c.choices()[0]).toMatchObject({ split: true, splitUsPerStep: 20, oneUsPerStep: 30 });
    // single-step calls (a stream fed one step at a time): STEP_SPLIT_PROBE steps each way
    const s = stepSplitShape('lstm', 1, 64, 2, 'forward');
    for (let i = 0; i < STEP_SPLIT_PROBE - 1; i++) {
      c.observe(s, c.next(s), 0.01, 1);
      c.observe(s, c.next(s), 0.01, 1);
    }
    expect(c.choices().find((x) => x.shape === s)!.split).toBe(null);
    c.observe(s, true, 0.005, 1);
    c.observe(s, false, 0.01, 1); // 64 each way; split's median 10 us/step, as one thread's: not faster
    expect(c.choices().find((x) => x.shape === s)).toMatchObject({ split: false, splitUsPerStep: 10, oneUsPerStep: 10 });
  });

  it('after STEP_SPLIT_RECHECK steps the way kept, a shape is timed both ways again (the load of the machine changes), the last choice reported until the new round ends', () => {
    expect(STEP_SPLIT_RECHECK).toBe(64 * STEP_SPLIT_PROBE);
    const c = new StepSplitChooser();
    const a = stepSplitShape('lstm', 1, 256, 2, 'forward');
    const round = (splitMs: number, oneMs: number) => {
      for (let i = 0; i < STEP_SPLIT_CALLS; i++) {
        c.observe(a, true, splitMs, 64);
        c.observe(a, false, oneMs, 64);
      }
    };
    round(1, 2); // split 15.6 us/step, one thread 31.3: split kept
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 100, STEP_SPLIT_RECHECK - 1); // kept ways are not timed (100 ms is not a round's time)
    expect(c.next(a)).toBe(true);
    expect(c.choices()[0]).toMatchObject({ split: true, splitUsPerStep: 15.625, oneUsPerStep: 31.25 });
    c.observe(a, true, 0, 1); // the recheck is due: a new round, split taken first again
    expect(c.next(a)).toBe(true);
    c.observe(a, true, 3, 64); // now split is slower (46.9 us/step)
    expect(c.next(a)).toBe(false);
    expect(c.choices()[0]).toMatchObject({ split: true, splitUsPerStep: 15.625, oneUsPerStep: 31.25 });
    c.observe(a, false, 1, 64); // one thread 15.6 us/step
    round(3, 1); // the new round chooses one thread
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
