#!/usr/bin/env node
// A/B timing of two builds of rnnkit's native backend on the workloads of bench/workloads.mjs.
//
//   node bench/compare.mjs DIR_A DIR_B [--threads 1,2] [--workloads ids] [--rounds 7] [--reps 5]
//                          [--env-a NAME=VALUE,...] [--env-b NAME=VALUE,...]
//
// DIR_A and DIR_B are two checkouts of rnnkit, each built (dist/ from `npm run build`, the addon
// in build/Release from node-gyp). Each build runs in its own child process; the parent runs the
// builds in turn on the same workload and thread count (A, B, then B, A in the next round, ...)
// so both see the same machine load, and prints per workload and thread count the median ms of
// each build, the ratio B/A of the medians, and the lowest and highest B/A of the single rounds
// (the spread), and the ratio of the fastest runs (steadier than the medians on a busy machine).
// A ratio below 1 means B is faster. Every build is driven through its
// backend.seqForward / seqBackward (kernel-level rows, as bench/run.js times them) or the layer
// API (charlm), which older builds share. --env-a / --env-b set environment variables of one
// build's process (e.g. the same checkout twice with RNNKIT_NATIVE_ISA=avx2 and =sse2).
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { charlmStep, kernelStep } from './native-steps.mjs';

const SELF = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);

if (argv[0] === '--child') {
  await child(resolve(argv[1]));
} else {
  await parent();
}

// ---------------------------------------------------------------- parent: schedules the runs
async function parent() {
  const opt = (name, def) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : def;
  };
  const dirs = argv.filter((a, i) => !a.startsWith('--') && (i === 0 || !argv[i - 1].startsWith('--')));
  if (dirs.length !== 2) {
    console.error('usage: node bench/compare.mjs DIR_A DIR_B [--threads 1,2] [--workloads ids] [--rounds N] [--reps N]');
    process.exit(1);
  }
  for (const d of dirs) {
    if (!existsSync(join(d, 'dist', 'index.js')) || !existsSync(join(d, 'build', 'Release'))) {
      console.error(`compare: ${d} needs dist/ (npm run build) and build/Release (node-gyp rebuild)`);
      process.exit(1);
    }
  }
  const threads = opt('threads', '1,2').split(',').map(Number);
  const rounds = Number(opt('rounds', '7'));
  const reps = Number(opt('reps', '5'));
  const { selectWorkloads } = await import(pathToFileURL(join(dirname(SELF), 'workloads.mjs')).href);
  let workloads;
  try {
    workloads = selectWorkloads(opt('workloads', null));
  } catch (e) {
    console.error(`compare: ${e.message}`);
    process.exit(1);
  }

  const envOf = (list) => Object.fromEntries((list ? list.split(',') : []).map((kv) => kv.split('=')));
  const kids = dirs.map((d, i) => startChild(d, envOf(opt(i === 0 ? 'env-a' : 'env-b', null))));
  console.log(`compare: A = ${resolve(dirs[0])}, B = ${resolve(dirs[1])}; ${rounds} rounds of ${reps} runs each, ` +
    'A and B alternating (first of each round swaps)');
  console.log('| workload | threads | A ms | B ms | B/A | B/A per round (min-max) | B/A fastest runs |');
  console.log('|---|---|---|---|---|---|---|');
  const median = (a) => {
    const s = [...a].sort((x, y) => x - y), m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  for (const w of workloads) {
    for (const t of threads) {
      const times = [[], []];
      const roundRatios = [];
      for (const k of kids) await k.call({ op: 'setup', w, threads: t });
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? [0, 1] : [1, 0];
        const got = [null, null];
        for (const i of order) got[i] = (await kids[i].call({ op: 'run', reps })).times;
        times[0].push(...got[0]);
        times[1].push(...got[1]);
        roundRatios.push(median(got[1]) / median(got[0]));
      }
      const a = median(times[0]), b = median(times[1]);
      console.log(`| ${w.id} | ${t} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(b / a).toFixed(3)} | ` +
        `${Math.min(...roundRatios).toFixed(3)}-${Math.max(...roundRatios).toFixed(3)} | ` +
        `${(Math.min(...times[1]) / Math.min(...times[0])).toFixed(3)} |`);
    }
  }
  for (const k of kids) k.proc.kill();
}

function startChild(dir, env) {
  const proc = fork(SELF, ['--child', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  let pending = null;
  proc.on('message', (m) => {
    const p = pending;
    pending = null;
    if (m.error) p.reject(new Error(`${dir}: ${m.error}`));
    else p.resolve(m);
  });
  proc.on('exit', (code) => {
    if (pending) pending.reject(new Error(`${dir}: child exited with code ${code}`));
  });
  return {
    proc,
    call: (msg) => new Promise((res, rej) => {
      pending = { resolve: res, reject: rej };
      proc.send(msg);
    }),
  };
}

// ---------------------------------------------------------------- child: one build
async function child(dir) {
  const rnnkit = await import(pathToFileURL(join(dir, 'dist', 'index.js')).href);
  const { loadBackend } = await import(pathToFileURL(join(dir, 'dist', 'backends', 'index.js')).href);
  const be = loadBackend('native');
  rnnkit.setBackend(be);
  let step = null;
  process.on('message', (m) => {
    try {
      if (m.op === 'setup') {
        be.setThreads(m.threads);
        step = m.w.cell === 'charlm' ? charlmStep(rnnkit, m.w) : kernelStep(be, m.w);
        for (let i = 0; i < 3; i++) step();  // warm-up: caches, page faults, packed buffers
        process.send({ ok: true });
      } else if (m.op === 'run') {
        const times = [];
        for (let i = 0; i < m.reps; i++) {
          const t0 = performance.now();
          step();
          times.push(performance.now() - t0);
        }
        process.send({ times });
      }
    } catch (e) {
      process.send({ error: String(e?.message ?? e) });
    }
  });
}

