// Library-wide options.
import { Tensor, formatShape } from './tensor.js';

/**
 * An environment variable, or undefined where there is no environment or reading it is not
 * allowed (browsers, Cloudflare Workers, Deno without --allow-env).
 */
export function readEnv(name: string): string | undefined {
  try {
    return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  } catch {
    return undefined;
  }
}

let finiteChecks = readEnv('RNNKIT_CHECK_FINITE') === '1';

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
