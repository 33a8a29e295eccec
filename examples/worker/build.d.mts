// Types of build.mjs (for the tests, written in TypeScript).
export declare const MODULE_RULES: Array<{ type: 'CompiledWasm' | 'Data' | 'ESModule'; include: string[] }>;
export declare function buildWorker(outDir?: string): Promise<string>;
