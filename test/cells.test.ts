// The cell table (src/backends/cells.ts) is the one description of each recurrent cell: the
// layers, the one-step cells and every backend's validation take their facts from it.
import { describe, expect, it } from 'vitest';
import { CELL_KINDS, CELLS, LAYER_NAMES, MODULE_NAMES, cellKindOf, gateCount, hasCellState, parameterNames } from '../src/backends/cells.js';
import { recurrentLayer, stepCell } from '../src/nn/layers.js';
import { GRU, GRUCell, LSTM, LSTMCell, RNN, Rng, Tensor, getBackend, noGrad, withBackend } from '../src/index.js';
import type { SeqForwardArgs } from '../src/backends/backend.js';
import { TESTED_BACKENDS } from './helpers.js';

describe('the cell table', () => {
  it('ids are 0, 1, 2, ... in table order; gate names are distinct', () => {
    expect(CELL_KINDS.map((k) => CELLS[k].id)).toEqual(CELL_KINDS.map((_, i) => i));
    for (const k of CELL_KINDS) expect(new Set(CELLS[k].gates).size, k).toBe(gateCount(k));
  });

  it('PyTorch gate orders and states', () => {
    expect(CELLS.lstm.gates).toEqual(['i', 'f', 'g', 'o']);
    expect(CELLS.gru.gates).toEqual(['r', 'z', 'n']);
    expect(CELL_KINDS.filter(hasCellState)).toEqual(['lstm']);
    expect(MODULE_NAMES).toEqual(['LSTM', 'GRU', 'RNN']);
    expect(LAYER_NAMES).toEqual(['lstm', 'gru', 'rnn']);
  });

  it('module name and nonlinearity lead back to the kind; others are refused naming the accepted values', () => {
    for (const k of CELL_KINDS) expect(cellKindOf('t', CELLS[k].module, CELLS[k].nonlinearity ?? undefined, CELLS[k].resetAfter ?? undefined)).toBe(k);
    expect(cellKindOf('t', 'GRU')).toBe('gru'); // PyTorch's form by default
    expect(cellKindOf('t', 'GRU', undefined, false)).toBe('gru_reset_before');
    expect(() => cellKindOf('t', 'Transformer')).toThrow('t: module must be one of LSTM, GRU, RNN, received Transformer');
    expect(() => cellKindOf('t', 'RNN', 'gelu')).toThrow("t: nonlinearity must be 'tanh' or 'relu', received 'gelu'");
  });

  it('PyTorch parameter names', () => {
    expect(parameterNames('lstm', 1, true, { bias: true, projSize: 2 })).toEqual({
      wIh: 'weight_ih_l1_reverse', wHh: 'weight_hh_l1_reverse', bIh: 'bias_ih_l1_reverse', bHh: 'bias_hh_l1_reverse', wHr: 'weight_hr_l1_reverse',
    });
    expect(parameterNames('gru', null, false, { bias: false, projSize: 0 })).toEqual({ wIh: 'weight_ih', wHh: 'weight_hh', bIh: null, bHh: null, wHr: null });
  });
});

