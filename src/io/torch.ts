// PyTorch state_dicts (safetensors) to modules: the cell, sizes and stacking read from the names
// and shapes, as torch.nn.RNN / LSTM / GRU name them (weight_ih_l0, weight_hh_l0_reverse, ...),
// optionally inside a model with `embedding.weight` in front and `fc.weight` / `fc.bias` behind.
//
// PyTorch has no reset-before GRU and no hard-sigmoid gates: rnnkit keeps those options in the
// safetensors metadata (cellMetadata / cellOptionsFromMetadata), so such a file round-trips in
// rnnkit, and torchStateDict (a state_dict for PyTorch) refuses such a module.
import { Embedding, GRU, LSTM, Linear, RNN, RecurrentBase, type RNNOptions, type StateDict } from '../nn/layers.js';
import { RecurrentModel } from '../nn/models.js';
import { type NamedTensor, readSafetensors } from './safetensors.js';

/**
 * What a state_dict does not record: a plain RNN's nonlinearity, and the options PyTorch has no
 * equivalent of (kept in rnnkit's safetensors metadata: cellOptionsFromMetadata).
 */
export interface StateDictOptions extends Pick<RNNOptions, 'resetAfter' | 'recurrentActivation' | 'hardSigmoidAlpha' | 'hardSigmoidBeta'> {
  /** A plain RNN's nonlinearity (not recorded in a state_dict): 'tanh' (default) or 'relu'. */
  nonlinearity?: 'tanh' | 'relu';
}

/** The metadata keys of the cell options (their RNNOptions names). */
const CELL_METADATA_KEYS = ['resetAfter', 'recurrentActivation', 'hardSigmoidAlpha', 'hardSigmoidBeta'] as const;

function recurrentOf(module: RecurrentBase | { rnn: RecurrentBase }): RecurrentBase {
  return module instanceof RecurrentBase ? module : module.rnn;
}

/**
 * The safetensors metadata that records a module's cell options PyTorch does not have (a
 * reset-before GRU, hard-sigmoid gates): empty for a module PyTorch can build.
 */
export function cellMetadata(module: RecurrentBase | { rnn: RecurrentBase }): Record<string, string> {
  return recurrentOf(module).cellOptions();
}

/** The cell options a safetensors file's metadata records (cellMetadata); other keys are ignored. */
export function cellOptionsFromMetadata(metadata: Record<string, string>): StateDictOptions {
  const out: StateDictOptions = {};
  const { resetAfter, recurrentActivation, hardSigmoidAlpha, hardSigmoidBeta } = metadata;
  if (resetAfter !== undefined) {
    if (resetAfter !== 'true' && resetAfter !== 'false') throw new Error(`metadata resetAfter must be 'true' or 'false', received '${resetAfter}'`);
    out.resetAfter = resetAfter === 'true';
  }
  if (recurrentActivation !== undefined) {
    if (recurrentActivation !== 'sigmoid' && recurrentActivation !== 'hardSigmoid') {
      throw new Error(`metadata recurrentActivation must be 'sigmoid' or 'hardSigmoid', received '${recurrentActivation}'`);
    }
    out.recurrentActivation = recurrentActivation;
  }
  for (const [key, v] of [['hardSigmoidAlpha', hardSigmoidAlpha], ['hardSigmoidBeta', hardSigmoidBeta]] as const) {
    if (v === undefined) continue;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`metadata ${key} must be a finite number, received '${v}'`);
    out[key] = n;
  }
  return out;
}

/**
 * The module's parameters as a PyTorch state_dict (torch.nn.LSTM / GRU / RNN names). Refuses a
 * module PyTorch has no layer for (a reset-before GRU, hard-sigmoid gates): its weights would
 * load into a different cell. Save such a module with saveSafetensorsFile (the options go into
 * the metadata) to read it back in rnnkit.
 */
export function torchStateDict(module: RecurrentBase | RecurrentModel): StateDict {
  const options = cellMetadata(module);
  const keys = Object.keys(options);
  if (keys.length) {
    const what = [
      ...(options.resetAfter === 'false' ? ['a reset-before GRU (resetAfter: false)'] : []),
      ...(options.recurrentActivation ? [`hard-sigmoid gates (recurrentActivation 'hardSigmoid', alpha ${options.hardSigmoidAlpha}, beta ${options.hardSigmoidBeta})`] : []),
    ].join(' and ');
    throw new Error(`PyTorch export: torch.nn has no layer with ${what}; PyTorch would run these weights as a different cell (save as rnnkit safetensors, ONNX or TF.js instead)`);
  }
  return module.stateDict();
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
  const ro: RNNOptions = { inputSize: wIh.shape[1], hiddenSize: H, numLayers: layers, bidirectional: reverse, bias: at('bias_ih_l0') !== undefined, projSize };
  for (const key of CELL_METADATA_KEYS) if (options[key] !== undefined) (ro as unknown as Record<string, unknown>)[key] = options[key];
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

/**
 * The module a safetensors file holds (its bytes): moduleFromStateDict with the cell options its
 * metadata records (cellMetadata: a reset-before GRU, hard-sigmoid gates) over `options`.
 */
export function moduleFromSafetensors(bytes: Uint8Array, options: StateDictOptions = {}): RecurrentBase | RecurrentModel {
  const { tensors, metadata } = readSafetensors(bytes);
  return moduleFromStateDict(tensors, { ...options, ...cellOptionsFromMetadata(metadata) });
}
