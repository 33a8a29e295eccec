// `rnnkit convert IN OUT` (models between formats) and `rnnkit run MODEL --input IN.json`.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { Tensor, noGrad } from '../core/tensor.js';
import { saveSafetensorsFile } from '../io/files.js';
import { loadOnnx, toOnnx } from '../io/onnx.js';
import { TfjsModel, loadTfjsModel, toTfjsModel } from '../io/tfjs.js';
import { moduleFromSafetensors } from '../io/torch.js';
import { loadLanguageModel } from '../lm/trainer.js';
import { RecurrentBase } from '../nn/layers.js';
import { LanguageModel, RecurrentModel } from '../nn/models.js';
import { CliError, type Io } from './options.js';

export type LoadedModel = RecurrentBase | RecurrentModel | TfjsModel;

interface LoadFlags { nonlinearity?: 'tanh' | 'relu' }

/** Reads a model file: .onnx, a PyTorch state_dict .safetensors, or a run directory of `rnnkit train`. */
export async function loadModelFile(path: string, flags: LoadFlags = {}): Promise<LoadedModel> {
  if (!existsSync(path)) throw new CliError(`${path}: no such file or directory`);
  try {
    if (statSync(path).isDirectory()) {
      const lm: LanguageModel = loadLanguageModel(path).model;
      return new RecurrentModel({ embedding: lm.embedding, rnn: lm.rnn, fc: lm.fc }).eval();
    }
    const ext = extname(path).toLowerCase();
    if (ext === '.onnx') return loadOnnx(new Uint8Array(readFileSync(path)));
    if (ext === '.safetensors') {
      // the options PyTorch has no equivalent of (reset-before GRU, hard sigmoid) are in the metadata
      const bytes = readFileSync(path);
      return moduleFromSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), flags);
    }
    if (ext === '.json') return readTfjsFiles(path);
  } catch (e) {
    if (e instanceof CliError) throw e;
    const msg = (e as Error).message;
    throw new CliError(msg.startsWith(path) ? msg : `${path}: ${msg}`);
  }
  throw new CliError(`${path}: unknown model format '${extname(path) || '(no extension)'}' (expected .onnx, .safetensors, a TF.js model.json or a run directory)`);
}

/** model.json and the weight files its manifest names (beside it). */
function readTfjsFiles(path: string): TfjsModel {
  let json: { weightsManifest?: Array<{ paths?: string[] }> };
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CliError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const shards: Uint8Array[] = [];
  for (const group of json?.weightsManifest ?? []) {
    for (const file of group.paths ?? []) {
      const shard = join(dirname(path), String(file));
      if (!existsSync(shard)) throw new CliError(`${path}: weight file ${String(file)} is missing (looked for ${shard})`);
      shards.push(new Uint8Array(readFileSync(shard)));
    }
  }
  return loadTfjsModel(json, Buffer.concat(shards));
}

