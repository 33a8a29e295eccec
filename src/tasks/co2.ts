// `co2`: forecasting with windows of the past -> several steps ahead.
//
// 1. Monthly CO2 concentration at Mauna Loa (vega-datasets co2-concentration.csv): the past 36
//    months (value, and the month as sin/cos) -> the next 12 months. Normalisation per window: the
//    targets are changes from the window's last value, divided by one scale from the training part
//    (so the trend never leaves the range seen in training).
// 2. Multi-feature: daily Seattle weather (seattle-weather.csv): precipitation, max and min
//    temperature and wind over the past 28 days (z-scored, plus the day of year) -> the max and
//    min temperature of the next 7 days (14 outputs).
// LSTM -> final hidden state -> Linear, early-stopped on the stretch before the held-out part.
// RMSE and MAE on the held-out final stretch, beside the
// seasonal-naive forecast (the value one season earlier: 12 months, or 365 days); SVG plots.
import { readFileSync } from 'node:fs';
import { LSTM, Linear, Module } from '../nn/layers.js';
import { mseLoss, reshape, select } from '../core/ops.js';
import { Adam, clipGradNorm } from '../nn/optim.js';
import { lineChartSvg } from './plot.js';
import { Rng } from '../core/random.js';
import { Tensor, noGrad } from '../core/tensor.js';
import { mae, rmse } from './metrics.js';
import { Context, packageFile, type Budget, type ExampleOptions, type ExampleResult, type MetricRow } from './common.js';

/** Rows of a CSV file with a header line (no quoted commas in these files). */
export function readCsv(path: string): Array<Record<string, string>> {
  const lines = readFileSync(path, 'utf8').trim().split(/\r?\n/);
  const header = lines[0].split(',');
  return lines.slice(1).map((l) => {
    const cells = l.split(',');
    return Object.fromEntries(header.map((h, i) => [h, cells[i]]));
  });
}

/** The monthly CO2 series, one value per month from the first to the last date, gaps interpolated linearly. */
export function loadCo2(): { months: string[]; values: number[] } {
  const rows = readCsv(packageFile('vega-datasets', 'data/co2-concentration.csv'));
  const monthIndex = (d: string) => { const [y, m] = d.split('-').map(Number); return y * 12 + (m - 1); };
  const first = monthIndex(rows[0].Date);
  const last = monthIndex(rows[rows.length - 1].Date);
  const values = new Array<number>(last - first + 1).fill(NaN);
  for (const r of rows) values[monthIndex(r.Date) - first] = Number(r.CO2);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isNaN(values[i])) continue;
    let j = i;
    while (Number.isNaN(values[j])) j++;
    const a = values[i - 1];
    const b = values[j];
    for (let k = i; k < j; k++) values[k] = a + ((b - a) * (k - i + 1)) / (j - i + 1);
  }
  const months = values.map((_, i) => { const m = first + i; return `${Math.floor(m / 12)}-${String((m % 12) + 1).padStart(2, '0')}`; });
  return { months, values };
}

/** LSTM over the window -> final hidden state -> Linear(outputs). */
export class Forecaster extends Module {
  readonly lstm: LSTM;
  readonly fc: Linear;

  constructor(inputs: number, readonly hiddenSize: number, outputs: number, rng: Rng) {
    super();
    this.lstm = this.registerModule('lstm', new LSTM({ inputSize: inputs, hiddenSize, rng }));
    this.fc = this.registerModule('fc', new Linear(hiddenSize, outputs, { rng }));
  }

  // x [T, B, inputs] -> [B, outputs]
  forward(x: Tensor): Tensor {
    const { hN } = this.lstm.forward(x);
    return this.fc.forward(reshape(select(hN, 0), [x.shape[1], this.hiddenSize]));
  }
}

interface WindowTask {
  /** Input window for origin t (the last input step is t): [W][F]. */
  input(t: number): number[];
  /** Normalised targets for origin t. */
  target(t: number): number[];
  /** Model outputs -> forecasts in the data's units (same layout as truth). */
  denormalise(t: number, out: ArrayLike<number>): number[];
  truth(t: number): number[];
  W: number;
  F: number;
  outputs: number;
}

/**
 * Adam on random windows; the last 15% of the training origins (the stretch just before the
 * held-out part) are a validation set: the model with the lowest validation loss is kept, and
 * training stops after 10 checks without improvement.
 */
