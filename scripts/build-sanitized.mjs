// Builds the native addon with a sanitizer into build/<kind>/rnnkit.node, beside the normal build:
//   node scripts/build-sanitized.mjs asan   AddressSanitizer + UndefinedBehaviorSanitizer
//   node scripts/build-sanitized.mjs tsan   ThreadSanitizer (the thread pool, overlapping jobs)
// Load it with RNNKIT_NATIVE_ADDON=build/<kind>/rnnkit.node and the runtime preloaded (Node itself is
// not instrumented), e.g. for asan:
//   LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
//   RNNKIT_NATIVE_ADDON=build/asan/rnnkit.node node app.js
// (test/native-concurrency.test.ts runs the overlap scenarios this way when the builds exist).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FLAGS = {
  asan: '-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1',
  tsan: '-fsanitize=thread -g -O1',
};
const kind = process.argv[2];
if (!(kind in FLAGS)) {
  console.error(`usage: node scripts/build-sanitized.mjs <${Object.keys(FLAGS).join('|')}>, received ${kind ?? 'nothing'}`);
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// node-gyp builds in <dir>/build: build a copy of the sources under build/ so the normal build stays
const work = join(root, 'build', `${kind}-src`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
cpSync(join(root, 'binding.gyp'), join(work, 'binding.gyp'));
cpSync(join(root, 'native'), join(work, 'native'), { recursive: true });
// npm's own node-gyp, with Node's headers from the installation (nothing is downloaded)
const prefix = join(dirname(process.execPath), '..');
const nodeGyp = join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
const flags = FLAGS[kind];
execFileSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${prefix}`, '--jobs=2'], {
  cwd: work, stdio: 'inherit',
  env: { ...process.env, CFLAGS: flags, CXXFLAGS: flags, LDFLAGS: flags.replace(/ -O1| -g/g, '') },
});
mkdirSync(join(root, 'build', kind), { recursive: true });
cpSync(join(work, 'build/Release/rnnkit.node'), join(root, 'build', kind, 'rnnkit.node'));
console.log(`wrote build/${kind}/rnnkit.node`);
