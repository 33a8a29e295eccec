// Library-wide options.
import { Tensor, formatShape } from './tensor.js';

const env = typeof process === 'undefined' ? {} : process.env;
let finiteChecks = env.RNNKIT_CHECK_FINITE === '1';

/**
 * When on, layers check their inputs for NaN and Inf before any kernel runs and throw naming
 * the argument and the first bad element. Off by default (it costs a pass over the data);
 * RNNKIT_CHECK_FINITE=1 turns it on.
 */
export function setCheckFinite(on: boolean): void {
  finiteChecks = on;
}

export function checkFinite(where: string, arg: string, t: Tensor): void {
  if (!finiteChecks) return;
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      throw new RangeError(`${where}: ${arg} contains ${d[i]} at flat index ${i} (shape ${formatShape(t.shape)}); inputs must be finite`);
    }
  }
}
