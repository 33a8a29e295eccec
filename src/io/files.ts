// Node-only file helpers around the (runtime-neutral) safetensors codec.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { type NamedTensor, readSafetensors, writeSafetensors } from './safetensors.js';
import { type Module, RecurrentBase } from '../nn/layers.js';

/** Reads a .safetensors file into a name -> tensor map (F16/BF16 widened to float32). */
export async function loadSafetensorsFile(path: string): Promise<Map<string, NamedTensor>> {
  const bytes = await readFile(path);
  try {
    return readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).tensors;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Writes a module's parameters (or a tensor map) as float32 safetensors, atomically (write aside,
 * rename). A recurrent layer's options PyTorch has no equivalent of (a reset-before GRU,
 * hard-sigmoid gates) go into the metadata, which moduleFromSafetensors reads back.
 */
export async function saveSafetensorsFile(path: string, source: Module | Map<string, NamedTensor>, metadata?: Record<string, string>): Promise<void> {
  const tensors = source instanceof Map ? source : source.stateDict();
  const rnn = source instanceof RecurrentBase ? source : (source as { rnn?: unknown }).rnn;
  const cell = rnn instanceof RecurrentBase ? rnn.cellOptions() : {};
  const meta = Object.keys(cell).length ? { ...metadata, ...cell } : metadata;
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, writeSafetensors(tensors, meta));
  await rename(tmp, path);
}
