// Deno / Bun: loads dist/wasm-entry.js (no Node APIs), picks the relaxed-SIMD build where the
// runtime validates it, runs the golden lstm forward, checks both threaded builds (1 and 2 threads
// bitwise equal) and prints one JSON line.
//   deno run --allow-read test/edge/runtime-forward.mjs <golden dir>
//   bun test/edge/runtime-forward.mjs <golden dir>
import * as api from '../../dist/wasm-entry.js';
import { goldenForward, threadsCheck } from './golden-forward.mjs';

const args = globalThis.Deno ? Deno.args : Bun.argv.slice(2);
const dir = args[0];
const read = async (p) => new Uint8Array(globalThis.Deno ? await Deno.readFile(p) : await Bun.file(p).arrayBuffer());
const root = new URL('../../dist/', import.meta.url).pathname;
const plain = await read(root + 'rnnkit.wasm');
const relaxed = await read(root + 'rnnkit-relaxed.wasm');
const backend = api.createWasmBackend(api.pickWasmBuild(plain, relaxed));
const golden = JSON.parse(new TextDecoder().decode(await read(`${dir}/lstm.json`)));
const result = goldenForward(api, backend, golden, await read(`${dir}/lstm.safetensors`));
const threads = await read(root + 'rnnkit-threads.wasm');
const threaded = await threadsCheck(api, threads);
// the threaded build's relaxed-SIMD twin, where the runtime validates it
const threadedRelaxed = await threadsCheck(api, api.pickWasmBuild(threads, await read(root + 'rnnkit-threads-relaxed.wasm')));
console.log(JSON.stringify({ runtime: globalThis.Deno ? 'deno' : 'bun', ...result, threaded, threadedRelaxed }));
globalThis.Deno?.exit(0);
