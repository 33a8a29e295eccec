// Shared by every runtime test (plain JS, no Node APIs): runs the golden case lstm through the
// wasm backend's seqForward with the weights from the .safetensors file and returns the worst
// relative error of output, h_n and c_n against PyTorch's expected values.
export function goldenForward(api, backend, golden, safetensorsBytes) {
  const { tensors } = api.readSafetensors(safetensorsBytes);
  const w = (name) => tensors.get(name).data;
  const { input_size: I, hidden_size: H } = golden.config;
  const x = golden.inputs.x;
  const [T, B] = x.shape;
  const f32 = (t) => (t ? Float32Array.from(t.data.flat(Infinity)) : null);
  const y = new Float32Array(T * B * H);
  const hN = new Float32Array(B * H);
  const cN = new Float32Array(B * H);
  backend.seqForward({
    cell: 'lstm', T, B, I, H, P: 0, reverse: false, x: f32(x),
    wIh: w('weight_ih_l0'), wHh: w('weight_hh_l0'), bIh: w('bias_ih_l0'), bHh: w('bias_hh_l0'), wHr: null,
    h0: f32(golden.inputs.h0), c0: f32(golden.inputs.c0), lengths: null,
    y, yStride: H, yOffset: 0, hN, cN, training: false,
  });
  const rel = (got, want) => {
    const flat = want.data.flat(Infinity);
    let maxW = 0, maxD = 0;
    for (let i = 0; i < flat.length; i++) {
      maxW = Math.max(maxW, Math.abs(flat[i]));
      maxD = Math.max(maxD, Math.abs(got[i] - flat[i]));
    }
    if (got.length !== flat.length) return Infinity;
    return maxD / Math.max(maxW, 1e-30);
  };
  const e = golden.expected;
  const error = Math.max(rel(y, e.output), rel(hN, e.h_n), rel(cN, e.c_n));
  return { error, isa: backend.info().isa, y0: y[0] };
}