describe.each(CELL_KINDS)('%s: layers built from the table row', (kind) => {
  const spec = CELLS[kind];
  const H = 3;

  it('the layer: class, cell, parameter names and shapes', () => {
    const layer = recurrentLayer(kind, { inputSize: 2, hiddenSize: H, numLayers: 2, bidirectional: true, rng: new Rng(1) });
    expect(layer.constructor.name).toBe(spec.module);
    expect(layer.cell).toBe(kind);
    const shapes = Object.fromEntries(layer.namedParameters().map(([n, p]) => [n, p.shape]));
    const names = parameterNames(kind, 1, true, { bias: true, projSize: 0 });
    expect(shapes[names.wIh]).toEqual([gateCount(kind) * H, 2 * H]);
    expect(shapes[names.wHh]).toEqual([gateCount(kind) * H, H]);
    expect(shapes[names.bHh!]).toEqual([gateCount(kind) * H]);
    expect(Object.keys(shapes)).toHaveLength(2 * 2 * 4);
  });

  it('projection allowed exactly where the table says', () => {
    const make = () => recurrentLayer(kind, { inputSize: 2, hiddenSize: H, projSize: 2, rng: new Rng(1) });
    if (spec.projection) expect(make().projSize).toBe(2);
    else expect(make).toThrow(`${spec.module}: projSize is only supported by LSTM`);
  });

  it('the one-step cell: class, parameters', () => {
    const cell = stepCell(kind, 2, H, { rng: new Rng(1) });
    expect(cell.constructor.name).toBe(spec.stepModule);
    expect(cell.cell).toBe(kind);
    expect(cell.weightIh.shape).toEqual([gateCount(kind) * H, 2]);
  });

  for (const backend of TESTED_BACKENDS) {
    it(`${backend}: the states of the table (cN only with the state c), and a step cell agrees with the layer`, () => withBackend(backend, () => {
      const rng = new Rng(3);
      const layer = recurrentLayer(kind, { inputSize: 2, hiddenSize: H, rng });
      const x = new Tensor(Float32Array.from({ length: 2 * 2 }, () => rng.normal()), [1, 2, 2]);
      const out = layer.forward(x);
      expect(out.cN !== null).toBe(hasCellState(kind));
      const cell = stepCell(kind, 2, H, { rng });
      const names = parameterNames(kind, 0, false, { bias: true, projSize: 0 });
      const params = new Map(layer.namedParameters());
      cell.weightIh.data.set(params.get(names.wIh)!.data);
      cell.weightHh.data.set(params.get(names.wHh)!.data);
      cell.biasIh!.data.set(params.get(names.bIh!)!.data);
      cell.biasHh!.data.set(params.get(names.bHh!)!.data);
      const s = cell.step(new Tensor(x.data, [2, 2]));
      expect(Array.from(s.h.data)).toEqual(Array.from(out.hN.data));
      expect(s.c !== null).toBe(hasCellState(kind));
    }));
  }
});

describe('inference (no saved activations) gives the training forward\'s outputs', () => {
  for (const backend of TESTED_BACKENDS) {
    for (const kind of CELL_KINDS) {
      for (const hard of CELLS[kind].gateActivation ? [false, true] : [false]) {
        it(`${backend}: ${kind}${hard ? ' hard sigmoid' : ''}, bidirectional with lengths`, () => withBackend(backend, () => {
          const rng = new Rng(8);
          const layer = recurrentLayer(kind, {
            inputSize: 3, hiddenSize: 5, numLayers: 2, bidirectional: true, rng, ...(hard ? { recurrentActivation: 'hardSigmoid' as const } : {}),
          });
          const x = new Tensor(Float32Array.from({ length: 6 * 3 * 3 }, () => rng.normal() * 2), [6, 3, 3]);
          const lengths = [6, 2, 4];
          const train = layer.forward(x, { lengths });
          const infer = noGrad(() => layer.forward(x, { lengths }));
          expect(Array.from(infer.output.data)).toEqual(Array.from(train.output.data));
          expect(Array.from(infer.hN.data)).toEqual(Array.from(train.hN.data));
          const ref = withBackend('reference', () => noGrad(() => layer.forward(x, { lengths })));
          for (let i = 0; i < ref.output.size; i++) expect(Math.abs(infer.output.data[i] - ref.output.data[i])).toBeLessThan(1e-5);
        }));
      }
    }
  }
});

