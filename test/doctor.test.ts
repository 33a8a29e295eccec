// `rnnkit doctor`'s report (src/backends/doctor.ts) and the one line said when 'auto' falls back
// from the native addon to wasm.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { doctorReport, formatDoctor } from '../src/backends/doctor.js';
import { loadBackend } from '../src/backends/index.js';

const ROOT = resolve(import.meta.dirname, '..');

describe('doctor report', () => {
  it('names the platform, the native binary in use with its ISA and threads, the wasm build and what auto picks', () => {
    const r = doctorReport();
    expect(r.platform).toBe(process.platform);
    expect(r.arch).toBe(process.arch);
    expect(r.runtime).toBe(`node ${process.versions.node}`);
    const info = loadBackend('native').info();
    expect(['prebuild', 'local build']).toContain(r.native.binary);
    expect(r.native.path).toMatch(/rnnkit\.node$/);
    expect(r.native.binary === 'prebuild').toBe(/[\\/]prebuilds[\\/]/.test(r.native.path!));
    expect(r.native.isa).toBe(info.isa);
    expect(r.native.threads).toBe(info.threads);
    // Node 20 runs relaxed SIMD only with --experimental-wasm-relaxed-simd
    expect(r.wasm).toEqual({ available: true, build: 'simd128' });
    expect(r.auto).toBe('native');
    const text = formatDoctor(r);
    expect(text).toContain(`platform: ${process.platform}-${process.arch} (node ${process.versions.node})`);
    expect(text).toContain(`native:   ${r.native.binary} ${r.native.path}`);
    expect(text).toContain(`isa=${info.isa} threads=${info.threads}`);
    expect(text).toContain('wasm:     SIMD build (relaxed SIMD not available in this runtime)');
    expect(text).toContain('auto resolves to: native');
  });

  // RNNKIT_NATIVE_ISA naming a path this CPU family lacks makes the addon refuse to load: the
  // same situation as no prebuild and no compiler, as far as the façade can tell.
  const script = `
    const rk = await import(${JSON.stringify(resolve(ROOT, 'dist/index.js'))});
    const { doctorReport } = await import(${JSON.stringify(resolve(ROOT, 'dist/backends/doctor.js'))});
    const lstm = new rk.LSTM({ inputSize: 3, hiddenSize: 4 });
    lstm.forward(new rk.Tensor(new Float32Array(2 * 3), [2, 1, 3]));
    lstm.forward(new rk.Tensor(new Float32Array(2 * 3), [2, 1, 3]));
    console.log(JSON.stringify({ backend: rk.getBackend().name, report: doctorReport() }));`;

  it('without a loadable native addon: doctor says none and why; the first use says wasm is in use and why, once', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8', env: { ...process.env, RNNKIT_NATIVE_ISA: 'avx9', RNNKIT_BACKEND: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(out.backend).toBe('wasm');
    expect(out.report.native.binary).toBe('none');
    expect(out.report.native.reason).toContain('RNNKIT_NATIVE_ISA must be');
    expect(out.report.auto).toBe('wasm');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^rnnkit: using the wasm backend, the native addon did not load: .*RNNKIT_NATIVE_ISA must be .*, received avx9.* \(`npx rnnkit doctor` says more\)$/);
  });
});
