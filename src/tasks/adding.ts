// `adding`: the adding problem (Hochreiter & Schmidhuber 1997) — long-range dependencies.
//
// Input: T steps of two channels, a random value in [0, 1) and a marker that is 1 at exactly two
// steps (one in each half of the sequence). Target: the sum of the two marked values. Predicting
// the constant 1 scores MSE 1/6 = 0.167; solving it needs information from ~T steps back.
// RNN, LSTM and GRU at lengths 50, 100 and 200, with and without gradient clipping; and the
// gradient norm reaching each time step (||dL/dx_t||), which shows the plain RNN's vanishing gradient.
import { Linear, Module, type RecurrentBase, recurrentLayer } from '../nn/layers.js';
import { type LayerName, cellKindOf } from '../backends/cells.js';
import { mseLoss, reshape, select } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { lineChartSvg, type Series } from './plot.js';
import { Rng } from '../core/random.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { Context, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';

export type CellName = LayerName;

/** A batch of the adding problem: x [T, B, 2], y [B, 1]. */
export function addingBatch(T: number, B: number, rng: Rng): { x: Tensor; y: Tensor } {
  const x = new Float32Array(T * B * 2);
  const y = new Float32Array(B);
  const half = Math.floor(T / 2);
  for (let b = 0; b < B; b++) {
    const i = rng.int(half);
    const j = half + rng.int(T - half);
    for (let t = 0; t < T; t++) x[(t * B + b) * 2] = rng.next();
    x[(i * B + b) * 2 + 1] = 1;
    x[(j * B + b) * 2 + 1] = 1;
    y[b] = x[(i * B + b) * 2] + x[(j * B + b) * 2];
  }
  return { x: new Tensor(x, [T, B, 2]), y: new Tensor(y, [B, 1]) };
}

/** Recurrent layer -> final hidden state -> Linear(1). */
export class AddingModel extends Module {
  readonly rnn: RecurrentBase;
  readonly fc: Linear;

  constructor(readonly cell: CellName, readonly hiddenSize: number, rng: Rng) {
    super();
    const o = { inputSize: 2, hiddenSize, rng };
    this.rnn = this.registerModule(cell, recurrentLayer(cellKindOf('AddingModel', cell.toUpperCase()), o));
    this.fc = this.registerModule('fc', new Linear(hiddenSize, 1, { rng }));
  }

  // x [T, B, 2] -> [B, 1]
  forward(x: Tensor): Tensor {
    const { hN } = this.rnn.forward(x);
    return this.fc.forward(reshape(select(hN, 0), [x.shape[1], this.hiddenSize]));
  }
}

/** ||dL/dx_t|| for every t (summed over the batch), L the MSE on a fresh batch. */
export function gradientNormPerStep(model: AddingModel, T: number, B: number, rng: Rng): number[] {
  const { x, y } = addingBatch(T, B, rng);
  const xr = new Tensor(x.data, x.shape, true);
  model.zeroGrad();
  mseLoss(model.forward(xr), y).backward();
  model.zeroGrad();
  const g = xr.grad!;
  return Array.from({ length: T }, (_, t) => {
    let s = 0;
    for (let i = t * B * 2; i < (t + 1) * B * 2; i++) s += g[i] * g[i];
    return Math.sqrt(s);
  });
}

interface RunResult { cell: CellName; T: number; clip: boolean; mse: number; steps: number; seconds: number; gradInit: number[]; gradTrained: number[] }