function trainForecaster(task: WindowTask, origins: number[], budget: Budget, label: string, hidden: number, seed: number): Forecaster {
  const model = new Forecaster(task.F, hidden, task.outputs, new Rng(seed));
  const opt = new Adam(model.parameters(), { lr: 3e-3 });
  const rng = new Rng(seed + 1);
  const nVal = Math.max(1, Math.round(origins.length * 0.15));
  // a gap of one horizon keeps validation targets out of the training windows
  const trainOrigins = origins.slice(0, origins.length - nVal - task.outputs);
  const val = windowBatch(task, origins.slice(origins.length - nVal));
  const B = 32;
  let ema = NaN;
  let best = { loss: Infinity, step: 0, state: model.stateDict() };
  let sinceBest = 0;
  while (budget.more() && sinceBest < 10) {
    if (budget.fraction > 0.7 && opt.lr > 1e-3) opt.lr = 1e-3;
    const batch = Array.from({ length: B }, () => trainOrigins[rng.int(trainOrigins.length)]);
    const { x, y } = windowBatch(task, batch);
    opt.zeroGrad();
    const loss = mseLoss(model.forward(x), y);
    loss.backward();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    ema = Number.isNaN(ema) ? loss.item() : 0.95 * ema + 0.05 * loss.item();
    budget.tick(label, ema);
    if (budget.step % 250 === 0) {
      const v = noGrad(() => mseLoss(model.forward(val.x), val.y).item());
      if (v < best.loss) { best = { loss: v, step: budget.step, state: model.stateDict() }; sinceBest = 0; } else sinceBest++;
    }
  }
  if (best.step > 0) model.loadStateDict(best.state);
  model.eval();
  return model;
}

function windowBatch(task: WindowTask, origins: number[]): { x: Tensor; y: Tensor } {
  const B = origins.length;
  const { W, F } = task;
  const x = new Float32Array(W * B * F);
  origins.forEach((t, b) => {
    const inp = task.input(t);
    for (let w = 0; w < W; w++) for (let f = 0; f < F; f++) x[(w * B + b) * F + f] = inp[w * F + f];
  });
  return { x: new Tensor(x, [W, B, F]), y: new Tensor(origins.flatMap((t) => task.target(t)), [B, task.outputs]) };
}

function forecast(model: Forecaster, task: WindowTask, origins: number[]): number[][] {
  return noGrad(() => {
    const out = model.forward(windowBatch(task, origins).x);
    return origins.map((t, b) => task.denormalise(t, out.data.subarray(b * task.outputs, (b + 1) * task.outputs)));
  });
}

