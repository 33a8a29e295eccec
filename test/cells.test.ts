// The cell table (src/backends/cells.ts) is the one description of each recurrent cell: the
// layers, the one-step cells and every backend's validation take their facts from it.
import { describe, expect, it } from 'vitest';
import { CELL_KINDS, CELLS, LAYER_NAMES, MODULE_NAMES, cellKindOf, gateCount, hasCellState, parameterNames } from '../src/backends/cells.js';
import { recurrentLayer, stepCell } from '../src/nn/layers.js';
import { Rng, Tensor, getBackend, withBackend } from '../src/index.js';
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
    for (const k of CELL_KINDS) expect(cellKindOf('t', CELLS[k].module, CELLS[k].nonlinearity ?? undefined)).toBe(k);
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
