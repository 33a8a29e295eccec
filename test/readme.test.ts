// Every README code block in js/ts that is a complete program runs as written; a block whose
// info string says `fragment` (```ts fragment) shows part of a program and is only counted.
// Imports of 'rnnkit', 'rnnkit/lm' and 'rnnkit/wasm' resolve to the sources here.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { setBackend, setMatmulPrecision } from 'rnnkit';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

interface Block { lang: string; fragment: boolean; code: string; heading: string; line: number }

/** Fenced blocks with their info string and the heading they sit under. */
function codeBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const h = /^#+\s+(.*)$/.exec(lines[i]);
    if (h) heading = h[1];
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && !lines[j].startsWith('```')) j++;
    blocks.push({ lang: open[1], fragment: /\bfragment\b/.test(open[2]), code: lines.slice(i + 1, j).join('\n') + '\n', heading, line: i + 1 });
    i = j;
  }
  return blocks;
}

const SOURCES: Record<string, string> = {
  'rnnkit/lm': '../src/lm/index.ts',
  'rnnkit/wasm': '../src/wasm-entry.ts',
  rnnkit: '../src/index.ts',
};
function toSources(code: string): string {
  return code.replace(/from '(rnnkit(?:\/lm|\/wasm)?)'/g, (_, spec: string) => `from '${fileURLToPath(new URL(SOURCES[spec], import.meta.url))}'`);
}

const all = codeBlocks(readme);
const programs = all.filter((b) => /^(js|ts|javascript|typescript|mjs)$/.test(b.lang) && !b.fragment);
const dir = new URL('./.readme/', import.meta.url);

describe('README code blocks', () => {
  afterAll(() => {
    setBackend('auto');
    setMatmulPrecision('highest');
  });

  it('every block names its language, and the js/ts ones are programs or marked fragments', () => {
    expect(all.filter((b) => b.lang === '').map((b) => `line ${b.line}`)).toEqual([]);
    expect(programs.length).toBeGreaterThanOrEqual(5);
    expect(all.filter((b) => b.fragment).length).toBeGreaterThanOrEqual(1);
  });

  it.each(programs.map((b) => [`${b.heading} (line ${b.line})`, b] as const))('runs: %s', async (_, block) => {
    mkdirSync(dir, { recursive: true });
    const file = new URL(`block-${block.line}.${block.lang.startsWith('t') ? 'ts' : 'mjs'}`, dir);
    writeFileSync(file, toSources(block.code));
    const log: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => { log.push(args.map(String).join(' ')); };
    let mod: Record<string, unknown>;
    try {
      mod = await import(file.href);
    } finally {
      console.log = original;
    }
    expect(log.length, 'a README program prints what it shows').toBeGreaterThan(0);
    // what each program claims, checked
    if ('accuracy' in mod) expect(mod.accuracy).toBeGreaterThanOrEqual(0.8);
    if ('same' in mod) expect(mod.same).toBe(true);
    if ('text' in mod) expect(mod.text).toMatch(/^hello world/);
  });
});
