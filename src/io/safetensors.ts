/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors).
 *
 * Self-contained and runtime-agnostic: uses only Uint8Array, DataView,
 * TextDecoder and TextEncoder (no fs, no Buffer), so it works in browsers and
 * edge runtimes as well as Node.
 *
 * File layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * header, then the raw little-endian tensor data. `data_offsets` in the header
 * are relative to the start of the data section.
 */

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64';

/** A malformed safetensors file, or a tensor that cannot be read or written (the message names it). */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const DTYPE_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const SUPPORTED = Object.keys(DTYPE_SIZE) as SafetensorsDtype[];
const INTEGER_DTYPES = new Set(['BOOL', 'U8', 'I8', 'U16', 'I16', 'U32', 'I32', 'U64', 'I64', 'F8_E4M3', 'F8_E5M2']);
const METADATA_KEY = '__metadata__';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A message on one line: control characters quoted from the input (line breaks, NUL) are escaped. */
export function oneLine(message: string): string {
  return message.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function fail(message: string): never {
  throw new SafetensorsError(message);
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    const s = JSON.stringify(value);
    if (s === undefined) return String(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(value);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSupportedDtype(d: string): d is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, d);
}

/** Product of the dims; throws if it is not a safe integer. */
function shapeProduct(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
  }
  if (!Number.isSafeInteger(n)) {
    fail(`${what}: shape ${describe(shape)} has too many elements (${n})`);
  }
  return n;
}

function validateShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape)) {
    fail(`${what}: "shape" must be an array of non-negative integers, received ${describe(shape)}`);
  }
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      fail(
        `${what}: shape[${i}] must be a non-negative integer, received ${describe(d)} (shape ${describe(shape)})`,
      );
    }
  });
  return shape as number[];
}

// ---------------------------------------------------------------------------
// Element conversion

/** Exact IEEE half -> single bit conversion (preserves subnormals, inf, NaN payloads, -0). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise (value = mant * 2^-24).
  let e = 113; // f32 biased exponent of 2^-14
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

function decode(bytes: Uint8Array, begin: number, count: number, dtype: SafetensorsDtype): Float32Array {
  const out = new Float32Array(count);
  if (count === 0) return out;
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN_HOST) {
      // Byte copy into the fresh (aligned) output buffer: works for any source alignment.
      new Uint8Array(out.buffer).set(bytes.subarray(begin, begin + count * 4));
    } else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + begin, count * 4);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
    }
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset + begin, count * DTYPE_SIZE[dtype]);
  if (dtype === 'F64') {
    for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
    return out;
  }
  // F16 / BF16: write f32 bit patterns directly (exact, keeps NaN payloads).
  const bits = new Uint32Array(out.buffer);
  if (dtype === 'BF16') {
    for (let i = 0; i < count; i++) bits[i] = (dv.getUint16(i * 2, true) << 16) >>> 0;
  } else {
    for (let i = 0; i < count; i++) bits[i] = f16BitsToF32Bits(dv.getUint16(i * 2, true));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Reading

interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, raw: unknown, dataLength: number): Entry {
  const what = `tensor "${name}"`;
  if (!isPlainObject(raw)) {
    fail(`${what}: header entry must be an object with dtype, shape and data_offsets, received ${describe(raw)}`);
  }
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!(key in raw)) {
      fail(`${what}: header entry is missing "${key}" (expected dtype, shape and data_offsets), received ${describe(raw)}`);
    }
  }
  const dtype = raw.dtype;
  if (typeof dtype !== 'string') {
    fail(`${what}: "dtype" must be a string, received ${describe(dtype)}`);
  }
  if (!isSupportedDtype(dtype)) {
    const kind = INTEGER_DTYPES.has(dtype) ? `"${dtype}" is an integer/boolean/fp8 dtype; ` : '';
    fail(
      `${what}: unsupported dtype "${dtype}"; supported dtypes are ${SUPPORTED.join(', ')} ` +
        `(${kind}integer dtypes are not supported as weights)`,
    );
  }
  const shape = validateShape(raw.shape, what);
  const offsets = raw.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(`${what}: "data_offsets" must be two non-negative integers [begin, end], received ${describe(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    fail(`${what}: data_offsets begin (${begin}) must be <= end (${end})`);
  }
  if (end > dataLength) {
    fail(`${what}: data_offsets end (${end}) is beyond the data section (${dataLength} bytes)`);
  }
  const count = shapeProduct(shape, what);
  const size = DTYPE_SIZE[dtype];
  const expected = count * size;
  if (end - begin !== expected) {
    fail(
      `${what}: byte length mismatch: shape ${describe(shape)} with dtype ${dtype} needs ` +
        `${count} * ${size} = ${expected} bytes, but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
    );
  }
  return { name, dtype, shape: shape.slice(), begin, end };
}

/**
 * The first top-level key that occurs twice in a JSON object text (already known to be valid
 * JSON), or null. One pass over the text: strings are skipped, nesting is counted.
 */
function firstRepeatedKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (ch === '}' || ch === ']') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return null;
}

/** Parses a whole file. F16/BF16/F64 are widened/narrowed to Float32Array. */
export function readSafetensors(bytes: Uint8Array): {
  tensors: Map<string, NamedTensor>;
  metadata: Record<string, string>;
} {
  if (!(bytes instanceof Uint8Array)) {
    fail(`expected a Uint8Array, received ${Object.prototype.toString.call(bytes)}`);
  }
  if (bytes.length < 8) {
    fail(`file too short: expected at least 8 bytes for the header length, received ${bytes.length}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const available = bytes.length - 8;
  if (hi !== 0 || lo > available) {
    const n = (BigInt(hi) << 32n) | BigInt(lo);
    fail(`header length ${n} is beyond the file: only ${available} bytes follow the 8-byte length (file is ${bytes.length} bytes)`);
  }
  const headerLength = lo;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail(`header (${headerLength} bytes) is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON: ${oneLine(e instanceof Error ? e.message : String(e))}`);
  }
  if (!isPlainObject(header)) {
    fail(`header must be a JSON object, received ${describe(header)}`);
  }
  // JSON.parse keeps the last of repeated keys: a name given twice is refused, not half-read
  const repeated = firstRepeatedKey(text);
  if (repeated !== null) fail(`tensor "${repeated}" appears twice in the header`);

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;

  const metaPairs: [string, string][] = [];
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(raw)) {
        fail(`"${METADATA_KEY}" must be an object mapping strings to strings, received ${describe(raw)}`);
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') {
          fail(`"${METADATA_KEY}" value for key "${k}" must be a string, received ${describe(v)}`);
        }
        metaPairs.push([k, v]);
      }
      continue;
    }
    entries.push(parseEntry(name, raw, dataLength));
  }

  // Overlap check (gaps are allowed).
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.begin < prev.end) {
      fail(
        `tensor "${cur.name}" (data_offsets [${cur.begin}, ${cur.end}]) overlaps tensor "${prev.name}" ` +
          `(data_offsets [${prev.begin}, ${prev.end}])`,
      );
    }
  }

  // Map order = order of the data in the file (JSON.parse would move integer-like names first).
  const tensors = new Map<string, NamedTensor>();
  for (const e of sorted) {
    const count = (e.end - e.begin) / DTYPE_SIZE[e.dtype];
    tensors.set(e.name, { shape: e.shape, data: decode(bytes, dataStart + e.begin, count, e.dtype) });
  }
  // fromEntries defines own properties, so a "__proto__" key is stored safely.
  return { tensors, metadata: Object.fromEntries(metaPairs) };
}

// ---------------------------------------------------------------------------
// Writing

/** Compares strings by Unicode code point (= UTF-8 byte order, like the Rust reference). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** Writes F32 tensors (sorted by name, 8-byte aligned header padded with spaces like the reference implementation). */
export function writeSafetensors(
  tensors: Map<string, NamedTensor> | Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list: [string, NamedTensor][] =
    tensors instanceof Map ? Array.from(tensors.entries()) : Object.entries(tensors);

  for (const [name, t] of list) {
    if (typeof name !== 'string' || name.length === 0) {
      fail(`tensor names must be non-empty strings, received ${describe(name)}`);
    }
    if (name === METADATA_KEY) {
      fail(`tensor name "${METADATA_KEY}" is reserved for metadata`);
    }
    const what = `tensor "${name}"`;
    if (!isPlainObject(t)) {
      fail(`${what}: expected { shape, data }, received ${describe(t)}`);
    }
    if (!(t.data instanceof Float32Array)) {
      fail(`${what}: data must be a Float32Array, received ${Object.prototype.toString.call(t.data)}`);
    }
    const shape = validateShape(t.shape, what);
    const count = shapeProduct(shape, what);
    if (t.data.length !== count) {
      fail(`${what}: data length mismatch: shape ${describe(shape)} needs ${count} elements, received ${t.data.length}`);
    }
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) fail(`metadata must be an object of strings, received ${describe(metadata)}`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(`metadata value for key "${k}" must be a string, received ${describe(v)}`);
    }
  }

  list.sort((a, b) => compareCodePoints(a[0], b[0]));

  // Build the JSON by hand so the key order is exactly: metadata first, then
  // tensors sorted by name (JS objects would reorder integer-like keys).
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    const bytes = t.data.length * 4;
    const entry = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + padded + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, padded, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);

  let pos = 8 + padded;
  for (const [, t] of list) {
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    } else {
      for (let i = 0; i < t.data.length; i++) dv.setFloat32(pos + i * 4, t.data[i]!, true);
    }
    pos += t.data.byteLength;
  }
  return out;
}
