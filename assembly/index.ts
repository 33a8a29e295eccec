// rnnkit WebAssembly kernels (AssemblyScript, --enable simd [,relaxed-simd], --runtime stub).
//
// Memory model: JavaScript owns the layout of linear memory (src/backends/wasm-core.ts keeps a
// growing arena above heapBase()) and passes byte offsets. Every buffer is float32 row-major
// unless it says i32. Nothing here allocates.
//
// Shapes use the letters of src/backends/backend.ts: T steps, B batch, I input, H hidden,
// P projection, R = P > 0 ? P : H, G = gates * H. "TB" = T * B rows (time-major).
// An i32 "tIdx" array [B] gives, for one processing step, the real time index t of every batch
// row (or -1 when that sequence is already finished); "prevT" [B] gives the time index of the
// step processed before (or -1 = the initial state h0/c0).

// The kernels live in modules that mirror native/: common.ts (loads, stores, multiply-add),
// math.ts (activations, element-wise ops: native/kernels.inc), gemm.ts (native/gemm.cpp and the
// GEMM of kernels.inc), cells.ts (fused gate rows and sequence helpers: native/seq.cpp),
// losses.ts (native/losses.cpp), optim.ts (native/optim.cpp). This file lists the module's
// exports, which src/backends/wasm-core.ts declares as WasmKernels (test/binding-surface.test.ts
// checks both lists agree).

/** First byte JS may use for its arena. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

/** 1 when built with relaxed SIMD (f32x4.relaxed_madd), else 0. */
export function isRelaxed(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}

export { unaryBackward, unaryForward, vecMath } from './math';
export { gemm, gemmNaive, gemmPacked, gemmPackedCols, gemmSmallM, packB, packedASize, packedBSize, setTile, tileRows } from './gemm';
export {
  addColumnSums, addColumnSumsCols, addDy, addInto, fillBias, fillBiasRows, gatherRows, gruResetBeforeStepBackward, gruResetBeforeStepForward,
  gruResetBeforeStepGates, gruResetBeforeStepResetBackward, gruStepBackward, gruStepForward, lstmBackwardUnits,
  lstmForwardSteps, lstmStepBackward, lstmStepForward, rnnStepBackward, rnnStepForward, scatterRows,
  ROWS_GRU, ROWS_LSTM, ROWS_RNN_RELU, ROWS_RNN_TANH, seqBackwardRows, seqForwardRows,
} from './cells';
export { crossEntropyBackward, crossEntropyForward, crossEntropyForwardRows, sumSquares } from './losses';
export { adamUpdate, adamUpdateRange, sgdUpdate } from './optim';
