// What `rnnkit doctor` reports: the platform, which native binary loaded (a shipped prebuild, a
// local build, or none and why), its instruction set and threads, the wasm build, and the backend
// 'auto' picks. doctorReport() returns it as data; formatDoctor() as the text the CLI prints.
import { type BackendName, backendStatus, getMatmulPrecision, loadBackend } from './index.js';
import { nativeOrigin } from './native.js';

/** What is in use on this machine: platform, native binary and its ISA, wasm build, the backend 'auto' picks. */
export interface DoctorReport {
  runtime: string;
  platform: string;
  arch: string;
  native: {
    /** 'prebuild' | 'local build' | 'none' */
    binary: string;
    path?: string;
    /** why no binary loaded */
    reason?: string;
    isa?: string;
    threads?: number;
    detail?: string;
  };
  wasm: { available: boolean; build?: 'simd128' | 'simd128+relaxed'; reason?: string };
  /** What backend 'auto' resolves to, and RNNKIT_BACKEND when it overrides that. */
  auto: BackendName | 'nothing';
  forced?: string;
}

function runtimeName(): string {
  const p = (globalThis as { process?: { versions?: Record<string, string> } }).process;
  const v = p?.versions ?? {};
  if (v.bun) return `bun ${v.bun}`;
  if (v.deno) return `deno ${v.deno}`;
  if (v.node) return `node ${v.node}`;
  return 'a JavaScript runtime without Node APIs';
}

/** The native backend's description under the matmul precision in effect (bf16 GEMMs or sgemm). */
function nativeDetail(): string | undefined {
  const b = loadBackend('native');
  b.setMatmulPrecision?.(getMatmulPrecision());
  return b.info().detail;
}

/** Loads every backend (once) and says what is in use and why. */
export function doctorReport(): DoctorReport {
  const proc = (globalThis as { process?: { platform?: string; arch?: string; env?: Record<string, string | undefined> } }).process;
  const status = backendStatus();
  const byName = new Map(status.map((s) => [s.name, s]));
  const nat = byName.get('native')!;
  const wasm = byName.get('wasm')!;
  const origin = nativeOrigin();
  const native: DoctorReport['native'] = nat.available
    ? { binary: origin.kind, path: origin.path, isa: nat.isa, threads: nat.threads, detail: nativeDetail() }
    : { binary: 'none', reason: origin.reason && origin.reason !== 'not loaded yet' ? origin.reason : nat.reason };
  const chosen = status.find((s) => s.available);
  return {
    runtime: runtimeName(),
    platform: proc?.platform ?? 'unknown',
    arch: proc?.arch ?? 'unknown',
    native,
    wasm: wasm.available
      ? { available: true, build: wasm.isa === 'simd128+relaxed' ? 'simd128+relaxed' : 'simd128' }
      : { available: false, reason: wasm.reason },
    auto: chosen ? chosen.name : 'nothing',
    forced: proc?.env?.RNNKIT_BACKEND || undefined,
  };
}

/** The report as the lines `rnnkit doctor` prints. */
export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `platform: ${r.platform}-${r.arch} (${r.runtime})`,
    r.native.binary === 'none'
      ? `native:   none (${r.native.reason})`
      : `native:   ${r.native.binary} ${r.native.path ?? ''}`.trimEnd(),
  ];
  if (r.native.binary !== 'none') lines.push(`          isa=${r.native.isa} threads=${r.native.threads}${r.native.detail ? ` (${r.native.detail})` : ''}`);
  lines.push(r.wasm.available
    ? `wasm:     ${r.wasm.build === 'simd128+relaxed' ? 'relaxed SIMD build' : 'SIMD build (relaxed SIMD not available in this runtime)'}`
    : `wasm:     unavailable (${r.wasm.reason})`);
  lines.push(`auto resolves to: ${r.auto}${r.forced ? ` (RNNKIT_BACKEND=${r.forced})` : ''}`);
  return `${lines.join('\n')}\n`;
}