describe('the cell options: resetAfter and recurrentActivation', () => {
  const base = { inputSize: 2, hiddenSize: 3 };
  it('GRU resetAfter false is the reset-before cell; the hard sigmoid takes TF.js\'s slope and offset by default', () => {
    expect(new GRU({ ...base, resetAfter: false }).cell).toBe('gru_reset_before');
    expect(new GRU(base).cell).toBe('gru');
    expect(new GRUCell(2, 3, { resetAfter: false }).cell).toBe('gru_reset_before');
    expect(new LSTM({ ...base, recurrentActivation: 'hardSigmoid' }).recurrentActivation).toEqual({ kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 });
    expect(new GRU({ ...base, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 1 / 6 }).recurrentActivation).toEqual({ kind: 'hardSigmoid', alpha: 1 / 6, beta: 0.5 });
    expect(new LSTM(base).recurrentActivation).toEqual({ kind: 'sigmoid' });
  });
  it('bad options are refused naming the option, the expected and the received value', () => {
    expect(() => new LSTM({ ...base, resetAfter: false })).toThrow('LSTM: resetAfter is only for GRU, received resetAfter=false');
    expect(() => new RNN({ ...base, resetAfter: true })).toThrow('RNN: resetAfter is only for GRU, received resetAfter=true');
    expect(() => new GRU({ ...base, resetAfter: 'no' as unknown as boolean })).toThrow("GRU: resetAfter must be true or false, received 'no'");
    expect(() => new LSTM({ ...base, recurrentActivation: 'hard_sigmoid' as 'hardSigmoid' })).toThrow("LSTM: recurrentActivation must be one of 'sigmoid', 'hardSigmoid', received 'hard_sigmoid'");
    expect(() => new RNN({ ...base, recurrentActivation: 'hardSigmoid' })).toThrow("RNN: recurrentActivation 'hardSigmoid' is only for LSTM, GRU (cells with sigmoid gates), received it for RNN");
    expect(() => new RNN({ ...base, recurrentActivation: 'sigmoid' })).toThrow("RNN: recurrentActivation is only for LSTM, GRU, received recurrentActivation 'sigmoid'");
    expect(() => new LSTM({ ...base, hardSigmoidAlpha: 0.3 })).toThrow("LSTM: hardSigmoidAlpha applies to recurrentActivation 'hardSigmoid', received hardSigmoidAlpha=0.3 with recurrentActivation 'sigmoid'");
    expect(() => new GRU({ ...base, recurrentActivation: 'hardSigmoid', hardSigmoidAlpha: 0 })).toThrow('GRU: hardSigmoid alpha (slope) must be positive, received 0');
    expect(() => new GRU({ ...base, recurrentActivation: 'hardSigmoid', hardSigmoidBeta: NaN })).toThrow('GRU: hardSigmoid beta must be a finite number, received NaN');
    expect(() => new LSTMCell(2, 3, { recurrentActivation: 'tanh' as 'sigmoid' })).toThrow("LSTMCell: recurrentActivation must be one of 'sigmoid', 'hardSigmoid', received 'tanh'");
  });
  for (const backend of TESTED_BACKENDS) {
    it(`${backend}: seqForward refuses a bad recurrentActivation naming it`, () => withBackend(backend, () => {
      const f = new Float32Array(64);
      const args = (cell: string, act: unknown) => ({
        cell, T: 1, B: 1, I: 2, H: 2, P: 0, reverse: false, x: f, wIh: f, wHh: f, bIh: null, bHh: null, wHr: null,
        h0: null, c0: null, lengths: null, y: f, yStride: 2, yOffset: 0, hN: f, cN: cell === 'lstm' ? f : null, training: false,
        recurrentActivation: act,
      } as unknown as SeqForwardArgs);
      expect(() => getBackend().seqForward(args('lstm', { kind: 'relu6' }))).toThrow(`${backend}.seqForward(lstm): recurrentActivation must be { kind: 'sigmoid' } or { kind: 'hardSigmoid', alpha, beta }, received {"kind":"relu6"}`);
      expect(() => getBackend().seqForward(args('rnn_tanh', { kind: 'hardSigmoid', alpha: 0.2, beta: 0.5 }))).toThrow(`${backend}.seqForward(rnn_tanh): recurrentActivation 'hardSigmoid' is only for LSTM, GRU`);
      expect(() => getBackend().seqForward(args('gru', { kind: 'hardSigmoid', alpha: 0.2 }))).toThrow(`${backend}.seqForward(gru): hardSigmoid beta must be a finite number, received undefined`);
    }));
  }
});

describe('an unknown cell kind is refused by every backend, naming the kinds', () => {
  for (const backend of TESTED_BACKENDS) {
    it(backend, () => withBackend(backend, () => {
      const f = new Float32Array(16);
      const args = {
        cell: 'mgu', T: 1, B: 1, I: 2, H: 2, P: 0, reverse: false, x: f, wIh: f, wHh: f, bIh: null, bHh: null, wHr: null,
        h0: null, c0: null, lengths: null, y: f, yStride: 2, yOffset: 0, hN: f, cN: null, training: false,
      } as unknown as SeqForwardArgs;
      expect(() => getBackend().seqForward(args)).toThrow(`${backend}.seqForward(mgu): cell must be one of ${CELL_KINDS.join(', ')}, received mgu`);
    }));
  }
});
