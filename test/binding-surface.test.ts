// The binding surfaces and their TypeScript declarations agree: the functions the built .wasm
// modules export (names and parameter counts) against the WasmKernels interface of
// src/backends/wasm-core.ts, and the functions the native addon exports (names from the loaded
// addon and from native/addon.cpp, argument counts from each binding's checkArgc) against the
// NativeAddon interface of src/backends/native.ts. A kernel added, renamed or given another
// argument on one side only fails here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../src/backends/native.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (rel: string) => readFileSync(ROOT + rel, 'utf8');

/** Members of an interface: name -> parameter count (a rest parameter of a tuple alias counts its elements), null for a property. */
function interfaceMembers(file: string, name: string): Map<string, number | null> {
  const src = ts.createSourceFile(file, read(file), ts.ScriptTarget.Latest, true);
  const tuples = new Map<string, number>();
  let decl: ts.InterfaceDeclaration | undefined;
  src.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === name) decl = n;
    if (ts.isTypeAliasDeclaration(n) && ts.isTupleTypeNode(n.type)) tuples.set(n.name.text, n.type.elements.length);
  });
  if (!decl) throw new Error(`${file}: no interface ${name}`);
  const out = new Map<string, number | null>();
  for (const m of decl.members) {
    const key = m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name)) ? m.name.text : '?';
    if (ts.isMethodSignature(m)) {
      let n = 0;
      for (const p of m.parameters) {
        const alias = p.type && ts.isTypeReferenceNode(p.type) && ts.isIdentifier(p.type.typeName) ? p.type.typeName.text : '';
        n += p.dotDotDotToken ? (tuples.get(alias) ?? NaN) : 1;
      }
      out.set(key, n);
    } else {
      out.set(key, null);
    }
  }
  return out;
}

const sorted = (xs: Iterable<string>) => [...xs].sort();

/**
 * Exports of a .wasm binary read from its sections (no compilation, so also the relaxed-SIMD
 * build where this runtime lacks it): name -> parameter count of a function, null otherwise.
 */
function wasmExports(bytes: Uint8Array): Map<string, number | null> {
  let pos = 8; // magic + version
  const u32 = () => {
    let r = 0, shift = 0, b: number;
    do {
      b = bytes[pos++];
      r |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return r >>> 0;
  };
  const name = () => {
    const n = u32();
    const s = new TextDecoder().decode(bytes.subarray(pos, pos + n));
    pos += n;
    return s;
  };
  const typeParams: number[] = [];
  const funcTypes: number[] = []; // type index of each function (imported ones first)
  const out = new Map<string, number | null>();
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = u32();
    const end = pos + size;
    if (id === 1) { // types: 0x60 params results
      for (let i = u32(); i > 0; i--) {
        pos++;
        const np = u32();
        typeParams.push(np);
        pos += np;
        const nr = u32();
        pos += nr;
      }
    } else if (id === 2) { // imports
      for (let i = u32(); i > 0; i--) {
        name();
        name();
        const kind = bytes[pos++];
        if (kind !== 0) throw new Error('only function imports are expected');
        funcTypes.push(u32());
      }
    } else if (id === 3) { // functions
      for (let i = u32(); i > 0; i--) funcTypes.push(u32());
    } else if (id === 7) { // exports
      for (let i = u32(); i > 0; i--) {
        const n = name();
        const kind = bytes[pos++];
        const index = u32();
        out.set(n, kind === 0 ? typeParams[funcTypes[index]] : null);
      }
    }
    pos = end;
  }
  return out;
}

describe('wasm exports vs the WasmKernels interface (src/backends/wasm-core.ts)', () => {
  const declared = interfaceMembers('src/backends/wasm-core.ts', 'WasmKernels');
  it.each(['rnnkit.wasm', 'rnnkit-relaxed.wasm'])('dist/%s: same names, same parameter counts', (file) => {
    const bytes = readFileSync(`${ROOT}dist/${file}`);
    const exported = wasmExports(bytes);
    expect(Object.fromEntries(exported)).toEqual(Object.fromEntries(declared));
    // the section reader agrees with the runtime where it compiles the module
    if (WebAssembly.validate(bytes)) {
      const module = new WebAssembly.Module(bytes);
      expect(sorted(WebAssembly.Module.exports(module).map((e) => e.name))).toEqual(sorted(exported.keys()));
      const instance = new WebAssembly.Instance(module, {});
      for (const [n, params] of exported) {
        if (params !== null) expect((instance.exports[n] as (...a: unknown[]) => unknown).length, n).toBe(params);
      }
    }
  });
});

describe('native addon exports vs the NativeAddon interface (src/backends/native.ts)', () => {
  const declared = interfaceMembers('src/backends/native.ts', 'NativeAddon');
  const cpp = read('native/addon.cpp');
  // exports.Set("name", Napi::Function::New(env, Binding))
  const bindings = new Map([...cpp.matchAll(/exports\.Set\("(\w+)",\s*Napi::Function::New\(env,\s*(\w+)\)\)/g)].map((m) => [m[1], m[2]]));
  /** Arguments a C++ binding requires: its checkArgc(info, N, ...) or that of a parse helper it hands info to; 0 without. */
  function argc(fn: string, seen = new Set<string>()): number {
    seen.add(fn);
    const start = cpp.search(new RegExp(`\\b${fn}\\(const Napi::CallbackInfo& info[^)]*\\)\\s*\\{`));
    if (start < 0) throw new Error(`native/addon.cpp: no definition of ${fn}`);
    const body = cpp.slice(start, cpp.indexOf('\n}\n', start));
    const direct = body.match(/checkArgc\(info, (\d+),/);
    if (direct) return Number(direct[1]);
    for (const m of body.matchAll(/\b(\w+)\(info[,)]/g)) if (m[1] !== fn && !seen.has(m[1])) return argc(m[1], seen);
    return 0;
  }

  it('the loaded addon, addon.cpp and the interface list the same functions', () => {
    const addon = loadNativeAddon() as unknown as Record<string, unknown>;
    const loaded = Object.keys(addon).filter((k) => typeof addon[k] === 'function');
    expect(sorted(loaded)).toEqual(sorted(bindings.keys()));
    expect(sorted(bindings.keys())).toEqual(sorted(declared.keys()));
  });

  it('each binding requires as many arguments as the interface declares', () => {
    const counts = Object.fromEntries([...bindings].map(([name, fn]) => [name, argc(fn)]));
    expect(counts).toEqual(Object.fromEntries([...declared].filter(([name]) => bindings.has(name))));
  });
});
