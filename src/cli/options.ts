// What every `rnnkit` command shares: where output goes, the error type, and the option parsers
// (each bad value gets one message naming the option, what it expects and what it received).
import { InvalidArgumentError, Option } from 'commander';
import type { MatmulPrecision } from '../backends/backend.js';
import { MATMUL_PRECISIONS } from '../backends/backend.js';
import { BACKEND_NAMES, type BackendName, setBackend, setMatmulPrecision } from '../backends/index.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Progress output (stderr in the CLI); tests pass a plain stream. */
  progressStream?: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

/** A problem with the command line or its files: one line on stderr, exit code 2. */
export class CliError extends Error {}

// ---- number parsers: commander prefixes "option '--x <n>' argument 'v' is invalid." ----
export function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}
export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a non-negative integer.');
  return n;
}
export function positiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.');
  return n;
}
export function nonNegativeNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}
export function fraction(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n < 1)) throw new InvalidArgumentError('expected a number in [0, 1).');
  return n;
}
export function probability(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError('expected a number in (0, 1].');
  return n;
}

export const backendOption = () => new Option('--backend <name>', 'kernels to use (default: auto, or RNNKIT_BACKEND)').choices(['auto', ...BACKEND_NAMES]);
export const matmulPrecisionOption = () => new Option('--matmul-precision <p>', 'highest: fp32 products (default, or RNNKIT_MATMUL_PRECISION); '
  + 'medium: bf16 products with fp32 sums where the CPU has AVX512_BF16 or arm64 BF16 (native backend; torch.set_float32_matmul_precision)').choices([...MATMUL_PRECISIONS]);

/** Applies --backend and --matmul-precision; a backend that does not load is a CliError. */
export function applyBackend(name: string | undefined, matmulPrecision?: MatmulPrecision): void {
  if (matmulPrecision) setMatmulPrecision(matmulPrecision);
  if (!name) return;
  try {
    setBackend(name as BackendName | 'auto');
  } catch (e) {
    throw new CliError(`--backend ${name}: ${(e as Error).message}`);
  }
}