export async function runAdding(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('adding', opts, 12);
  const quick = opts.quick ?? false;
  const lengths = quick ? [50] : [50, 100, 200];
  const cells: CellName[] = ['rnn', 'lstm', 'gru'];
  const clips = quick ? [true] : [false, true];
  const H = 32;
  const batch = 32;
  const lr = 1e-2;
  const runs = lengths.length * cells.length * clips.length;
  const rows: MetricRow[] = [];
  const results: RunResult[] = [];
  ctx.print(`adding problem: lengths ${lengths.join('/')}, cells ${cells.join('/')}, clipping ${clips.map((c) => (c ? 'on (max norm 1)' : 'off')).join('/')}; hidden ${H}, batch ${batch}, Adam lr ${lr}`);
  ctx.print('trivial predictor (always 1): MSE 1/6 = 0.167');
  for (const T of lengths) {
    for (const cell of cells) {
      for (const clip of clips) {
        const seed = (opts.seed ?? 1) * 1000 + T + cells.indexOf(cell);
        const rng = new Rng(seed);
        const model = new AddingModel(cell, H, rng);
        const gradInit = gradientNormPerStep(model, T, 64, new Rng(7));
        const opt = new Adam(model.parameters(), { lr });
        // longer sequences get a larger share of the time
        const budget = ctx.budget((T / lengths.reduce((a, b) => a + b, 0)) / (cells.length * clips.length), quick ? 1000 : 20_000);
        const label = `${cell} T=${T} clip=${clip ? 'on' : 'off'}`;
        const dataRng = new Rng(seed + 1);
        let ema = NaN;
        while (budget.more()) {
          const { x, y } = addingBatch(T, batch, dataRng);
          opt.zeroGrad();
          const loss = mseLoss(model.forward(x), y);
          loss.backward();
          if (clip) clipGradNorm(model.parameters(), 1);
          opt.step();
          ema = Number.isNaN(ema) ? loss.item() : 0.98 * ema + 0.02 * loss.item();
          budget.tick(label, ema);
        }
        // held-out MSE on fresh sequences
        const evalRng = new Rng(99);
        let se = 0;
        let n = 0;
        noGrad(() => {
          for (let k = 0; k < 4; k++) {
            const { x, y } = addingBatch(T, 256, evalRng);
            const p = model.forward(x);
            for (let i = 0; i < y.size; i++) { se += (p.data[i] - y.data[i]) ** 2; n++; }
          }
        });
        const mse = se / n;
        const gradTrained = gradientNormPerStep(model, T, 64, new Rng(7));
        budget.done(label, `held-out MSE ${mse.toFixed(4)}`);
        results.push({ cell, T, clip, mse, steps: budget.step, seconds: budget.elapsed, gradInit, gradTrained });
        rows.push({ task: `adding T=${T}`, model: `${cell.toUpperCase()}${clip ? ' +clip' : ''}`, metric: 'MSE', value: mse, baseline: 1 / 6, baselineName: 'predict 1', seconds: budget.elapsed });
      }
    }
  }
  const plots: string[] = [];
  for (const T of lengths) {
    const series: Series[] = [];
    const colors: Record<CellName, string> = { rnn: '#d62728', lstm: '#1f77b4', gru: '#2ca02c' };
    for (const r of results.filter((q) => q.T === T && q.clip === clips[clips.length - 1])) {
      // x: steps back from the end (0 = last step); y: gradient norm relative to its largest value
      const norm = (g: number[]) => { const m = Math.max(...g); return g.map((v, t) => [T - 1 - t, v / m] as [number, number]); };
      series.push({ name: `${r.cell.toUpperCase()} at init`, points: norm(r.gradInit), color: colors[r.cell], dashed: true });
      series.push({ name: `${r.cell.toUpperCase()} trained`, points: norm(r.gradTrained), color: colors[r.cell] });
    }
    plots.push(ctx.writePlot(`gradient-norm-T${T}.svg`, lineChartSvg(series, {
      title: `Adding problem, T=${T}: gradient norm reaching each time step (relative to its largest)`,
      xLabel: 'time steps back from the end', yLabel: '||dL/dx_t|| / max', logY: true, legend: 'bottom-right',
    })));
  }
  ctx.print(`steps per run: ${results.map((r) => `${r.cell}/${r.T}/${r.clip ? 'clip' : 'noclip'}=${r.steps}`).join(' ')}`);
  return ctx.finish(rows, { runs: results.map(({ gradInit, gradTrained, ...r }) => ({ ...r, gradInit, gradTrained })), hiddenSize: H, batch, lr, runsCount: runs }, plots);
}
