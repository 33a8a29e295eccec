// Training progress: a one-line progress bar with ETA, loss and tokens/s on a terminal; plain
// periodic lines when the output is not a terminal (CI logs).

/**
 * What a progress display shows: step, fraction done, time left, loss, bits per token, speed,
 * learning rate, gradient norm, epoch, last validation.
 */
export interface ProgressInfo {
  step: number;
  /** Fraction of the run done, 0..1 (steps, epochs or time, whichever budget binds). */
  fraction: number;
  /** Estimated seconds left (NaN when unknown). */
  etaSeconds: number;
  loss: number;
  /** Bits per token of the training loss. */
  bits: number;
  tokensPerSecond: number;
  lr: number;
  gradNorm: number;
  epoch: number;
  valBits?: number;
}

/** Receives progress updates from a training run (e.g. `ConsoleProgress`). */
export interface ProgressSink {
  update(info: ProgressInfo): void;
  /** A line that must not be overwritten (validation results, checkpoints). */
  log(line: string): void;
  end(): void;
}

/**
 * Options of `ConsoleProgress`: the stream to write to, and whether to draw a bar (default: when
 * the stream is a terminal).
 */
export interface ProgressOptions {
  stream?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** Force the bar (true) or plain lines (false); default: the stream's isTTY. */
  tty?: boolean;
  /** Plain mode: seconds between lines (default 10). */
  intervalSeconds?: number;
  /** Name of the bits unit: 'bpc' for characters, 'bits' otherwise. */
  bitsLabel?: string;
}

/** Seconds as m:ss or h:mm:ss (e.g. 3:05, 1:02:09); "--:--" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(h > 0 ? 2 : 1, '0');
  return `${h > 0 ? h + ':' : ''}${mm}:${String(sec).padStart(2, '0')}`;
}

function fmtRate(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

/** A one-line progress bar on a terminal (plain lines when the output is not a terminal). */
export class ConsoleProgress implements ProgressSink {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly bitsLabel: string;
  private lastPlain = 0;
  private drawn = false;
  private lastDraw = 0;
  private last: ProgressInfo | null = null;

  constructor(o: ProgressOptions = {}) {
    this.stream = o.stream ?? process.stderr;
    this.tty = o.tty ?? Boolean((this.stream as { isTTY?: boolean }).isTTY);
    this.intervalMs = (o.intervalSeconds ?? 10) * 1000;
    this.bitsLabel = o.bitsLabel ?? 'bpc';
  }

  private text(i: ProgressInfo): string {
    const val = i.valBits !== undefined ? ` val ${i.valBits.toFixed(3)}` : '';
    return `step ${i.step} loss ${i.loss.toFixed(3)} (${i.bits.toFixed(3)} ${this.bitsLabel})${val} ${fmtRate(i.tokensPerSecond)} tok/s ETA ${formatDuration(i.etaSeconds)}`;
  }

  update(i: ProgressInfo): void {
    this.last = i;
    if (this.tty) {
      const now = Date.now();
      if (this.drawn && now - this.lastDraw < 100 && i.fraction < 1) return; // at most 10 redraws a second
      this.lastDraw = now;
      const columns = (this.stream as { columns?: number }).columns || 100;
      const pct = `${Math.floor(i.fraction * 100).toString().padStart(3)}%`;
      const text = this.text(i);
      const width = Math.max(10, Math.min(30, columns - text.length - pct.length - 5));
      const filled = Math.round(Math.min(1, Math.max(0, i.fraction)) * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      this.stream.write(`\r${bar} ${pct} ${text}`.slice(0, columns + 1) + '\x1b[K');
      this.drawn = true;
    } else {
      const now = Date.now();
      if (this.lastPlain === 0 || now - this.lastPlain >= this.intervalMs) {
        this.lastPlain = now;
        this.stream.write(`[${Math.floor(i.fraction * 100)}%] ${this.text(i)}\n`);
      }
    }
  }

  log(line: string): void {
    if (this.tty && this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(line + '\n');
    if (this.tty && this.last) this.update(this.last);
  }

  end(): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    else if (!this.tty && this.last) this.stream.write(`[done] ${this.text(this.last)}\n`);
    this.drawn = false;
  }
}

/** A sink that prints nothing. */
export const silentProgress: ProgressSink = { update() {}, log() {}, end() {} };
