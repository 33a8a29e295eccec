// The benchmark workloads: one table, read by bench/run.js (native, beside PyTorch and
// onnxruntime-node; bench/torch_bench.py receives the same rows as JSON) and bench/wasm-bench.mjs
// (wasm, beside TensorFlow.js and onnxruntime-web).
//
// Fields of a row:
//   id      name used on the command line (--workloads / --only) and in the result tables
//   cell    'lstm' | 'gru' | 'rnn_tanh' (one recurrent layer stack, kernel level), or 'charlm':
//           Embedding(vocab, emb) -> LSTM x layers -> Linear(hidden, vocab) -> cross-entropy -> Adam
//   input   input features of the first layer (charlm: = emb)
//   hidden  hidden size;  layers  stacked layers;  bidir  bidirectional
//   batch   B;  seq  T (time steps)
//   mode    'train': forward + backward of every parameter and of x (loss = sum(y * G) for a fixed
//           random G; charlm: its loss and an Adam step); 'infer': forward only, no autograd state
//   vocab, emb   charlm only
import { gateCount } from '../dist/backends/cells.js';

/** @type {ReadonlyArray<{id: string, cell: 'lstm'|'gru'|'rnn_tanh'|'charlm', input: number, hidden: number, layers: number, bidir: boolean, batch: number, seq: number, mode: 'train'|'infer', vocab?: number, emb?: number}>} */
export const WORKLOADS = Object.freeze([
  { id: 'lstm-s', cell: 'lstm', input: 32, hidden: 128, layers: 1, bidir: false, batch: 16, seq: 50, mode: 'train' },
  { id: 'lstm-m', cell: 'lstm', input: 64, hidden: 256, layers: 1, bidir: false, batch: 32, seq: 64, mode: 'train' },
  { id: 'lstm-l', cell: 'lstm', input: 256, hidden: 1024, layers: 1, bidir: false, batch: 64, seq: 32, mode: 'train' },
  { id: 'gru-m', cell: 'gru', input: 64, hidden: 256, layers: 1, bidir: false, batch: 32, seq: 64, mode: 'train' },
  { id: 'rnn-m', cell: 'rnn_tanh', input: 64, hidden: 256, layers: 1, bidir: false, batch: 32, seq: 64, mode: 'train' },
  { id: 'bilstm2-m', cell: 'lstm', input: 64, hidden: 256, layers: 2, bidir: true, batch: 32, seq: 64, mode: 'train' },
  { id: 'lstm-m-infer', cell: 'lstm', input: 64, hidden: 256, layers: 1, bidir: false, batch: 32, seq: 64, mode: 'infer' },
  { id: 'lstm-stream', cell: 'lstm', input: 64, hidden: 256, layers: 1, bidir: false, batch: 1, seq: 256, mode: 'infer' },
  { id: 'charlm', cell: 'charlm', emb: 64, vocab: 65, input: 64, hidden: 256, layers: 2, bidir: false, batch: 32, seq: 100, mode: 'train' },
].map((w) => Object.freeze(w)));

/** Gate blocks of a cell, from rnnkit's cell table (charlm is LSTM). */
export const gatesOf = (cell) => gateCount(cell === 'charlm' ? 'lstm' : cell);

/**
 * FLOPs of one step of a workload: 2 per multiply-add of the recurrent layers' products
 * (input and recurrent, every direction and layer), plus charlm's output layer; a train step
 * counts backward as twice the forward.
 */
export function flops(w) {
  const D = w.bidir ? 2 : 1;
  let f = 0;
  for (let l = 0; l < w.layers; l++) {
    const I = l === 0 ? w.input : D * w.hidden;
    f += D * 2 * w.batch * w.seq * (I + w.hidden) * gatesOf(w.cell) * w.hidden;
  }
  if (w.cell === 'charlm') f += 2 * w.batch * w.seq * w.hidden * w.vocab;
  return w.mode === 'train' ? 3 * f : f;
}

/** The rows named in a comma-separated list (all rows for null/undefined); throws on an unknown name. */
export function selectWorkloads(list) {
  if (list === null || list === undefined) return [...WORKLOADS];
  const ids = list.split(',').filter(Boolean);
  const unknown = ids.filter((id) => !WORKLOADS.some((w) => w.id === id));
  if (unknown.length > 0 || ids.length === 0) {
    throw new RangeError(`unknown workload '${unknown.join(',') || list}'; expected a comma-separated list of: ${WORKLOADS.map((w) => w.id).join(', ')}`);
  }
  return WORKLOADS.filter((w) => ids.includes(w.id));
}
