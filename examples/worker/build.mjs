// Bundles the Worker the way `wrangler deploy` does, for running it locally under miniflare
// (`npm run worker`, and the tests): npm packages resolved and bundled into one module, the .wasm
// files kept as compiled WebAssembly modules and the .safetensors files as data modules beside it.
//   node examples/worker/build.mjs [OUT_DIR]      (default examples/worker/dist)
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));

/** The module rules of wrangler.toml, for miniflare. */
export const MODULE_RULES = [
  { type: 'CompiledWasm', include: ['**/*.wasm'] },
  { type: 'Data', include: ['**/*.safetensors'] },
  { type: 'ESModule', include: ['**/*.js'] },
];

/** Writes OUT_DIR/worker.js and the .wasm and .safetensors files it imports; returns the path of worker.js. */
export async function buildWorker(outDir = join(here, 'dist')) {
  const binaries = new Map(); // file name in outDir -> source path
  await build({
    configFile: false,
    logLevel: 'warn',
    root: here,
    resolve: { conditions: ['workerd', 'worker', 'browser'] },
    plugins: [{
      name: 'worker-binary-modules',
      enforce: 'pre',
      async resolveId(source, importer) {
        if (!/\.(wasm|safetensors)$/.test(source)) return null;
        const resolved = await this.resolve(source, importer, { skipSelf: true });
        if (!resolved) throw new Error(`cannot resolve ${source} from ${importer}`);
        const name = basename(resolved.id);
        if (binaries.has(name) && binaries.get(name) !== resolved.id) throw new Error(`two modules named ${name}`);
        binaries.set(name, resolved.id);
        return { id: `./${name}`, external: true };
      },
      generateBundle() {
        for (const [name, path] of binaries) this.emitFile({ type: 'asset', fileName: name, source: readFileSync(path) });
      },
    }],
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      minify: false,
      lib: { entry: join(here, 'src/index.js'), formats: ['es'], fileName: () => 'worker.js' },
    },
  });
  return join(outDir, 'worker.js');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = await buildWorker(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(`wrote ${out}`);
}
