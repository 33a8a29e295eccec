// The timed steps of bench/run.js and bench/compare.mjs on a backend's kernel interface (native
// above all): one place that builds a workload's inputs and its forward (+ backward) step.
// compare.mjs drives older builds with them too, so they use only what those builds share:
// backend.seqForward / seqBackward and the layer API; a bidirectional layer's two directions go
// as one paired call only where the backend takes it (takesPaired).
import { gatesOf } from './workloads.mjs';

/** A fixed-seed generator: the same inputs in every run and every build. */
export function makeRand(seed = 12345) {
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296 - 0.5;
  };
  const randArray = (n, s = 1) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rand() * s;
    return a;
  };
  return { rand, randArray };
}

/**
 * Whether a backend takes a layer's two directions as one paired call (SeqForwardArgs.paired): a
 * build without it ignores the field, leaving the paired call's hN untouched.
 */
export function takesPaired(be) {
  const T = 2, B = 1, I = 1, H = 1;
  const one = () => ({
    cell: 'rnn_tanh', T, B, I, H, P: 0, reverse: false, x: new Float32Array([1, 1]), wIh: new Float32Array([1]),
    wHh: new Float32Array([1]), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
    y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: null, training: false,
  });
  const second = one();
  try {
    be.seqForward({ ...one(), paired: second });
  } catch {
    return false;
  }
  return second.hN[0] !== 0;
}

/**
 * Kernel-level step: each layer's seqForward (+ seqBackward with dy = a fixed random G, every
 * gradient); a bidirectional layer's directions as one paired call where the backend takes it
 * (as the layer API makes it), else one call per direction. Inference passes the weights with
 * the backend's copies of them (SeqForwardArgs.weightCopies) where it makes them (copyWeight), as
 * the layer API does when no graph is recorded.
 */
export function kernelStep(be, w) {
  const paired = w.bidir && takesPaired(be);
  const { randArray } = makeRand();
  const { cell, batch: B, seq: T, hidden: H, layers: L } = w;
  const D = w.bidir ? 2 : 1;
  const G = gatesOf(cell) * H;
  const x = randArray(T * B * w.input); // [T, B, input]
  const layers = [];
  for (let l = 0; l < L; l++) {
    const I = l === 0 ? w.input : D * H;
    const dirs = [];
    for (let d = 0; d < D; d++) {
      const s = 1 / Math.sqrt(H);
      dirs.push({
        wIh: randArray(G * I, 2 * s), wHh: randArray(G * H, 2 * s), bIh: randArray(G, 2 * s), bHh: randArray(G, 2 * s),
        hN: new Float32Array(B * H), cN: cell === 'lstm' ? new Float32Array(B * H) : null,
        dWIh: new Float32Array(G * I), dWHh: new Float32Array(G * H), dBIh: new Float32Array(G), dBHh: new Float32Array(G),
      });
    }
    layers.push({ I, y: new Float32Array(T * B * D * H), dirs, dIn: new Float32Array(T * B * I) });
  }
  const Gy = randArray(T * B * D * H); // dy of the last layer, [T, B, D*H]
  const train = w.mode === 'train';
  if (!train && be.copyWeight) {
    for (const { dirs } of layers) for (const p of dirs) p.copies = [p.wIh, p.wHh, p.bIh, p.bHh, null].map((a) => a && be.copyWeight(a));
  }
  return () => {
    const ctxs = [];
    for (let l = 0; l < L; l++) {
      const { I, y, dirs } = layers[l];
      const input = l === 0 ? x : layers[l - 1].y;
      const call = (p, d) => ({
        cell, T, B, I, H, P: 0, reverse: d === 1, x: input, wIh: p.wIh, wHh: p.wHh, bIh: p.bIh, bHh: p.bHh, wHr: null,
        h0: null, c0: null, lengths: null, y, yStride: D * H, yOffset: d * H, hN: p.hN, cN: p.cN, training: train,
        ...(p.copies ? { weightCopies: p.copies } : {}),
      });
      if (paired) ctxs.push([be.seqForward({ ...call(dirs[0], 0), paired: call(dirs[1], 1) })]);
      else ctxs.push(dirs.map((p, d) => be.seqForward(call(p, d))));
    }
    if (!train) return;
    let dy = Gy;
    for (let l = L - 1; l >= 0; l--) {
      const { dirs, dIn } = layers[l];
      dIn.fill(0);
      const grads = (p, d) => {
        for (const g of [p.dWIh, p.dWHh, p.dBIh, p.dBHh]) g.fill(0);
        return {
          dy, dyStride: D * H, dyOffset: d * H, dhN: null, dcN: null, dx: dIn, dh0: null, dc0: null,
          dWIh: p.dWIh, dWHh: p.dWHh, dBIh: p.dBIh, dBHh: p.dBHh, dWHr: null,
        };
      };
      if (paired) be.seqBackward({ ...grads(dirs[0], 0), ctx: ctxs[l][0], paired: grads(dirs[1], 1) });
      else dirs.forEach((p, d) => be.seqBackward({ ...grads(p, d), ctx: ctxs[l][d] }));
      dy = dIn;
    }
  };
}

/** charlm through the layer API: Embedding -> LSTM x layers -> Linear -> cross-entropy -> Adam. */
export function charlmStep(rnnkit, w) {
  const { rand } = makeRand();
  const { Embedding, LSTM, Linear, Adam, crossEntropy, reshape } = rnnkit;
  const emb = new Embedding(w.vocab, w.emb);
  const lstm = new LSTM({ inputSize: w.emb, hiddenSize: w.hidden, numLayers: w.layers });
  const fc = new Linear(w.hidden, w.vocab);
  const opt = new Adam([...emb.parameters(), ...lstm.parameters(), ...fc.parameters()], { lr: 1e-3 });
  const N = w.seq * w.batch;
  const tokens = Int32Array.from({ length: N }, () => Math.floor((rand() + 0.5) * w.vocab) % w.vocab);
  const targets = Int32Array.from({ length: N }, () => Math.floor((rand() + 0.5) * w.vocab) % w.vocab);
  return () => {
    opt.zeroGrad();
    const x = emb.forward(tokens, [w.seq, w.batch]);
    const { output } = lstm.forward(x);
    const loss = crossEntropy(reshape(fc.forward(output), [N, w.vocab]), targets);
    loss.backward();
    opt.step();
  };
}
