import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type NamedTensor, readSafetensors, SafetensorsError, writeSafetensors } from '../src/io/safetensors.js';
import { GOLDEN_DIR as GOLDEN } from './helpers.js';

// ---------------------------------------------------------------------------
// helpers

/** Builds a safetensors file from a raw header object and a data section. */
function build(header: unknown, data: Uint8Array = new Uint8Array(0), rawHeader?: Uint8Array): Uint8Array {
  const json = rawHeader ?? new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function u16le(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setUint16(i * 2, v, true));
  return out;
}

function f32le(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return out;
}

function bitsOf(f: Float32Array): number[] {
  return Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));
}

/** Independent arithmetic reference for half -> float. */
function halfRef(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function expectErr(fn: () => unknown, re: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  expect((caught as Error).message).toMatch(re);
}

const ONE = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
const DATA8 = f32le([1, 2]);

// ---------------------------------------------------------------------------

describe('golden files', () => {
  const names = readdirSync(GOLDEN).filter((f) => f.endsWith('.safetensors')).map((f) => f.slice(0, -'.safetensors'.length));

  it('finds golden files', () => {
    expect(names.length).toBeGreaterThan(0);
  });

  for (const name of names) {
    it(`${name}.safetensors matches ${name}.json state_dict exactly`, () => {
      const bytes = new Uint8Array(readFileSync(join(GOLDEN, `${name}.safetensors`)));
      const ref = JSON.parse(readFileSync(join(GOLDEN, `${name}.json`), 'utf8')) as {
        state_dict: Record<string, { shape: number[]; data: number[] }>;
      };
      const { tensors } = readSafetensors(bytes);
      expect([...tensors.keys()].sort()).toEqual(Object.keys(ref.state_dict).sort());
      for (const [key, { shape, data }] of Object.entries(ref.state_dict)) {
        const t = tensors.get(key)!;
        expect(t.shape, key).toEqual(shape);
        expect(t.data.length, key).toBe(data.length);
        for (let i = 0; i < data.length; i++) {
          if (t.data[i] !== Math.fround(data[i]!)) {
            throw new Error(`${name}/${key}[${i}]: ${t.data[i]} !== ${Math.fround(data[i]!)}`);
          }
        }
      }
      // Re-writing gives back exactly the same tensors.
      const again = readSafetensors(writeSafetensors(tensors)).tensors;
      for (const [key, t] of tensors) {
        expect(again.get(key)!.shape).toEqual(t.shape);
        expect(bitsOf(again.get(key)!.data)).toEqual(bitsOf(t.data));
      }
    });

    it(`${name}.safetensors reads from a non-zero, unaligned byteOffset`, () => {
      const file = readFileSync(join(GOLDEN, `${name}.safetensors`));
      const expected = readSafetensors(new Uint8Array(file)).tensors;
      for (const shift of [1, 2, 3, 5]) {
        const backing = new Uint8Array(file.length + shift + 3);
        backing.set(file, shift);
        const view = backing.subarray(shift, shift + file.length);
        const got = readSafetensors(view).tensors;
        for (const [key, t] of expected) expect(bitsOf(got.get(key)!.data)).toEqual(bitsOf(t.data));
      }
    });
  }
});

describe('write / read round trip', () => {
  const special = new Float32Array([0, -0, 1.5, -3.25, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38, Math.fround(0.1)]);

  it('round-trips bit-exactly (incl. -0, inf, NaN, subnormal) and sorts by name', () => {
    const input: Record<string, NamedTensor> = {
      'b.weight': { shape: [2, 5], data: special },
      a: { shape: [], data: new Float32Array([42]) },
      'c.empty': { shape: [0, 3], data: new Float32Array(0) },
      '10': { shape: [1], data: new Float32Array([7]) },
      '9': { shape: [1], data: new Float32Array([8]) },
    };
    const bytes = writeSafetensors(input);
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect(n % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText).toMatch(/^\{"10":.*"9":.*"a":.*"b\.weight":.*"c\.empty":.*\} *$/);
    const { tensors, metadata } = readSafetensors(bytes);
    expect(metadata).toEqual({});
    expect([...tensors.keys()]).toEqual(['10', '9', 'a', 'b.weight', 'c.empty']);
    for (const [key, t] of Object.entries(input)) {
      expect(tensors.get(key)!.shape).toEqual(t.shape);
      expect(bitsOf(tensors.get(key)!.data)).toEqual(bitsOf(t.data));
    }
  });

  it('accepts a Map and subarray-backed Float32Arrays', () => {
    const big = new Float32Array([9, 1, 2, 3, 9]);
    const m = new Map<string, NamedTensor>([['x', { shape: [3], data: big.subarray(1, 4) }]]);
    const t = readSafetensors(writeSafetensors(m)).tensors.get('x')!;
    expect(Array.from(t.data)).toEqual([1, 2, 3]);
  });

  it('re-writing a golden file gives a file of the same size (same compact header + padding rule)', () => {
    const bytes = new Uint8Array(readFileSync(join(GOLDEN, 'gru.safetensors')));
    const again = writeSafetensors(readSafetensors(bytes).tensors);
    expect(again.length).toBe(bytes.length);
  });

  it('round-trips metadata, written first and padded with spaces', () => {
    const metadata = { format: 'pt', 'rnnkit.config': '{"hidden_size":5}', unicode: 'héllo ✓', __proto__x: '' };
    const bytes = writeSafetensors({ w: { shape: [1], data: new Float32Array([1]) } }, metadata);
    const n = new DataView(bytes.buffer).getUint32(0, true);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header.startsWith('{"__metadata__":')).toBe(true);
    expect(header).toMatch(/\} *$/);
    const read = readSafetensors(bytes);
    expect(read.metadata).toEqual(metadata);
    expect(Array.from(read.tensors.get('w')!.data)).toEqual([1]);
  });

  it('reads a "__proto__" metadata key as an ordinary key', () => {
    const file = build({ __metadata__: JSON.parse('{"__proto__":"x"}') as object, a: ONE }, DATA8);
    const { metadata } = readSafetensors(file);
    expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(metadata, '__proto__')?.value).toBe('x');
  });

  it('allows gaps between tensors and unordered offsets', () => {
    const data = f32le([1, 2, 99, 3]);
    const file = build(
      {
        b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] },
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      },
      data,
    );
    const { tensors } = readSafetensors(file);
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, 2]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([3]);
  });

  it('returned tensors do not alias the input buffer', () => {
    const file = build({ a: ONE }, DATA8);
    const t = readSafetensors(file).tensors.get('a')!;
    file.fill(0);
    expect(Array.from(t.data)).toEqual([1, 2]);
  });
});

