// The browser end of `node bench/wasm-bench.mjs --browser chromium`: a module Web Worker of a
// cross-origin isolated page (so the threaded build can start its own workers), served from the
// repository root by the bench. It answers the bench's messages with bench/wasm-steps.mjs.
import * as api from '/dist/wasm-entry.js';
import { BUILDS, benchServer } from './wasm-steps.mjs';

const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
const builds = Object.fromEntries(await Promise.all(Object.entries(BUILDS).map(async ([name, file]) => [name, await bytes(`/dist/${file}`)])));
const loadOrt = async (threads = 1) => {
  const ort = await import('/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = threads;
  return ort;
};
const serve = benchServer(api, builds, loadOrt);

self.onmessage = async (e) => {
  const { id, msg } = e.data;
  try {
    self.postMessage({ id, result: await serve(msg) });
  } catch (err) {
    self.postMessage({ id, error: String((err && err.stack) || err) });
  }
};
self.postMessage({ ready: true });
