// A short native training loop through the public API, run under valgrind (memcheck) by
// test/native-valgrind.test.ts: a 2-layer LSTM + Linear head, cross-entropy, Adam, a few steps,
// plus one inference forward and one async forward. Prints one JSON line with the losses.
import { Adam, LSTM, Linear, Rng, Tensor, crossEntropy, getBackend, noGrad, noGradAsync, setBackend } from '../dist/index.js';

setBackend('native');

// Everything the run makes lives in this function, so that nothing of it is reachable afterwards.
async function run() {
  const rng = new Rng(3);
  const T = 5, B = 3, I = 4, H = 8, C = 6;
  const lstm = new LSTM({ inputSize: I, hiddenSize: H, numLayers: 2, rng });
  const head = new Linear(H, C, { rng });
  const params = [...lstm.parameters(), ...head.parameters()];
  const opt = new Adam(params, { lr: 1e-2 });
  const x = new Tensor(Float32Array.from({ length: T * B * I }, () => rng.normal()), [T, B, I]);
  const targets = Int32Array.from({ length: T * B }, (_, i) => i % C);
  const losses = [];
  for (let step = 0; step < Number(process.env.RNNKIT_VALGRIND_STEPS ?? 3); step++) {
    opt.zeroGrad();
    const { output } = lstm.forward(x);
    const loss = crossEntropy(head.forward(output), targets);
    loss.backward();
    opt.step();
    losses.push(loss.item());
  }
  const y = noGrad(() => lstm.forward(x)).output;
  const ya = (await noGradAsync(() => lstm.forwardAsync(x))).output;
  return { backend: getBackend().name, losses, same: y.data.every((v, i) => v === ya.data[i]) };
}
console.log(JSON.stringify(await run()));
// Let the garbage collector finalize the addon's objects (sequence contexts held by the tape, the
// weight copies forwardAsync keeps for the model) before exit, as a long-running process would once
// the model is gone: what is left after that is a leak, not objects still in use.
if (globalThis.gc) {
  for (let i = 0; i < 4; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
}