describe('dtype conversion', () => {
  it('reads F16 known values exactly (subnormal, inf, nan, -0)', () => {
    const cases: [number, number][] = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x0001, 2 ** -24],
      [0x8001, -(2 ** -24)],
      [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14],
      [0x7bff, 65504],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x0000, 0],
      [0x8000, -0],
    ];
    const file = build(
      {
        h: { dtype: 'F16', shape: [3, 4], data_offsets: [0, 24] },
        n: { dtype: 'F16', shape: [2], data_offsets: [24, 28] },
      },
      u16le([...cases.map((c) => c[0]), 0x7e00, 0xfd01]),
    );
    const { tensors } = readSafetensors(file);
    const h = tensors.get('h')!;
    expect(h.shape).toEqual([3, 4]);
    cases.forEach(([, v], i) => expect(Object.is(h.data[i], v), `case ${i}: ${h.data[i]} vs ${v}`).toBe(true));
    const n = tensors.get('n')!;
    expect(Number.isNaN(n.data[0])).toBe(true);
    expect(Number.isNaN(n.data[1])).toBe(true);
    // NaN payloads are carried over bit-exactly (sign + mantissa shifted by 13).
    expect(bitsOf(n.data)).toEqual([0x7fc00000, 0xffa02000]);
  });

  it('reads all 65536 F16 values exactly', () => {
    const all = Array.from({ length: 65536 }, (_, i) => i);
    const file = build({ h: { dtype: 'F16', shape: [65536], data_offsets: [0, 131072] } }, u16le(all));
    const d = readSafetensors(file).tensors.get('h')!.data;
    for (let i = 0; i < 65536; i++) {
      const ref = halfRef(i);
      if (!(Object.is(d[i], ref) || (Number.isNaN(ref) && Number.isNaN(d[i])))) {
        throw new Error(`half 0x${i.toString(16)}: got ${d[i]}, expected ${ref}`);
      }
    }
  });

  it('reads BF16 as the top 16 bits of f32 (subnormal, inf, nan)', () => {
    const vals = [0x3f80, 0xc040, 0x4049, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f7f];
    const file = build({ b: { dtype: 'BF16', shape: [vals.length], data_offsets: [0, vals.length * 2] } }, u16le(vals));
    const d = readSafetensors(file).tensors.get('b')!.data;
    expect(bitsOf(d)).toEqual(vals.map((v) => (v << 16) >>> 0));
    expect(d[0]).toBe(1);
    expect(d[1]).toBe(-3);
    expect(d[2]).toBe(3.140625);
    expect(d[3]).toBe(2 ** -133);
    expect(Object.is(d[4], -0)).toBe(true);
    expect(d[5]).toBe(Infinity);
    expect(d[6]).toBe(-Infinity);
    expect(Number.isNaN(d[7])).toBe(true);
    expect(d[8]).toBe(3.3895313892515355e38);
  });

  it('reads F64 narrowed with Math.fround, at an unaligned data offset', () => {
    const vals = [0.1, -1 / 3, 1e300, -1e-300, Infinity, NaN, 123456789.123];
    const data = new Uint8Array(3 + vals.length * 8);
    const dv = new DataView(data.buffer);
    vals.forEach((v, i) => dv.setFloat64(3 + i * 8, v, true));
    const file = build({ d: { dtype: 'F64', shape: [vals.length], data_offsets: [3, data.length] } }, data);
    const d = readSafetensors(file).tensors.get('d')!.data;
    vals.forEach((v, i) => expect(Object.is(d[i], Math.fround(v)) || (Number.isNaN(v) && Number.isNaN(d[i]))).toBe(true));
  });

  it('reads F32 at an unaligned data offset', () => {
    const data = new Uint8Array(1 + 12);
    data.set(f32le([1.5, -2, 3.25]), 1);
    const file = build({ x: { dtype: 'F32', shape: [3], data_offsets: [1, 13] } }, data);
    expect(Array.from(readSafetensors(file).tensors.get('x')!.data)).toEqual([1.5, -2, 3.25]);
  });
});

