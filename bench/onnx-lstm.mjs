// A minimal ONNX writer (hand-encoded protobuf) for one LSTM / GRU / RNN node with its weights
// as initializers, so onnxruntime-web can run the same workload as rnnkit without PyTorch.
// Graph: X [T, B, I] -> op(X, W, R, B) -> Y [T, 1, B, H], Y_h [1, B, H]. Weights are random:
// the benchmark measures time, not values.

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const tag = (field, wire) => varint((field << 3) | wire);
const concat = (parts) => {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const int = (field, v) => Uint8Array.from([...tag(field, 0), ...varint(v)]);
const bytes = (field, b) => concat([Uint8Array.from([...tag(field, 2), ...varint(b.length)]), b]);
const str = (field, s) => bytes(field, new TextEncoder().encode(s));
const msg = (field, parts) => bytes(field, concat(parts));

function tensor(name, dims, data) {
  // TensorProto: dims 1, data_type 2 (FLOAT = 1), name 8, raw_data 9
  return [...dims.map((d) => int(1, d)), int(2, 1), str(8, name), bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength))];
}
function valueInfo(name, dims) {
  // ValueInfoProto { name 1, type 2 { tensor_type 1 { elem_type 1, shape 2 { dim 1 { dim_value 1 } } } } }
  const shape = dims.map((d) => msg(1, [int(1, d)]));
  return [str(1, name), msg(2, [msg(1, [int(1, 1), msg(2, shape)])])];
}

/** ONNX model bytes for cell 'lstm' | 'gru' | 'rnn_tanh' over X [T, B, I]. */
export function onnxRecurrentModel(cell, T, B, I, H, rand) {
  const g = cell === 'lstm' ? 4 : cell === 'gru' ? 3 : 1;
  const op = cell === 'lstm' ? 'LSTM' : cell === 'gru' ? 'GRU' : 'RNN';
  const s = 1 / Math.sqrt(H);
  const W = rand(g * H * I, s);
  const R = rand(g * H * H, s);
  const Bias = rand(2 * g * H, s);
  const attrs = [msg(5, [str(1, 'hidden_size'), int(3, H), int(20, 2)])];
  if (cell === 'gru') attrs.push(msg(5, [str(1, 'linear_before_reset'), int(3, 1), int(20, 2)])); // PyTorch's GRU
  const node = msg(1, [str(1, 'X'), str(1, 'W'), str(1, 'R'), str(1, 'B'), str(2, 'Y'), str(2, 'Y_h'), str(4, op), ...attrs]);
  const graph = [
    node,
    str(2, 'rnnkit_bench'),
    msg(5, tensor('W', [1, g * H, I], W)),
    msg(5, tensor('R', [1, g * H, H], R)),
    msg(5, tensor('B', [1, 2 * g * H], Bias)),
    msg(11, valueInfo('X', [T, B, I])),
    msg(12, valueInfo('Y', [T, 1, B, H])),
    msg(12, valueInfo('Y_h', [1, B, H])),
  ];
  return concat([int(1, 8), str(2, 'rnnkit'), msg(7, graph), msg(8, [str(1, ''), int(2, 14)])]);
}
