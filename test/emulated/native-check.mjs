// The native backend of an installed package checked against the reference backend, kernel by
// kernel, in plain JavaScript (no test runner), so it runs under any Node: used by
// test/arm64.test.ts to run the arm64 addon in an emulated arm64 Node.
//   node native-check.mjs <package root>
// Prints one JSON line: { arch, isa, detail, passed, failed: [{ name, error }] }.
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const root = process.argv[2] && resolve(process.argv[2]);
if (!root) throw new Error('usage: node native-check.mjs <package root>');
const rk = await import(pathToFileURL(join(root, 'dist/index.js')).href);
const {
  Adam, CrossCheckBackend, GRU, LSTM, Linear, RNN, Rng, SGD, Tensor, add, crossEntropy, loadBackend, mul, relu, reshape, sigmoid,
  sum, tanh, withBackend,
} = rk;

const native = loadBackend('native');
const reference = loadBackend('reference');
const addon = createRequire(join(root, 'package.json'))('node-gyp-build')(root);
const result = { arch: process.arch, isa: native.info().isa, detail: native.info().detail, passed: 0, failed: [] };

function check(name, fn) {
  try {
    fn();
    result.passed++;
  } catch (e) {
    result.failed.push({ name, error: String(e?.message ?? e).split('\n')[0] });
  }
}

// ---- SGEMM: the register-tiled kernel against the addon's triple loop, every tile edge
function filled(n, seed) {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.normal());
}
let seed = 1;
for (const M of [1, 2, 3, 7, 8, 9, 17]) {
  for (const N of [1, 5, 12, 13, 25, 50]) {
    for (const K of [1, 7, 33, 257]) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
        check(`gemm M=${M} N=${N} K=${K} tA=${tA} tB=${tB}`, () => {
          const A = filled(M * K, seed++), B = filled(K * N, seed++), C0 = filled(M * N, seed++);
          const beta = M % 2 ? 0.5 : 0, alpha = 1.25;
          const got = C0.slice(), want = C0.slice();
          addon.gemm(tA, tB, M, N, K, alpha, A, tA ? M : K, B, tB ? K : N, beta, got, N);
          addon.gemmNaive(tA, tB, M, N, K, alpha, A, tA ? M : K, B, tB ? K : N, beta, want, N);
          const scale = Math.max(1, ...want.map(Math.abs));
          for (let i = 0; i < M * N; i++) {
            if (!(Math.abs(got[i] - want[i]) <= 1e-5 * scale * Math.sqrt(K))) {
              throw new Error(`element ${i}: ${got[i]} vs ${want[i]}`);
            }
          }
        });
      }
    }
  }
}

// ---- every cell, layout and option through the library, each kernel compared with the
// reference (CrossCheckBackend throws on the first element out of tolerance)
const checked = new CrossCheckBackend(native, reference);
const cells = [
  ['lstm', (o) => new LSTM(o)], ['lstm proj', (o) => new LSTM({ ...o, projSize: 3 })], ['gru', (o) => new GRU(o)],
  ['rnn tanh', (o) => new RNN(o)], ['rnn relu', (o) => new RNN({ ...o, nonlinearity: 'relu' })],
];
for (const [cell, make] of cells) {
  for (const [layers, bidirectional] of [[1, false], [2, true]]) {
    for (const [T, B, I, H] of [[3, 1, 5, 13], [5, 3, 7, 9], [4, 9, 13, 37]]) {
      for (const withLengths of [false, true]) {
        const name = `${cell} layers=${layers} bidirectional=${bidirectional} T=${T} B=${B} I=${I} H=${H} lengths=${withLengths}`;
        check(name, () => withBackend(checked, () => {
          const rng = new Rng(seed++);
          const model = make({ inputSize: I, hiddenSize: H, numLayers: layers, bidirectional, rng });
          const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I], true);
          const lengths = withLengths ? Array.from({ length: B }, (_, b) => T - (b % T)) : undefined;
          const { output, hN } = model.forward(x, lengths ? { lengths } : {});
          const head = new Linear(output.shape[2], 6, { rng });
          const logits = reshape(head.forward(output), [T * B, 6]);
          const targets = Array.from({ length: T * B }, (_, i) => i % 6);
          const loss = add(crossEntropy(logits, targets), sum(mul(hN, hN)));
          loss.backward();
          const params = [...model.parameters(), ...head.parameters()];
          (seed % 2 ? new Adam(params, { lr: 1e-2 }) : new SGD(params, { lr: 1e-2, momentum: 0.9, nesterov: true })).step();
        }));
      }
    }
  }
}

// ---- elementwise ops, every length around the vector width
for (const [name, op] of [['tanh', tanh], ['sigmoid', sigmoid], ['relu', relu]]) {
  for (const n of [1, 3, 4, 5, 8, 13, 64, 67]) {
    check(`${name} n=${n}`, () => withBackend(checked, () => {
      const rng = new Rng(seed++);
      const x = new Tensor(Float32Array.from({ length: n }, () => 4 * rng.normal()), [n], true);
      sum(mul(op(x), op(x))).backward();
    }));
  }
}

console.log(JSON.stringify(result));