describe('validation errors', () => {
  it('file shorter than 8 bytes', () => {
    expectErr(() => readSafetensors(new Uint8Array(5)), /too short.*at least 8 bytes.*received 5/);
    expectErr(() => readSafetensors(new Uint8Array(0)), /received 0/);
  });

  it('header length beyond the file (names both numbers)', () => {
    const f = build({ a: ONE }, DATA8);
    const dv = new DataView(f.buffer);
    dv.setUint32(0, 1000, true);
    expectErr(() => readSafetensors(f), new RegExp(`header length 1000 .*beyond.*${f.length - 8} bytes`));
  });

  it('u64 header length > 2^53 is rejected safely', () => {
    const f = build({ a: ONE }, DATA8);
    const dv = new DataView(f.buffer);
    dv.setUint32(0, 0xffffffff, true);
    dv.setUint32(4, 0xffffffff, true);
    expectErr(() => readSafetensors(f), /header length 18446744073709551615 is beyond the file/);
    dv.setUint32(0, 64, true);
    dv.setUint32(4, 0x00200001, true);
    expectErr(() => readSafetensors(f), /header length 9007203549708352 is beyond/);
  });

  it('header not valid UTF-8', () => {
    expectErr(() => readSafetensors(build(null, undefined, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))), /not valid UTF-8/);
  });

  it('header not valid JSON', () => {
    expectErr(() => readSafetensors(build(null, undefined, new TextEncoder().encode('{"a": '))), /not valid JSON/);
    expectErr(() => readSafetensors(build(null, undefined, new Uint8Array(0))), /not valid JSON/);
  });

  it('header not an object', () => {
    expectErr(() => readSafetensors(build([1, 2])), /header must be a JSON object, received \[1,2\]/);
    expectErr(() => readSafetensors(build(null)), /header must be a JSON object, received null/);
    expectErr(() => readSafetensors(build('x')), /header must be a JSON object/);
  });

  it('entry not an object / missing fields', () => {
    expectErr(() => readSafetensors(build({ w: 5 })), /tensor "w": header entry must be an object.*received 5/);
    expectErr(() => readSafetensors(build({ w: { shape: [2], data_offsets: [0, 8] } }, DATA8)), /tensor "w".*missing "dtype"/);
    expectErr(() => readSafetensors(build({ w: { dtype: 'F32', data_offsets: [0, 8] } }, DATA8)), /tensor "w".*missing "shape"/);
    expectErr(() => readSafetensors(build({ w: { dtype: 'F32', shape: [2] } }, DATA8)), /tensor "w".*missing "data_offsets"/);
  });

  it('entry fields with wrong types', () => {
    expectErr(() => readSafetensors(build({ w: { ...ONE, dtype: 32 } }, DATA8)), /tensor "w": "dtype" must be a string, received 32/);
    expectErr(() => readSafetensors(build({ w: { ...ONE, shape: '2' } }, DATA8)), /tensor "w": "shape" must be an array.*received "2"/);
    expectErr(() => readSafetensors(build({ w: { ...ONE, shape: ['2'] } }, DATA8)), /tensor "w": shape\[0\] must be a non-negative integer, received "2"/);
    expectErr(() => readSafetensors(build({ w: { ...ONE, data_offsets: '0,8' } }, DATA8)), /tensor "w": "data_offsets" must be two non-negative integers.*received "0,8"/);
  });

  it('metadata must map strings to strings', () => {
    expectErr(() => readSafetensors(build({ __metadata__: [1], a: ONE }, DATA8)), /"__metadata__" must be an object/);
    expectErr(() => readSafetensors(build({ __metadata__: { k: 1 }, a: ONE }, DATA8)), /"__metadata__" value for key "k" must be a string, received 1/);
  });

  it('unknown dtype names it and lists the supported ones', () => {
    expectErr(
      () => readSafetensors(build({ w: { ...ONE, dtype: 'F8' } }, DATA8)),
      /tensor "w": unsupported dtype "F8"; supported dtypes are F32, F16, BF16, F64.*integer dtypes are not supported as weights/,
    );
    expectErr(
      () => readSafetensors(build({ ids: { ...ONE, dtype: 'I64', shape: [1] } }, DATA8)),
      /tensor "ids": unsupported dtype "I64"; supported dtypes are F32, F16, BF16, F64 \("I64" is an integer.*not supported as weights/,
    );
  });

  it('shape with negative / non-integer dims', () => {
    expectErr(() => readSafetensors(build({ w: { ...ONE, shape: [-2] } }, DATA8)), /tensor "w": shape\[0\] must be a non-negative integer, received -2 \(shape \[-2\]\)/);
    expectErr(() => readSafetensors(build({ w: { ...ONE, shape: [1, 2.5] } }, DATA8)), /tensor "w": shape\[1\] must be a non-negative integer, received 2.5/);
    expectErr(() => readSafetensors(build({ w: { ...ONE, shape: [1e300] } }, DATA8)), /tensor "w": shape\[0\] must be a non-negative integer, received 1e\+300/);
  });

  it('data_offsets not two non-negative integers / begin > end', () => {
    const bad = [[0], [0, 8, 16], [-1, 8], [0.5, 8], [0, '8'], [0, 2 ** 60]];
    for (const off of bad) {
      expectErr(() => readSafetensors(build({ w: { ...ONE, data_offsets: off } }, DATA8)), /tensor "w": "data_offsets" must be two non-negative integers \[begin, end\], received/);
    }
    expectErr(() => readSafetensors(build({ w: { ...ONE, data_offsets: [8, 0] } }, DATA8)), /tensor "w": data_offsets begin \(8\) must be <= end \(0\)/);
  });

  it('end beyond the data section', () => {
    expectErr(
      () => readSafetensors(build({ w: { ...ONE, shape: [3], data_offsets: [0, 12] } }, DATA8)),
      /tensor "w": data_offsets end \(12\) is beyond the data section \(8 bytes\)/,
    );
  });

  it('byte length != product(shape) * dtype size', () => {
    expectErr(
      () => readSafetensors(build({ w: { ...ONE, shape: [3] } }, DATA8)),
      /tensor "w": byte length mismatch: shape \[3\] with dtype F32 needs 3 \* 4 = 12 bytes, but data_offsets \[0, 8\] span 8 bytes/,
    );
    expectErr(
      () => readSafetensors(build({ w: { ...ONE, dtype: 'F16' } }, DATA8)),
      /tensor "w": byte length mismatch: shape \[2\] with dtype F16 needs 2 \* 2 = 4 bytes.*span 8 bytes/,
    );
    expectErr(
      () => readSafetensors(build({ w: { ...ONE, shape: [2 ** 30, 2 ** 30, 2 ** 30] } }, DATA8)),
      /tensor "w".*too many elements/,
    );
  });

  it('overlapping tensors', () => {
    const data = f32le([1, 2, 3]);
    expectErr(
      () =>
        readSafetensors(
          build(
            {
              a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
              b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
            },
            data,
          ),
        ),
      /tensor "b" \(data_offsets \[4, 12\]\) overlaps tensor "a" \(data_offsets \[0, 8\]\)/,
    );
  });

  it('writeSafetensors validates its input', () => {
    expectErr(() => writeSafetensors({ w: { shape: [2, 2], data: new Float32Array(3) } }), /tensor "w": data length mismatch: shape \[2,2\] needs 4 elements, received 3/);
    expectErr(() => writeSafetensors({ '': { shape: [1], data: new Float32Array(1) } }), /tensor names must be non-empty strings, received ""/);
    expectErr(() => writeSafetensors(new Map([[5 as unknown as string, { shape: [1], data: new Float32Array(1) }]])), /non-empty strings, received 5/);
    expectErr(() => writeSafetensors({ w: { shape: [-1], data: new Float32Array(0) } }), /tensor "w": shape\[0\] must be a non-negative integer, received -1/);
    expectErr(() => writeSafetensors({ w: { shape: [1], data: [1] as unknown as Float32Array } }), /tensor "w": data must be a Float32Array/);
    expectErr(() => writeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }), /reserved/);
    expectErr(() => writeSafetensors({}, { k: 1 as unknown as string }), /metadata value for key "k" must be a string, received 1/);
  });
});

