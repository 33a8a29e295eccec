// Every name exported by the entry points (rnnkit, rnnkit/wasm, rnnkit/lm) has a doc comment,
// so the API reference (`npm run docs`, typedoc) describes each of them.
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ENTRY_POINTS = ['src/index.ts', 'src/wasm-entry.ts', 'src/lm/index.ts'];
const root = fileURLToPath(new URL('..', import.meta.url));

describe('API reference', () => {
  it('every exported name of the entry points has a doc comment', () => {
    const files = ENTRY_POINTS.map((f) => root + f);
    const program = ts.createProgram(files, { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, types: ['node'] });
    const checker = program.getTypeChecker();
    const undocumented: string[] = [];
    let count = 0;
    for (const file of files) {
      const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
      for (const exported of checker.getExportsOfModule(moduleSymbol)) {
        const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
        count++;
        const documented = (symbol.declarations ?? []).some((d) => {
          // a function's comment sits on its declaration; a `const f = ...` one on the statement
          const node = ts.isVariableDeclaration(d) ? d.parent.parent : d;
          return ts.getJSDocCommentsAndTags(node).length > 0;
        });
        if (!documented) undocumented.push(`${exported.name} (${symbol.declarations?.[0]?.getSourceFile().fileName.slice(root.length) ?? '?'})`);
      }
    }
    expect(count).toBeGreaterThan(150);
    expect([...new Set(undocumented)]).toEqual([]);
  });
});
