// The README's examples run as written (imports of 'rnnkit' resolve to src/ here).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const examples = [...readme.matchAll(/```ts\n\/\/ example: (\S+)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] }));

describe('README examples', () => {
  it('has the classifier example', () => {
    expect(examples.map((e) => e.name)).toContain('classifier');
  });

  it('the LSTM classifier learns (accuracy well above chance)', async () => {
    const ex = examples.find((e) => e.name === 'classifier')!;
    const dir = new URL('./.readme/', import.meta.url);
    mkdirSync(dir, { recursive: true });
    const file = new URL('classifier.ts', dir);
    writeFileSync(file, ex.code);
    const mod = await import(file.href);
    expect(mod.accuracy).toBeGreaterThanOrEqual(0.8);
  });
});
