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
  const { selectWorkloads, gatesOf } = await import(pathToFileURL(join(dirname(SELF), 'workloads.mjs')).href);
  let workloads;
  try {
    workloads = selectWorkloads(opt('workloads', null)).map((w) => ({ ...w, gates: gatesOf(w.cell) }));
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

// The same inputs in every build: a fixed-seed generator.
function makeRand() {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 4294967296 - 0.5;
  };
  const randArray = (n, s = 1) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rand() * s;
    return a;
  };
  return { rand, randArray };
}

/**
 * Whether a build takes a layer's two directions as one paired call (SeqForwardArgs.paired): a
 * build without it ignores the field, leaving the paired call's hN untouched.
 */
function takesPaired(be) {
  const T = 2, B = 1, I = 1, H = 1;
  const one = () => ({
    cell: 'rnn_tanh', T, B, I, H, P: 0, reverse: false, x: new Float32Array([1, 1]), wIh: new Float32Array([1]),
    wHh: new Float32Array([1]), bIh: null, bHh: null, wHr: null, h0: null, c0: null, lengths: null,
    y: new Float32Array(T * B * H), yStride: H, yOffset: 0, hN: new Float32Array(B * H), cN: null, training: false,
  });
  const second = one();
  try {
    be.seqForward({ ...one(), paired: second });
  } catch {
    return false;
  }
  return second.hN[0] !== 0;
}

/**
 * Kernel-level step: each layer's seqForward (+ seqBackward with dy = a fixed G), a bidirectional
 * layer's directions as one paired call where the build takes it, else one call per direction.
 */
function kernelStep(be, w) {
  const paired = w.bidir && takesPaired(be);
  const { randArray } = makeRand();
  const { cell, batch: B, seq: T, hidden: H, layers: L } = w;
  const D = w.bidir ? 2 : 1;
  const G = w.gates * H;
  const x = randArray(T * B * w.input);
  const layers = [];
  for (let l = 0; l < L; l++) {
    const I = l === 0 ? w.input : D * H;
    const dirs = [];
    for (let d = 0; d < D; d++) {
      const s = 1 / Math.sqrt(H);
      dirs.push({
        wIh: randArray(G * I, 2 * s), wHh: randArray(G * H, 2 * s), bIh: randArray(G, 2 * s), bHh: randArray(G, 2 * s),
        hN: new Float32Array(B * H), cN: cell === 'lstm' ? new Float32Array(B * H) : null,
        dWIh: new Float32Array(G * I), dWHh: new Float32Array(G * H), dBIh: new Float32Array(G), dBHh: new Float32Array(G),
      });
    }
    layers.push({ I, y: new Float32Array(T * B * D * H), dirs, dIn: new Float32Array(T * B * I) });
  }
  const Gy = randArray(T * B * D * H);
  const train = w.mode === 'train';
  return () => {
    const ctxs = [];
    for (let l = 0; l < L; l++) {
      const { I, y, dirs } = layers[l];
      const input = l === 0 ? x : layers[l - 1].y;
      const call = (p, d) => ({
        cell, T, B, I, H, P: 0, reverse: d === 1, x: input, wIh: p.wIh, wHh: p.wHh, bIh: p.bIh, bHh: p.bHh, wHr: null,
        h0: null, c0: null, lengths: null, y, yStride: D * H, yOffset: d * H, hN: p.hN, cN: p.cN, training: train,
      });
      if (paired) ctxs.push([be.seqForward({ ...call(dirs[0], 0), paired: call(dirs[1], 1) })]);
      else ctxs.push(dirs.map((p, d) => be.seqForward(call(p, d))));
    }
    if (!train) return;
    let dy = Gy;
    for (let l = L - 1; l >= 0; l--) {
      const { dirs, dIn } = layers[l];
      dIn.fill(0);
      const grads = (p, d) => {
        for (const g of [p.dWIh, p.dWHh, p.dBIh, p.dBHh]) g.fill(0);
        return {
          dy, dyStride: D * H, dyOffset: d * H, dhN: null, dcN: null, dx: dIn, dh0: null, dc0: null,
          dWIh: p.dWIh, dWHh: p.dWHh, dBIh: p.dBIh, dBHh: p.dBHh, dWHr: null,
        };
      };
      if (paired) be.seqBackward({ ...grads(dirs[0], 0), ctx: ctxs[l][0], paired: grads(dirs[1], 1) });
      else dirs.forEach((p, d) => be.seqBackward({ ...grads(p, d), ctx: ctxs[l][d] }));
      dy = dIn;
    }
  };
}

/** charlm through the layer API: Embedding -> LSTM x layers -> Linear -> cross-entropy -> Adam. */
function charlmStep(rnnkit, w) {
  const { rand } = makeRand();
  const { Embedding, LSTM, Linear, Adam, crossEntropy, reshape } = rnnkit;
  const emb = new Embedding(w.vocab, w.emb);
  const lstm = new LSTM({ inputSize: w.emb, hiddenSize: w.hidden, numLayers: w.layers });
  const fc = new Linear(w.hidden, w.vocab);
  const opt = new Adam([...emb.parameters(), ...lstm.parameters(), ...fc.parameters()], { lr: 1e-3 });
  const N = w.seq * w.batch;
  const tokens = Int32Array.from({ length: N }, () => Math.floor((rand() + 0.5) * w.vocab) % w.vocab);
  const targets = Int32Array.from({ length: N }, () => Math.floor((rand() + 0.5) * w.vocab) % w.vocab);
  return () => {
    opt.zeroGrad();
    const x = emb.forward(tokens, [w.seq, w.batch]);
    const { output } = lstm.forward(x);
    const loss = crossEntropy(reshape(fc.forward(output), [N, w.vocab]), targets);
    loss.backward();
    opt.step();
  };
}
