// The whole project (src, test, bench: tsconfig.json) typechecks, as `npm run typecheck` does:
// vitest strips types without checking them, so a type error in a test or a bench script would
// otherwise pass unnoticed.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

describe('typecheck', () => {
  it('tsc -p tsconfig.json --noEmit reports no error', () => {
    const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], { cwd: root, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 180_000);
});
