// The `rnnkit` command line.
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName, backendStatus, loadBackend, withBackend } from './backends/index.js';
import { CrossCheckBackend } from './backends/crosscheck.js';
import { type CaseResult, FORWARD_TOLERANCE, GRADIENT_TOLERANCE, goldenCaseNames, runGoldenCase } from './golden.js';
import { LSTM } from './nn.js';
import { add, mul, sum } from './ops.js';
import { Rng } from './random.js';
import { Tensor } from './tensor.js';

const USAGE = `usage: rnnkit <command> [options]

commands:
  verify-torch DIR [--backend NAME|all]   run PyTorch reference cases (shared/golden format)
  doctor                                  which backends load, why the others do not, and a cross-check
  help                                    this text
`;

export class UsageError extends Error {}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function fmt(v: number): string {
  return Number.isNaN(v) ? 'error' : v.toExponential(2);
}

export function verifyTorch(argv: string[], print: (s: string) => void): number {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { backend: { type: 'string', default: 'all' }, help: { type: 'boolean' } } });
  if (values.help) { print('usage: rnnkit verify-torch DIR [--backend native|wasm|reference|all]\n'); return 0; }
  if (positionals.length !== 1) throw new UsageError('verify-torch needs exactly one directory, e.g. rnnkit verify-torch ../shared/golden');
  const dir = positionals[0];
  const requested = values.backend as string;
  let backends: BackendName[];
  if (requested === 'all') {
    backends = BACKEND_NAMES.filter((b) => {
      try { loadBackend(b); return true; } catch (e) { print(`note: skipping backend ${b}: ${(e as Error).message}\n`); return false; }
    });
  } else if ((BACKEND_NAMES as readonly string[]).includes(requested)) {
    backends = [requested as BackendName];
  } else {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, all; received '${requested}'`);
  }
  let names: string[];
  try { names = goldenCaseNames(dir); } catch (e) { throw new UsageError(`cannot read ${dir}: ${(e as Error).message}`); }
  if (names.length === 0) throw new UsageError(`${dir} holds no reference case (NAME.json with NAME.safetensors)`);
  const results: CaseResult[] = [];
  print(`${pad('case', 26)}${pad('backend', 11)}${pad('forward', 11)}${pad('gradient', 11)}result\n`);
  for (const backend of backends) {
    for (const name of names) {
      const r = runGoldenCase(dir, name, backend);
      results.push(r);
      print(`${pad(name, 26)}${pad(backend, 11)}${pad(fmt(r.forwardError), 11)}${pad(fmt(r.gradError), 11)}${r.pass ? 'pass' : 'FAIL'}${r.detail ? '  ' + r.detail : ''}\n`);
    }
  }
  const passed = results.filter((r) => r.pass).length;
  print(`tolerances: forward ${FORWARD_TOLERANCE}, gradient ${GRADIENT_TOLERANCE} (relative to each tensor's largest magnitude)\n`);
  print(`${passed}/${results.length} cases pass\n`);
  return passed === results.length ? 0 : 1;
}

export function doctor(print: (s: string) => void): number {
  print(`rnnkit doctor (node ${process.version}, ${process.platform}-${process.arch})\n`);
  const status = backendStatus();
  for (const s of status) {
    print(s.available ? `  ${pad(s.name, 10)} ok       isa=${s.isa} threads=${s.threads}\n` : `  ${pad(s.name, 10)} missing  ${s.reason}\n`);
  }
  const chosen = status.find((s) => s.available);
  print(`auto resolves to: ${chosen ? chosen.name : 'nothing'}${process.env.RNNKIT_BACKEND ? ` (RNNKIT_BACKEND=${process.env.RNNKIT_BACKEND})` : ''}\n`);
  let failures = 0;
  for (const s of status.filter((x) => x.available && x.name !== 'reference')) {
    try {
      const checked = new CrossCheckBackend(loadBackend(s.name), loadBackend('reference'));
      withBackend(checked, () => {
        const rng = new Rng(1);
        const lstm = new LSTM({ inputSize: 7, hiddenSize: 9, numLayers: 2, bidirectional: true, rng });
        const x = new Tensor(Float32Array.from({ length: 5 * 3 * 7 }, () => rng.normal()), [5, 3, 7], true);
        const { output, hN } = lstm.forward(x, { lengths: [5, 2, 4] });
        add(sum(mul(output, output)), sum(hN)).backward();
      });
      print(`cross-check ${s.name} vs reference (bidirectional 2-layer LSTM, forward and backward): ok\n`);
    } catch (e) {
      failures++;
      print(`cross-check ${s.name} vs reference: FAILED: ${(e as Error).message}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const print = (s: string) => process.stdout.write(s);
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'verify-torch': return verifyTorch(rest, print);
      case 'doctor': return doctor(print);
      case undefined: case 'help': case '--help': case '-h': print(USAGE); return command === undefined ? 1 : 0;
      default: throw new UsageError(`unknown command '${command}'\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`rnnkit: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}
