// A Cloudflare Worker (run by miniflare/workerd in test/wasm-edge.test.ts): the .wasm comes in as
// a compiled WebAssembly.Module import, the golden case in the request body.
import * as api from '../../dist/wasm-entry.js';
import plain from '../../dist/rnnkit.wasm';
import relaxed from '../../dist/rnnkit-relaxed.wasm';
import { goldenForward, threadsCheck } from './golden-forward.mjs';

export default {
  async fetch(request) {
    const body = await request.json();
    // workerd supports relaxed SIMD; a compiled module is passed as is
    let backend;
    try {
      backend = api.createWasmBackend(relaxed);
    } catch {
      backend = api.createWasmBackend(plain);
    }
    const st = Uint8Array.from(atob(body.safetensors), (c) => c.charCodeAt(0));
    const result = goldenForward(api, backend, body.golden, st);
    return Response.json({ runtime: 'workerd', ...result, threaded: await threadsCheck(api, null) });
  },
};
