// `rnnkit verify-torch DIR` (the PyTorch reference cases) and `rnnkit doctor` (what is in use: the
// report of src/backends/doctor.ts, then each backend's status and a cross-check).
import { existsSync, statSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { BACKEND_NAMES, type BackendName, backendStatus, getMatmulPrecision, loadBackend, setMatmulPrecision, withBackend } from '../backends/index.js';
import { CrossCheckBackend } from '../backends/crosscheck.js';
import { doctorReport, formatDoctor } from '../backends/doctor.js';
import { type CaseResult, FORWARD_TOLERANCE, GRADIENT_TOLERANCE, goldenCaseNames, packagedGoldenDir, runGoldenCase } from '../io/golden.js';
import { LSTM } from '../nn/layers.js';
import { add, mul, sum } from '../core/ops.js';
import { Rng } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { CliError, type Io } from './options.js';

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function fmt(v: number): string {
  return Number.isNaN(v) ? 'error' : v.toExponential(2);
}

/** Runs every reference case in `dir` on the requested backend(s) ('all': every one that loads); exit code 0 when all pass. */
function runVerifyTorch(dir: string, requested: BackendName | 'all', print: (s: string) => void): number {
  let backends: BackendName[];
  if (requested === 'all') {
    backends = BACKEND_NAMES.filter((b) => {
      try { loadBackend(b); return true; } catch (e) { print(`note: skipping backend ${b}: ${(e as Error).message}\n`); return false; }
    });
  } else {
    backends = [requested];
  }
  if (!existsSync(dir)) throw new CliError(`directory '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new CliError(`'${dir}' is not a directory`);
  let names: string[];
  try { names = goldenCaseNames(dir); } catch (e) { throw new CliError(`cannot read '${dir}': ${(e as Error).message}`); }
  if (names.length === 0) throw new CliError(`'${dir}' holds no reference case (NAME.json with NAME.safetensors)`);
  const width = Math.max(26, ...names.map((n) => n.length + 2));
  const results: CaseResult[] = [];
  // the cases check fp32 parity with PyTorch: bf16 products ('medium') are off while they run
  const precision = getMatmulPrecision();
  if (precision !== 'highest') print(`note: matmul precision '${precision}' set aside: the cases check fp32 parity with PyTorch\n`);
  setMatmulPrecision('highest');
  print(`${pad('case', width)}${pad('backend', 11)}${pad('forward', 11)}${pad('gradient', 11)}result\n`);
  try {
    for (const backend of backends) {
      for (const name of names) {
        const r = runGoldenCase(dir, name, backend);
        results.push(r);
        print(`${pad(name, width)}${pad(backend, 11)}${pad(fmt(r.forwardError), 11)}${pad(fmt(r.gradError), 11)}${r.pass ? 'pass' : 'FAIL'}${r.detail ? '  ' + r.detail : ''}\n`);
      }
    }
  } finally {
    setMatmulPrecision(precision);
  }
  const passed = results.filter((r) => r.pass).length;
  print(`tolerances: forward ${FORWARD_TOLERANCE}, gradient ${GRADIENT_TOLERANCE} (relative to each tensor's largest magnitude)\n`);
  print(`${passed}/${results.length} cases pass\n`);
  return passed === results.length ? 0 : 1;
}

export function doctor(print: (s: string) => void): number {
  print(formatDoctor(doctorReport()));
  const status = backendStatus();
  for (const s of status) {
    print(s.available ? `  ${pad(s.name, 10)} ok       isa=${s.isa} threads=${s.threads}\n` : `  ${pad(s.name, 10)} missing  ${s.reason}\n`);
  }
  let failures = 0;
  for (const s of status.filter((x) => x.available && x.name !== 'reference')) {
    try {
      // the precision in effect ('medium' may mean bf16 products: checked at the tolerance of bf16)
      const b = loadBackend(s.name);
      b.setMatmulPrecision?.(getMatmulPrecision());
      const bf16 = b.info().matmul === 'bf16';
      const checked = new CrossCheckBackend(b, loadBackend('reference'), { tolerance: bf16 ? 5e-2 : 1e-4 });
      withBackend(checked, () => {
        const rng = new Rng(1);
        const lstm = new LSTM({ inputSize: 7, hiddenSize: 9, numLayers: 2, bidirectional: true, rng });
        const x = new Tensor(Float32Array.from({ length: 5 * 3 * 7 }, () => rng.normal()), [5, 3, 7], true);
        const { output, hN } = lstm.forward(x, { lengths: [5, 2, 4] });
        add(sum(mul(output, output)), sum(hN)).backward();
      });
      print(`cross-check ${s.name} vs reference (bidirectional 2-layer LSTM, forward and backward${bf16 ? ', bf16 matmul, tolerance 5e-2' : ''}): ok\n`);
    } catch (e) {
      failures++;
      print(`cross-check ${s.name} vs reference: FAILED: ${(e as Error).message}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}

export function addCheckCommands(program: Command, io: Io, setCode: (c: number) => void): void {
  program.command('verify-torch')
    .summary('run the PyTorch reference cases (those shipped, or DIR\'s) on every backend')
    .description('Run the PyTorch reference cases that ship with rnnkit (its golden/ folder), or those in DIR '
      + '(NAME.json + NAME.safetensors per case, the format of golden/README.md), and compare outputs and gradients.')
    .argument('[dir]', 'directory of reference cases (default: the shipped ones)')
    .addOption(new Option('--backend <name>', 'backend to check, or every one that loads').choices([...BACKEND_NAMES, 'all']).default('all'))
    .action((dir: string | undefined, f: { backend: BackendName | 'all' }) => { setCode(runVerifyTorch(dir ?? packagedGoldenDir(), f.backend, io.out)); });
  program.command('doctor')
    .summary('which backends load, why the others do not, and a cross-check')
    .description('Which backends load, why the others do not, and a cross-check of each against the reference backend.')
    .action(() => { setCode(doctor(io.out)); });
}