describe('fuzz: truncation and mutation', () => {
  // Deterministic PRNG (mulberry32).
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function parsesOrThrowsSafetensorsError(bytes: Uint8Array, label: string): void {
    try {
      readSafetensors(bytes);
    } catch (e) {
      if (!(e instanceof SafetensorsError)) {
        throw new Error(`${label}: unexpected ${String(e)}`);
      }
    }
  }

  const base = writeSafetensors(
    {
      'lstm.weight_ih_l0': { shape: [4, 3], data: new Float32Array(12).map((_, i) => i / 7) },
      'lstm.bias': { shape: [4], data: new Float32Array([1, -1, 0.5, 2]) },
      s: { shape: [], data: new Float32Array([3]) },
    },
    { format: 'pt' },
  );

  it('every truncation either parses or throws SafetensorsError', () => {
    for (let len = 0; len <= base.length; len++) parsesOrThrowsSafetensorsError(base.subarray(0, len), `truncate ${len}`);
  });

  it('random byte mutations either parse or throw SafetensorsError', () => {
    const rand = rng(1234);
    const interesting = [0x00, 0xff, 0x22, 0x2c, 0x2d, 0x2e, 0x30, 0x39, 0x5b, 0x5d, 0x7b, 0x7d, 0x65, 0x80, 0xc3];
    for (let iter = 0; iter < 5000; iter++) {
      const m = base.slice();
      const edits = 1 + Math.floor(rand() * 3);
      for (let k = 0; k < edits; k++) {
        const pos = Math.floor(rand() * m.length);
        m[pos] = rand() < 0.5 ? interesting[Math.floor(rand() * interesting.length)]! : Math.floor(rand() * 256);
      }
      parsesOrThrowsSafetensorsError(m, `mutation ${iter}`);
    }
  });

  it('every single-position mutation (header region exhaustively) parses or throws SafetensorsError', () => {
    for (let pos = 0; pos < base.length; pos++) {
      for (const v of [0x00, 0x20, 0x31, 0x7f, 0xff]) {
        const m = base.slice();
        m[pos] = v;
        parsesOrThrowsSafetensorsError(m, `pos ${pos} = ${v}`);
      }
    }
  });

  it('golden files survive truncation at many positions', () => {
    const files = readdirSync(GOLDEN).filter((f) => f.endsWith('.safetensors'));
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(join(GOLDEN, f)));
      for (let len = 0; len < bytes.length; len += 7) parsesOrThrowsSafetensorsError(bytes.subarray(0, len), `${f} @${len}`);
    }
  });
});
