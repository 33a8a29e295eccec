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