export async function runCo2(opts: ExampleOptions = {}): Promise<ExampleResult> {
  const ctx = new Context('co2', opts, 4);
  const quick = opts.quick ?? false;
  const seed = opts.seed ?? 1;
  const rows: MetricRow[] = [];
  const plots: string[] = [];
  const details: Record<string, unknown> = {};

  // ---- monthly CO2: 36 months -> 12 months
  {
    const { months, values } = loadCo2();
    const N = values.length;
    const W = 36;
    const Hz = 12;
    const testStart = N - Math.round(N * 0.1); // the final 10%: targets from here on are held out
    const trainOrigins: number[] = [];
    for (let t = W - 1; t + Hz < testStart; t++) trainOrigins.push(t);
    const testOrigins: number[] = [];
    for (let t = testStart - 1; t + Hz < N; t++) testOrigins.push(t);
    // one scale for all changes: the std of 12-month-ahead changes in the training part
    const diffs = trainOrigins.flatMap((t) => Array.from({ length: Hz }, (_, h) => values[t + 1 + h] - values[t]));
    const scale = Math.sqrt(diffs.reduce((s, d) => s + d * d, 0) / diffs.length);
    const monthOf = (i: number) => Number(months[i].slice(5)) - 1;
    const task: WindowTask = {
      W, F: 3, outputs: Hz,
      input: (t) => Array.from({ length: W }, (_, w) => {
        const i = t - W + 1 + w;
        const a = (2 * Math.PI * monthOf(i)) / 12;
        return [(values[i] - values[t]) / scale, Math.sin(a), Math.cos(a)];
      }).flat(),
      target: (t) => Array.from({ length: Hz }, (_, h) => (values[t + 1 + h] - values[t]) / scale),
      denormalise: (t, out) => Array.from(out, (v) => values[t] + v * scale),
      truth: (t) => values.slice(t + 1, t + 1 + Hz),
    };
    const naive = (t: number) => Array.from({ length: Hz }, (_, h) => values[t + 1 + h - 12]);
    const budget = ctx.budget(0.55, quick ? 400 : Infinity);
    const model = trainForecaster(task, trainOrigins, budget, 'co2 LSTM', quick ? 32 : 64, seed);
    const preds = forecast(model, task, testOrigins);
    const truth = testOrigins.flatMap((t) => task.truth(t));
    const flat = preds.flat();
    const naiveFlat = testOrigins.flatMap(naive);
    const r = { rmse: rmse(flat, truth), mae: mae(flat, truth), naiveRmse: rmse(naiveFlat, truth), naiveMae: mae(naiveFlat, truth) };
    budget.done('co2 LSTM', `RMSE ${r.rmse.toFixed(3)} ppm vs seasonal-naive ${r.naiveRmse.toFixed(3)}`);
    details.co2 = { ...r, months: N, testFrom: months[testStart], trainWindows: trainOrigins.length, testWindows: testOrigins.length, scale };
    rows.push({ task: 'co2 (12 months ahead)', model: 'LSTM 36 months -> 12', metric: 'RMSE (ppm)', value: r.rmse, baseline: r.naiveRmse, baselineName: 'seasonal naive', seconds: budget.elapsed });
    rows.push({ task: 'co2 (12 months ahead)', model: 'LSTM 36 months -> 12', metric: 'MAE (ppm)', value: r.mae, baseline: r.naiveMae, baselineName: 'seasonal naive', seconds: budget.elapsed });
    // plot: history, then forecasts from origins every 12 months across the held-out stretch
    const year = (i: number) => Number(months[i].slice(0, 4)) + monthOf(i) / 12;
    const plotFrom = Math.max(0, testStart - 120);
    const fc: Array<[number, number]> = [];
    const nv: Array<[number, number]> = [];
    for (let k = 0; k < testOrigins.length; k += Hz) {
      const t = testOrigins[k];
      preds[k].forEach((v, h) => fc.push([year(t + 1 + h), v]));
      naive(t).forEach((v, h) => nv.push([year(t + 1 + h), v]));
    }
    plots.push(ctx.writePlot('co2-forecast.svg', lineChartSvg([
      { name: 'history', points: values.slice(plotFrom, testStart).map((v, i) => [year(plotFrom + i), v]), color: '#333' },
      { name: 'truth (held out)', points: values.slice(testStart).map((v, i) => [year(testStart + i), v]), color: '#2ca02c' },
      { name: 'LSTM forecast (12 months from each origin)', points: fc, color: '#1f77b4' },
      { name: 'seasonal naive', points: nv, color: '#d62728', dashed: true },
    ], { title: `CO2 at Mauna Loa: 12-month forecasts on the held-out stretch (RMSE ${r.rmse.toFixed(2)} vs naive ${r.naiveRmse.toFixed(2)} ppm)`, xLabel: 'year', yLabel: 'CO2 (ppm)', markerX: year(testStart) })));
  }

  // ---- Seattle weather: 4 series (+ day of year) over 28 days -> max/min temperature for 7 days
  {
    const data = readCsv(packageFile('vega-datasets', 'data/seattle-weather.csv'));
    const cols = ['precipitation', 'temp_max', 'temp_min', 'wind'];
    const series = cols.map((c) => data.map((r) => Number(r[c])));
    const N = data.length;
    const W = 28;
    const Hz = 7;
    const outCols = [1, 2];
    const testStart = N - 365; // the final year is held out
    const mean = series.map((s) => s.slice(0, testStart).reduce((a, b) => a + b, 0) / testStart);
    const std = series.map((s, k) => Math.sqrt(s.slice(0, testStart).reduce((a, b) => a + (b - mean[k]) ** 2, 0) / testStart));
    const doy = (i: number) => { const d = new Date(data[i].date + 'T00:00:00Z'); return (d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86400000; };
    const task: WindowTask = {
      W, F: cols.length + 2, outputs: Hz * outCols.length,
      input: (t) => Array.from({ length: W }, (_, w) => {
        const i = t - W + 1 + w;
        const a = (2 * Math.PI * doy(i)) / 365.25;
        return [...series.map((s, k) => (s[i] - mean[k]) / std[k]), Math.sin(a), Math.cos(a)];
      }).flat(),
      // layout [h][output column]
      target: (t) => Array.from({ length: Hz }, (_, h) => outCols.map((k) => (series[k][t + 1 + h] - mean[k]) / std[k])).flat(),
      denormalise: (_t, out) => Array.from(out, (v, j) => v * std[outCols[j % outCols.length]] + mean[outCols[j % outCols.length]]),
      truth: (t) => Array.from({ length: Hz }, (_, h) => outCols.map((k) => series[k][t + 1 + h])).flat(),
    };
    const trainOrigins: number[] = [];
    for (let t = W - 1; t + Hz < testStart; t++) trainOrigins.push(t);
    const testOrigins: number[] = [];
    for (let t = testStart - 1; t + Hz < N; t++) testOrigins.push(t);
    const naive = (t: number) => Array.from({ length: Hz }, (_, h) => outCols.map((k) => series[k][t + 1 + h - 365])).flat();
    const persistence = (t: number) => Array.from({ length: Hz }, () => outCols.map((k) => series[k][t])).flat();
    const budget = ctx.budget(0.4, quick ? 300 : Infinity);
    const model = trainForecaster(task, trainOrigins, budget, 'weather LSTM', quick ? 32 : 64, seed + 7);
    const preds = forecast(model, task, testOrigins);
    const truth = testOrigins.flatMap((t) => task.truth(t));
    const flat = preds.flat();
    const r = {
      rmse: rmse(flat, truth), mae: mae(flat, truth),
      naiveRmse: rmse(testOrigins.flatMap(naive), truth), naiveMae: mae(testOrigins.flatMap(naive), truth),
      persistenceRmse: rmse(testOrigins.flatMap(persistence), truth), persistenceMae: mae(testOrigins.flatMap(persistence), truth),
    };
    budget.done('weather LSTM', `RMSE ${r.rmse.toFixed(3)} °C vs seasonal-naive ${r.naiveRmse.toFixed(3)}, persistence ${r.persistenceRmse.toFixed(3)}`);
    details.weather = { ...r, days: N, testFrom: data[testStart].date, trainWindows: trainOrigins.length, testWindows: testOrigins.length };
    const m = 'LSTM 4 series x 28 days -> 2 x 7';
    rows.push({ task: 'seattle temp (7 days ahead)', model: m, metric: 'RMSE (°C)', value: r.rmse, baseline: r.naiveRmse, baselineName: 'seasonal naive (365 d)', seconds: budget.elapsed });
    rows.push({ task: 'seattle temp (7 days ahead)', model: m, metric: 'MAE (°C)', value: r.mae, baseline: r.naiveMae, baselineName: 'seasonal naive (365 d)', seconds: budget.elapsed });
    rows.push({ task: 'seattle temp (7 days ahead)', model: m, metric: 'RMSE (°C)', value: r.rmse, baseline: r.persistenceRmse, baselineName: 'persistence', seconds: budget.elapsed });
    const day = (i: number) => i - testStart;
    plots.push(ctx.writePlot('seattle-forecast.svg', lineChartSvg([
      { name: 'max temperature (truth)', points: testOrigins.map((t) => [day(t + 1), series[1][t + 1]]), color: '#333' },
      { name: 'LSTM, 1 day ahead', points: testOrigins.map((t, k) => [day(t + 1), preds[k][0]]), color: '#1f77b4' },
      { name: 'LSTM, 7 days ahead', points: testOrigins.map((t, k) => [day(t + 7), preds[k][(Hz - 1) * 2]]), color: '#9467bd' },
      { name: 'seasonal naive (a year earlier)', points: testOrigins.map((t) => [day(t + 1), series[1][t + 1 - 365]]), color: '#d62728', dashed: true },
    ], { title: `Seattle max temperature, held-out final year (${data[testStart].date} on)`, xLabel: 'day of the held-out year', yLabel: '°C' })));
  }
  return ctx.finish(rows, details, plots);
}
