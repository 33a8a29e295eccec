// Shared plumbing of the examples: options, a time/step budget, progress, the metrics table,
// JSON output and loading bundled data packages (nothing is downloaded).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type BackendName, setBackend, getBackend } from '../backends/index.js';

export interface ExampleOptions {
  /** Training time budget in minutes (each example has its default). */
  minutes?: number;
  /** Cap on optimizer steps (per model); tests use a small one. */
  steps?: number;
  /** Backend name ('auto', 'native', 'wasm', 'reference'). */
  backend?: string;
  /** Threads of a backend that has a pool (native). Default 1: these small models gain nothing from more. */
  threads?: number;
  /** Write the metrics here as JSON. */
  json?: string;
  /** Directory for plots (default examples/out/NAME). */
  outDir?: string;
  /** Use a small subset of the data (tests). */
  quick?: boolean;
  seed?: number;
  /** Print progress and tables (default true). */
  verbose?: boolean;
  /** Where lines go (default stdout). */
  print?: (line: string) => void;
}

export interface MetricRow {
  task: string;
  model: string;
  metric: string;
  value: number;
  baseline?: number;
  baselineName?: string;
  seconds: number;
}

export interface ExampleResult {
  name: string;
  rows: MetricRow[];
  /** Anything else worth keeping (samples, per-model details). */
  details: Record<string, unknown>;
  plots: string[];
  seconds: number;
  backend: string;
}

export class Context {
  readonly opts: ExampleOptions;
  readonly print: (line: string) => void;
  readonly started = Date.now();
  readonly outDir: string;

  constructor(readonly name: string, opts: ExampleOptions, defaultMinutes: number) {
    this.opts = { ...opts, minutes: opts.minutes ?? defaultMinutes };
    const verbose = opts.verbose ?? true;
    this.print = opts.print ?? (verbose ? (l: string) => process.stdout.write(l + '\n') : () => {});
    this.outDir = opts.outDir ?? join('examples', 'out', name);
    if (opts.backend) setBackend(opts.backend as BackendName | 'auto');
    const backend = getBackend() as { setThreads?: (n: number) => void };
    backend.setThreads?.(opts.threads ?? 1);
  }

  get backendName(): string {
    return getBackend().name;
  }

  /** A budget for one training phase: a share of the total minutes and an optional step cap. */
  budget(share: number, defaultSteps = Infinity): Budget {
    return new Budget(this.opts.minutes! * 60 * share, Math.min(this.opts.steps ?? Infinity, defaultSteps), this.opts.verbose === false ? null : this.print);
  }

  writePlot(file: string, svg: string): string {
    mkdirSync(this.outDir, { recursive: true });
    const path = join(this.outDir, file);
    writeFileSync(path, svg);
    return path;
  }

  finish(rows: MetricRow[], details: Record<string, unknown>, plots: string[]): ExampleResult {
    const seconds = (Date.now() - this.started) / 1000;
    const result: ExampleResult = { name: this.name, rows, details, plots, seconds, backend: this.backendName };
    this.print('');
    this.print(formatTable(rows));
    for (const p of plots) this.print(`plot: ${p}`);
    this.print(`total time ${seconds.toFixed(1)} s on backend ${result.backend}`);
    if (this.opts.json) {
      mkdirSync(dirname(this.opts.json) || '.', { recursive: true });
      writeFileSync(this.opts.json, JSON.stringify(result, null, 2) + '\n');
      this.print(`metrics written to ${this.opts.json}`);
    }
    return result;
  }
}

/** Stops training at a time limit or a step cap, whichever comes first; draws a progress line. */
export class Budget {
  readonly start = Date.now();
  step = 0;
  private lastDraw = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(readonly seconds: number, readonly maxSteps: number, private readonly print: ((l: string) => void) | null) {}

  get elapsed(): number {
    return (Date.now() - this.start) / 1000;
  }

  get fraction(): number {
    return Math.min(1, Math.max(this.elapsed / this.seconds, Number.isFinite(this.maxSteps) ? this.step / this.maxSteps : 0));
  }

  /** True while there is budget left for another step. */
  more(): boolean {
    return this.step < this.maxSteps && this.elapsed < this.seconds;
  }

  /** Counts a step and shows progress (a bar on a terminal, a line every 10 s otherwise). */
  tick(label: string, loss: number): void {
    this.step++;
    if (!this.print) return;
    const now = Date.now();
    const f = this.fraction;
    const eta = f > 0 ? this.elapsed * (1 / f - 1) : NaN;
    const text = `${label} step ${this.step} loss ${loss.toFixed(4)} ETA ${Number.isFinite(eta) ? Math.round(eta) + 's' : '--'}`;
    if (this.tty) {
      if (now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round(f * width);
      process.stderr.write(`\r${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${String(Math.floor(f * 100)).padStart(3)}% ${text}\x1b[K`);
    } else if (this.lastDraw === 0 || now - this.lastDraw >= 10_000) {
      this.lastDraw = now;
      this.print(`[${Math.floor(f * 100)}%] ${text}`);
    }
  }

  /** Ends the progress line. */
  done(label: string, line = ''): void {
    if (this.print && this.tty) process.stderr.write('\r\x1b[K');
    this.print?.(`${label}: ${this.step} steps in ${this.elapsed.toFixed(1)} s${line ? ', ' + line : ''}`);
  }
}

function fmtValue(metric: string, v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (/accuracy|precision|recall|f1|error rate|wer|per/i.test(metric)) return (100 * v).toFixed(2) + '%';
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}

/** The final metrics table as aligned text. */
export function formatTable(rows: MetricRow[]): string {
  const header = ['task', 'model', 'metric', 'value', 'baseline', 'time'];
  const body = rows.map((r) => [
    r.task, r.model, r.metric, fmtValue(r.metric, r.value),
    r.baseline === undefined ? '-' : `${fmtValue(r.metric, r.baseline)}${r.baselineName ? ' (' + r.baselineName + ')' : ''}`,
    `${r.seconds.toFixed(0)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const requireHere = createRequire(import.meta.url);

/** Absolute path of a file inside an installed package (a dependency or devDependency). */
export function packageFile(pkg: string, file: string): string {
  // look in every node_modules directory Node would search (packages with an "exports" map may not expose package.json)
  for (const dir of requireHere.resolve.paths(pkg) ?? []) {
    const path = join(dir, pkg, file);
    if (existsSync(path)) return path;
  }
  throw new Error(`the example needs the npm package ${pkg} (file ${file}): install it with \`npm install --save-dev ${pkg}\``);
}

/** Loads a CommonJS data package (the @stdlib datasets) by name. */
export function requirePackage<T>(pkg: string): T {
  try {
    return requireHere(pkg) as T;
  } catch (e) {
    throw new Error(`the example needs the npm package ${pkg}: install it with \`npm install --save-dev ${pkg}\` (${(e as Error).message})`);
  }
}
