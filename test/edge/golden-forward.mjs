// Shared by every runtime test (plain JS, no Node APIs): through the public model API of
// rnnkit/wasm (dist/wasm-entry.js) on the given wasm backend, loads the golden case lstm's
// weights from its .safetensors bytes, runs the forward pass and returns the worst relative
// error of output, h_n and c_n against PyTorch's expected values; then trains the layer for a
// few Adam steps and reports that the loss went down.
export function goldenForward(api, backend, golden, safetensorsBytes) {
  api.setBackend(backend);
  const { tensors } = api.readSafetensors(safetensorsBytes);
  const { input_size: inputSize, hidden_size: hiddenSize } = golden.config;
  const lstm = new api.LSTM({ inputSize, hiddenSize });
  lstm.loadStateDict(tensors);
  const tensor = (t) => (t ? new api.Tensor(Float32Array.from(t.data.flat(Infinity)), t.shape) : null);
  const x = tensor(golden.inputs.x);
  const { output, hN, cN } = lstm.forward(x, { h0: tensor(golden.inputs.h0), c0: tensor(golden.inputs.c0) });
  const rel = (got, want) => {
    const flat = want.data.flat(Infinity);
    if (got.length !== flat.length) return Infinity;
    let maxW = 0, maxD = 0;
    for (let i = 0; i < flat.length; i++) {
      maxW = Math.max(maxW, Math.abs(flat[i]));
      maxD = Math.max(maxD, Math.abs(got[i] - flat[i]));
    }
    return maxD / Math.max(maxW, 1e-30);
  };
  const e = golden.expected;
  const error = Math.max(rel(output.data, e.output), rel(hN.data, e.h_n), rel(cN.data, e.c_n));

  // train: pull the output towards zero for a few steps
  const opt = new api.Adam(lstm.parameters(), { lr: 0.05 });
  const losses = [];
  for (let step = 0; step < 5; step++) {
    const loss = api.mean(api.mul(lstm.forward(x).output, lstm.forward(x).output));
    opt.zeroGrad();
    loss.backward();
    opt.step();
    losses.push(loss.item());
  }
  const trained = losses[losses.length - 1] < losses[0];
  return { error, isa: backend.info().isa, y0: output.data[0], trained };
}

/**
 * The threaded build (rnnkit-threads.wasm) where the runtime allows it: an LSTM training step
 * (cross-entropy loss, one Adam step) big enough for its recurrent steps, loss and update to be
 * split, on 1 and on 2 threads; reports whether the results are bitwise equal. Where threads are not available, the reason the library gives.
 */
export async function threadsCheck(api, threadsBytes) {
  const why = api.wasmThreadsUnavailable();
  if (why) return { threads: 1, why };
  const run = async (threads) => {
    const backend = await api.createWasmBackendAsync(threadsBytes, { threads });
    api.setBackend(backend);
    const rng = new api.Rng(3);
    const lstm = new api.LSTM({ inputSize: 16, hiddenSize: 128, rng });
    const x = new api.Tensor(Float32Array.from({ length: 6 * 24 * 16 }, () => rng.normal()), [6, 24, 16]);
    const { output } = lstm.forward(x);
    // the batch splits into one part per thread, each running every step alone; cross-entropy's
    // 144 rows of 128 logits and Adam over the 65536 elements of W_hh split too
    const targets = Int32Array.from({ length: 6 * 24 }, () => rng.int(128));
    api.crossEntropy(output, targets).backward();
    const out = [output.data.slice(), ...lstm.parameters().map((p) => p.grad.slice())];
    new api.Adam(lstm.parameters(), { lr: 1e-2 }).step();
    out.push(...lstm.parameters().map((p) => p.data.slice()));
    // batches of 32 and 29 rows, which end in a partial register tile (2 or 5 rows of 6 with
    // relaxed SIMD, 4 rows of 4 without), over packed sequences: GRU and RNN forward and backward
    for (const B of [32, 29]) {
      const xb = new api.Tensor(Float32Array.from({ length: 5 * B * 16 }, () => rng.normal()), [5, B, 16]);
      const lengths = Int32Array.from({ length: B }, (_, b) => 1 + ((b * 3) % 5));
      for (const m of [new api.GRU({ inputSize: 16, hiddenSize: 64, rng }), new api.RNN({ inputSize: 16, hiddenSize: 64, rng })]) {
        const y = m.forward(xb, { lengths }).output;
        api.mseLoss(y, api.Tensor.zeros(y.shape)).backward();
        out.push(y.data.slice(), ...m.parameters().map((p) => p.grad.slice()));
      }
    }
    const info = backend.info();
    const split = backend.splitGemms;
    backend.close();
    return { out, info, split };
  };
  const one = await run(1);
  const two = await run(2);
  const equal = one.out.every((a, i) => a.length === two.out[i].length && a.every((v, k) => Object.is(v, two.out[i][k])));
  return { threads: two.info.threads, isa: two.info.isa, split: two.split, equal };
}
