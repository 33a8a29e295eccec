// Checkpoint directories, written atomically.
//
// A run directory holds `latest` (a small JSON pointer file) and the checkpoint it names, a
// directory ckpt-<step> with weights.safetensors, optimizer.safetensors, state.safetensors (the
// carried hidden state), vocab.json, config.json and trainer.json (step, data position, random
// state, metrics history). A save writes every file into a hidden directory beside it, fsyncs
// them, renames the directory into place, and only then replaces `latest` (write aside + rename,
// atomic on POSIX). A process killed at any point leaves `latest` naming a complete checkpoint.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { oneLine, readSafetensors, writeSafetensors, type NamedTensor } from '../io/safetensors.js';

/** Name of the pointer file in a run directory that names the newest complete checkpoint. */
export const LATEST = 'latest';
/** File name of a checkpoint's weights (safetensors, PyTorch parameter names). */
export const WEIGHTS_FILE = 'weights.safetensors';

/** The files of one checkpoint by name: bytes or UTF-8 text. */
export interface CheckpointFiles {
  [name: string]: Uint8Array | string;
}

/** Hooks into the steps of an atomic checkpoint write (used by tests that interrupt a write). */
export interface SaveHooks {
  /** Called after the files are written aside and before anything is renamed (tests kill here). */
  beforeCommit?(tmpDir: string): void;
  /** Called after the checkpoint directory is in place, before `latest` is replaced. */
  beforePointer?(dir: string): void;
}

function writeDurable(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // some platforms cannot fsync a directory; the rename is still atomic
  }
}

/** A checkpoint could not be written (a full disk, no permission): the previous one is still the one `latest` names. */
export class CheckpointWriteError extends Error {
  constructor(readonly runDir: string, readonly step: number, cause: Error) {
    super(`cannot save the checkpoint of step ${step} in ${runDir} (${cause.message}); the previous checkpoint is kept`);
    this.name = 'CheckpointWriteError';
  }
}

/** Writes a checkpoint into runDir atomically and points `latest` at it. Returns its directory. */
export function writeCheckpointDir(runDir: string, step: number, files: CheckpointFiles, hooks: SaveHooks = {}): string {
  try {
    return writeCheckpointDirOrThrow(runDir, step, files, hooks);
  } catch (e) {
    // a system error (ENOSPC, EACCES, EDQUOT, EROFS, EIO ...): the files written aside are removed
    if (typeof (e as { code?: unknown }).code !== 'string') throw e;
    for (const entry of existsSync(runDir) ? readdirSync(runDir) : []) {
      if (entry.endsWith(`.tmp-${process.pid}`)) rmSync(join(runDir, entry), { recursive: true, force: true });
    }
    throw new CheckpointWriteError(runDir, step, e as Error);
  }
}

function writeCheckpointDirOrThrow(runDir: string, step: number, files: CheckpointFiles, hooks: SaveHooks): string {
  mkdirSync(runDir, { recursive: true });
  let name = `ckpt-${String(step).padStart(8, '0')}`;
  for (let n = 1; existsSync(join(runDir, name)); n++) name = `ckpt-${String(step).padStart(8, '0')}-${n}`;
  const tmp = join(runDir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const [file, data] of Object.entries(files)) writeDurable(join(tmp, file), data);
  syncDir(tmp);
  hooks.beforeCommit?.(tmp);
  const dir = join(runDir, name);
  renameSync(tmp, dir);
  syncDir(runDir);
  hooks.beforePointer?.(dir);
  const pointerTmp = join(runDir, `.${LATEST}.tmp-${process.pid}`);
  writeDurable(pointerTmp, JSON.stringify({ checkpoint: name, step }) + '\n');
  renameSync(pointerTmp, join(runDir, LATEST));
  syncDir(runDir);
  // the older checkpoints and leftovers of interrupted saves are no longer referenced
  for (const entry of readdirSync(runDir)) {
    if (entry === name) continue;
    if (/^ckpt-\d+(-\d+)?$/.test(entry) || /^\.(ckpt-\d+(-\d+)?|latest)\.tmp-\d+$/.test(entry)) {
      rmSync(join(runDir, entry), { recursive: true, force: true });
    }
  }
  return dir;
}

/**
 * The checkpoint directory for a path: the path itself when it holds weights.safetensors, or the
 * checkpoint named by its `latest` file. Throws one clear line otherwise.
 */
export function resolveCheckpointDir(path: string): string {
  if (!existsSync(path)) throw new Error(`${path}: no such directory`);
  if (!statSync(path).isDirectory()) throw new Error(`${path} is not a directory (expected a run or checkpoint directory)`);
  if (existsSync(join(path, WEIGHTS_FILE))) return path;
  const pointer = join(path, LATEST);
  if (!existsSync(pointer)) throw new Error(`${path} holds no checkpoint (neither ${LATEST} nor ${WEIGHTS_FILE})`);
  let name: string;
  try {
    name = JSON.parse(readFileSync(pointer, 'utf8')).checkpoint;
  } catch {
    throw new Error(`${pointer} is not a valid checkpoint pointer`);
  }
  if (typeof name !== 'string' || !/^ckpt-\d+(-\d+)?$/.test(name)) throw new Error(`${pointer} names no checkpoint`);
  const dir = join(path, name);
  if (!existsSync(join(dir, WEIGHTS_FILE))) throw new Error(`${pointer} names ${name}, which has no ${WEIGHTS_FILE}`);
  return dir;
}

/** True when the directory has a checkpoint (to decide between resume and a fresh run). */
export function hasCheckpoint(path: string): boolean {
  try {
    resolveCheckpointDir(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads and parses a JSON file of a checkpoint; the error names the file. */
export function readJsonFile<T>(dir: string, file: string): T {
  const path = join(dir, file);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${path}: ${(e as { code?: string }).code === 'ENOENT' ? 'missing' : oneLine((e as Error).message)}`);
  }
}

/** Reads a safetensors file of a checkpoint: its tensors and metadata; the error names the file. */
export function readTensorsFile(dir: string, file: string): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const path = join(dir, file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: ${(e as { code?: string }).code === 'ENOENT' ? 'missing' : (e as Error).message}`);
  }
  try {
    const r = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return { tensors: r.tensors, metadata: r.metadata ?? {} };
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** The safetensors bytes of named tensors (with optional string metadata). */
export function tensorsBytes(tensors: Map<string, NamedTensor>, metadata?: Record<string, string>): Uint8Array {
  return writeSafetensors(tensors, metadata);
}

/** Names the first non-finite value among the tensors, or returns null. */
export function findNonFinite(tensors: Map<string, NamedTensor>): string | null {
  for (const [name, t] of tensors) {
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) return `${name}[${i}] = ${t.data[i]}`;
    }
  }
  return null;
}
