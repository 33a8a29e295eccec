// Runs the Worker locally under miniflare (workerd, the runtime of Cloudflare Workers):
//   npm run worker        then: curl -s localhost:8787/generate?prime=Call%20me&length=200
import { Miniflare } from 'miniflare';
import { dirname } from 'node:path';
import { buildWorker, MODULE_RULES } from './build.mjs';

const script = await buildWorker();
const port = Number(process.env.PORT ?? 8787);
const mf = new Miniflare({
  modules: true, scriptPath: script, modulesRoot: dirname(script), modulesRules: MODULE_RULES,
  compatibilityDate: '2024-09-23', bindings: { RNNKIT_WASM: process.env.RNNKIT_WASM ?? 'relaxed' }, host: '127.0.0.1', port,
});
console.log(`rnnkit worker on ${await mf.ready}  (Ctrl-C stops it)`);
process.on('SIGINT', () => mf.dispose().then(() => process.exit(0)));
