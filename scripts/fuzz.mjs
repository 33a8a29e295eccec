// Long fuzzing runs of the parsers of outside bytes (test/fuzz-targets.mjs): loops every target
// with fresh random seeds until the time is up, printing inputs/s per target and, for a failure,
// the target, the seed and the shrunk input (replay: --target NAME --seed SEED).
//   npm run fuzz -- --minutes 10 [--target safetensors] [--seed 123]
// Needs the compiled package (npm run build:ts). Exits 1 when any input failed.
import { TARGETS, cleanupFixtures, fc } from '../test/fuzz-targets.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const minutes = Number(opt('minutes', '1'));
if (!(minutes > 0)) { console.error(`--minutes must be a positive number, received ${opt('minutes')}`); process.exit(2); }
const only = opt('target', null);
const fixedSeed = opt('seed', null);
const targets = TARGETS.filter((t) => !only || t.name === only);
if (targets.length === 0) { console.error(`--target must be one of ${TARGETS.map((t) => t.name).join(', ')}, received ${only}`); process.exit(2); }

const deadline = Date.now() + minutes * 60_000;
const perTarget = (minutes * 60_000) / targets.length;
let failures = 0;
for (const [k, t] of targets.entries()) {
  const { arbitrary, check } = await t.setup();
  const until = Math.min(deadline, Date.now() + perTarget);
  let inputs = 0;
  const t0 = performance.now();
  do {
    const seed = fixedSeed !== null ? Number(fixedSeed) : (Math.random() * 2 ** 31) | 0;
    const numRuns = Math.max(100, Math.min(2000, t.runs / 10));
    const r = fc.check(fc.property(arbitrary, (input) => { check(input); }), { seed, numRuns });
    inputs += r.numRuns;
    if (r.failed) {
      failures++;
      console.log(`FAIL ${t.name} seed ${seed} (after ${r.numRuns} inputs, shrunk ${r.numShrinks} times)`);
      console.log(`  input: ${fc.stringify(r.counterexample)}`.slice(0, 4000));
      console.log(`  ${String(r.errorInstance?.message ?? r.error).split('\n').slice(0, 3).join('\n  ')}`);
    }
    if (fixedSeed !== null) break;
  } while (Date.now() < until && (k < targets.length - 1 || Date.now() < deadline));
  const s = (performance.now() - t0) / 1000;
  console.log(`${t.name}: ${inputs} inputs in ${s.toFixed(1)} s (${Math.round(inputs / s)} inputs/s)`);
}
cleanupFixtures();
console.log(failures === 0 ? 'no failures' : `${failures} failing seeds`);
process.exit(failures === 0 ? 0 : 1);