export function addConvertCommands(program: Command, io: Io, setCode: (code: number) => void): void {
  const nonlinearity = new Option('--nonlinearity <name>', 'a plain RNN\'s nonlinearity (not stored in a state_dict)').choices(['tanh', 'relu']).default('tanh');
  program.command('convert')
    .description('Convert a model: IN is .onnx, a PyTorch state_dict .safetensors, a TF.js layers model.json or a run directory of `rnnkit train`; OUT is .onnx, .safetensors (PyTorch state_dict names) or a TF.js model.json (weights written beside it)')
    .argument('<in>', 'model to read')
    .argument('<out>', 'file to write (.onnx, .safetensors or .json)')
    .addOption(nonlinearity)
    .option('--initial-state', 'ONNX: add graph inputs h0 (and c0) for the initial state')
    .option('--lengths', 'ONNX: add graph input `lengths` (int32 [B]) for sequences of different lengths')
    .action(async (input: string, out: string, f: LoadFlags & { initialState?: boolean; lengths?: boolean }) => {
      const ext = extname(out).toLowerCase();
      if (ext !== '.onnx' && ext !== '.safetensors' && ext !== '.json') throw new CliError(`${out}: unknown output format '${ext || '(no extension)'}' (expected .onnx, .safetensors or a TF.js model.json)`);
      const model = await loadModelFile(input, f);
      if (ext === '.onnx') {
        if (model instanceof TfjsModel) throw new CliError(`${input}: ONNX export of a TF.js model is not supported yet (convert to .safetensors)`);
        let bytes: Uint8Array;
        try { bytes = toOnnx(model, { initialState: f.initialState, lengths: f.lengths }); } catch (e) { throw new CliError((e as Error).message); }
        writeFileSync(out, bytes);
      } else if (ext === '.json') {
        const weightsFile = `${basename(out, extname(out))}.weights.bin`;
        let a;
        try { a = toTfjsModel(model, { weightsPath: weightsFile }); } catch (e) { throw new CliError((e as Error).message); }
        writeFileSync(join(dirname(out), weightsFile), a.weightData);
        writeFileSync(out, JSON.stringify(a.modelJson));
      } else {
        // a reset-before GRU or hard-sigmoid gates are recorded in the metadata (PyTorch has neither)
        await saveSafetensorsFile(out, model);
      }
      io.out(`${input} -> ${out}: ${describe(model)}\n`);
      setCode(0);
    });

  program.command('run')
    .description('Run a model (any format `rnnkit convert` reads) on the inputs in a JSON file: {"x": [T][B][F] (or token ids [T][B]), "h0"?, "c0"?, "lengths"?}; writes {"output", "h_n", "c_n"?}. TF.js models take Keras\' batch-first x [B][T][F] (or ids [B][T]) and give {"output"}')
    .argument('<model>', 'model file or run directory')
    .requiredOption('--input <file>', 'JSON file with the inputs')
    .option('--output <file>', 'write the result here (default: stdout)')
    .addOption(nonlinearity)
    .action(async (path: string, f: LoadFlags & { input: string; output?: string }) => {
      const model = await loadModelFile(path, f);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(readFileSync(f.input, 'utf8'));
      } catch (e) {
        throw new CliError(`${f.input}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || !('x' in parsed)) throw new CliError(`${f.input}: expected an object with "x"`);
      const tensor = (name: string): Tensor | null => {
        const v = parsed[name];
        if (v === undefined || v === null) return null;
        try { return nestedToTensor(v); } catch (e) { throw new CliError(`${f.input}: "${name}": ${(e as Error).message}`); }
      };
      const x = tensor('x')!;
      const lengths = parsed.lengths === undefined ? null : parsed.lengths as number[];
      if (model instanceof TfjsModel) {
        let y: Tensor;
        try { y = noGrad(() => model.forward(x)); } catch (e) { throw new CliError((e as Error).message); }
        const json = JSON.stringify({ output: tensorToNested(y) });
        if (f.output) writeFileSync(f.output, json + '\n');
        else io.out(json + '\n');
        setCode(0);
        return;
      }
      let result;
      try {
        result = noGrad(() => model.forward(x, { h0: tensor('h0'), c0: tensor('c0'), lengths }));
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const json = JSON.stringify({ output: tensorToNested(result.output), h_n: tensorToNested(result.hN), ...(result.cN ? { c_n: tensorToNested(result.cN) } : {}) });
      if (f.output) writeFileSync(f.output, json + '\n');
      else io.out(json + '\n');
      setCode(0);
    });
}

function describe(m: LoadedModel): string {
  if (m instanceof TfjsModel) return `TF.js layers ${m.layerNames.join(', ')}`;
  const rnn = m instanceof RecurrentBase ? m : m.rnn;
  const kind = rnn.cell === 'lstm' ? 'LSTM' : rnn.cell === 'gru' ? 'GRU' : rnn.cell === 'gru_reset_before' ? 'GRU (reset-before)' : `RNN (${rnn.cell === 'rnn_relu' ? 'relu' : 'tanh'})`;
  const gate = rnn.recurrentActivation.kind === 'hardSigmoid' ? `, hard-sigmoid gates (alpha ${rnn.recurrentActivation.alpha}, beta ${rnn.recurrentActivation.beta})` : '';
  const parts = [`${kind}${gate} ${rnn.inputSize} -> ${rnn.hiddenSize}, ${rnn.numLayers} layer${rnn.numLayers > 1 ? 's' : ''}${rnn.bidirectional ? ', bidirectional' : ''}`];
  if (m instanceof RecurrentModel && m.embedding) parts.unshift(`Embedding ${m.embedding.numEmbeddings} x ${m.embedding.embeddingDim}`);
  if (m instanceof RecurrentModel && m.fc) parts.push(`Linear ${m.fc.inFeatures} -> ${m.fc.outFeatures}`);
  return parts.join(', ');
}

/** A rectangular nested array of finite numbers as a Tensor. */
export function nestedToTensor(v: unknown): Tensor {
  const shape: number[] = [];
  for (let a = v; Array.isArray(a); a = a[0]) shape.push(a.length);
  const data: number[] = [];
  const walk = (a: unknown, depth: number, at: string): void => {
    if (depth === shape.length) {
      if (typeof a !== 'number' || !Number.isFinite(a)) throw new Error(`expected a finite number at ${at || '[]'}, received ${JSON.stringify(a)}`);
      data.push(a);
      return;
    }
    if (!Array.isArray(a) || a.length !== shape[depth]) throw new Error(`not rectangular: ${at || 'the top level'} should be an array of ${shape[depth]}`);
    a.forEach((b, i) => walk(b, depth + 1, `${at}[${i}]`));
  };
  walk(v, 0, '');
  return new Tensor(Float32Array.from(data), shape);
}

export function tensorToNested(t: Tensor): unknown {
  const build = (offset: number, dim: number): unknown => {
    if (dim === t.shape.length) return t.data[offset];
    const stride = t.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: t.shape[dim] }, (_, i) => build(offset + i * stride, dim + 1));
  };
  return build(0, 0);
}
