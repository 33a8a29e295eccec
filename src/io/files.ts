// Node-only file helpers around the (runtime-neutral) safetensors codec.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { type NamedTensor, readSafetensors, writeSafetensors } from './safetensors.js';
import type { Module } from '../nn/layers.js';

/** Reads a .safetensors file into a name -> tensor map (F16/BF16 widened to float32). */
export async function loadSafetensorsFile(path: string): Promise<Map<string, NamedTensor>> {
  const bytes = await readFile(path);
  try {
    return readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).tensors;
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** Writes a module's parameters (or a tensor map) as float32 safetensors, atomically (write aside, rename). */
export async function saveSafetensorsFile(path: string, source: Module | Map<string, NamedTensor>, metadata?: Record<string, string>): Promise<void> {
  const tensors = source instanceof Map ? source : source.stateDict();
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, writeSafetensors(tensors, metadata));
  await rename(tmp, path);
}
