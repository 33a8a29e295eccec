// rnnkit: recurrent neural networks for Node.js and WebAssembly, numerically identical to PyTorch.
export * from './portable.js';
// Node-only: files on disk.
export { loadSafetensorsFile, saveSafetensorsFile } from './io/files.js';
// Which native binary, ISA, wasm build and backend are in use (`rnnkit doctor`).
export { doctorReport, formatDoctor, type DoctorReport } from './backends/doctor.js';
// The native backend with options (stepSplit), for setBackend.
export { loadNativeBackend, NativeBackend, type NativeBackendOptions } from './backends/native.js';
export type { StepSplitChoice } from './backends/step-split.js';
// ONNX in and out (encoded with the onnx-proto package: bundle it to use it outside Node).
export { toOnnx, loadOnnx, OnnxError, type OnnxExportOptions, type OnnxExportable } from './io/onnx.js';
