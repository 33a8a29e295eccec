// PyTorch state_dicts (safetensors) to modules: the cell, sizes and stacking read from the names
// and shapes, as torch.nn.RNN / LSTM / GRU name them (weight_ih_l0, weight_hh_l0_reverse, ...),
// optionally inside a model with `embedding.weight` in front and `fc.weight` / `fc.bias` behind.
import { Embedding, GRU, LSTM, Linear, RNN, type RecurrentBase } from '../nn/layers.js';
import { RecurrentModel } from '../nn/models.js';
import type { NamedTensor } from './safetensors.js';

/** What a state_dict does not record: a plain RNN's nonlinearity. */
export interface StateDictOptions {
  /** A plain RNN's nonlinearity (not recorded in a state_dict): 'tanh' (default) or 'relu'. */
  nonlinearity?: 'tanh' | 'relu';
}

const RECURRENT_KEY = /^(?:(lstm|gru|rnn)\.)?(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$/;

/**
 * The module a PyTorch state_dict describes, its weights loaded: a bare RNN / LSTM / GRU (names
 * weight_ih_l0 ...) or a RecurrentModel (`embedding.*`, `lstm.*` / `gru.*` / `rnn.*`, `fc.*`, the
 * names of rnnkit's LanguageModel). The cell is read from the shapes: weight_ih rows = 4H (LSTM),
 * 3H (GRU), H (RNN).
 */
export function moduleFromStateDict(state: Map<string, NamedTensor>, options: StateDictOptions = {}): RecurrentBase | RecurrentModel {
  const nonlinearity = options.nonlinearity ?? 'tanh';
  if (nonlinearity !== 'tanh' && nonlinearity !== 'relu') throw new RangeError(`nonlinearity must be 'tanh' or 'relu', received '${String(nonlinearity)}'`);
  const prefixes = new Set<string>();
  let layers = 0;
  let reverse = false;
  const unexpected: string[] = [];
  for (const key of state.keys()) {
    const m = RECURRENT_KEY.exec(key);
    if (m) {
      prefixes.add(m[1] ?? '');
      layers = Math.max(layers, Number(m[3]) + 1);
      reverse ||= m[4] !== undefined;
    } else if (!['embedding.weight', 'fc.weight', 'fc.bias'].includes(key)) {
      unexpected.push(key);
    }
  }
  if (unexpected.length) throw new Error(`state_dict: unexpected tensor names ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''} (expected a PyTorch RNN / LSTM / GRU, optionally with embedding.weight and fc.weight / fc.bias)`);
  if (prefixes.size === 0) throw new Error('state_dict: no recurrent weights (weight_ih_l0, ...)');
  if (prefixes.size > 1) throw new Error(`state_dict: recurrent weights under several names (${[...prefixes].map((p) => p || '(none)').join(', ')})`);
  const prefix = [...prefixes][0];
  const at = (name: string) => state.get(prefix ? `${prefix}.${name}` : name);
  for (let l = 0; l < layers; l++) {
    if (!at(`weight_ih_l${l}`)) throw new Error(`state_dict: weight_ih_l${l} is missing (the weights name layers up to ${layers - 1})`);
  }
  const wIh = at('weight_ih_l0');
  const wHh = at('weight_hh_l0');
  if (!wIh || !wHh || wIh.shape.length !== 2 || wHh.shape.length !== 2) throw new Error('state_dict: weight_ih_l0 and weight_hh_l0 must both be present and 2-D');
  const hr = at('weight_hr_l0');
  const projSize = hr ? hr.shape[0] : 0;
  const H = hr ? hr.shape[1] : wHh.shape[1];
  const gates = wIh.shape[0] / H;
  const cell = gates === 4 ? 'lstm' : gates === 3 ? 'gru' : gates === 1 ? 'rnn' : null;
  if (!cell || !Number.isInteger(gates)) {
    throw new Error(`state_dict: weight_ih_l0 has ${wIh.shape[0]} rows for hidden size ${H}; expected ${H} (RNN), ${3 * H} (GRU) or ${4 * H} (LSTM)`);
  }
  if (prefix && prefix !== cell) throw new Error(`state_dict: the weights under '${prefix}.' have the shapes of a ${cell.toUpperCase()}`);
  const ro = { inputSize: wIh.shape[1], hiddenSize: H, numLayers: layers, bidirectional: reverse, bias: at('bias_ih_l0') !== undefined, projSize };
  const rnn = cell === 'lstm' ? new LSTM(ro) : cell === 'gru' ? new GRU(ro) : new RNN({ ...ro, nonlinearity });
  const emb = state.get('embedding.weight');
  const fcW = state.get('fc.weight');
  if ((emb || fcW) && !prefix) throw new Error('state_dict: embedding / fc weights next to unprefixed recurrent weights (expected lstm.*, gru.* or rnn.*)');
  const embedding = emb ? new Embedding(emb.shape[0], emb.shape[1] ?? 0) : null;
  const fc = fcW ? new Linear(fcW.shape[1] ?? 0, fcW.shape[0], { bias: state.has('fc.bias') }) : null;
  if (!fcW && state.has('fc.bias')) throw new Error('state_dict: fc.bias without fc.weight');
  const module = prefix ? new RecurrentModel({ embedding, rnn, fc }) : rnn;
  module.loadStateDict(state); // checks every name and shape, all problems in one message
  return module.eval();
}
