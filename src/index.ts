// rnnkit: recurrent neural networks for Node.js and WebAssembly, numerically identical to PyTorch.
export * from './portable.js';
// Node-only: files on disk.
export { loadSafetensorsFile, saveSafetensorsFile } from './io/files.js';
// Which native binary, ISA, wasm build and backend are in use (`rnnkit doctor`).
export { doctorReport, formatDoctor, type DoctorReport } from './backends/doctor.js';
