// `peerc compile FILE -o DIR`: the emitted TypeScript module plus esbuild bundles of it with
// the runtime: NAME.mjs for Node (gpu.js as a dependency) and NAME.browser.mjs (self-contained).
import { ensureDir } from '../../src/io/files.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { emitDeclarations, emitModule } from '../../codegen/emit.js';
import type { IRModule } from '../../src/ir/graph.js';
import { optimize, type Lowering } from '../../src/passes/pipeline.js';

/** The runtime API's source, next to this file in the repository (or the installed package). */
export function runtimeApiPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // Bundled CLI: dist/peerc.js; sources: runtime/cli/compile.ts.
  return here.endsWith('dist') ? resolve(here, '..', 'runtime', 'api.ts') : resolve(here, '..', 'api.ts');
}

export async function compileToDir(m: IRModule, source: string, outDir: string, lowering: Lowering, program: { text: string; set: string }): Promise<string[]> {
  const emitted = emitModule(optimize(m), { source, lowering, runtimeImport: 'peerc/runtime', program });
  ensureDir(outDir);
  const tsPath = join(outDir, emitted.fileName);
  writeFileDurably(tsPath, emitted.text);
  const base = join(outDir, emitted.fileName.replace(/\.ts$/, ''));
  const common = { entryPoints: [tsPath], bundle: true, format: 'esm' as const, alias: { 'peerc/runtime': runtimeApiPath() }, logLevel: 'error' as const };
  // esbuild hands the bundles back and peerc writes them, so a full disk is reported like any write.
  const bundle = async (options: Parameters<typeof build>[0] & { outfile: string }) => {
    const r = await build({ ...options, write: false });
    for (const f of r.outputFiles ?? []) writeFileDurably(f.path, f.contents);
  };
  await bundle({ ...common, outfile: `${base}.mjs`, platform: 'node', target: 'node20', external: ['gpu.js'] });
  // In a browser gpu.js uses WebGL or WebGPU; its optional Node-only backends stay out.
  await bundle({ ...common, outfile: `${base}.browser.mjs`, platform: 'browser', target: 'es2022', external: ['gl', 'webgpu'] });
  // Types for both bundles (they export what the .ts does); their runtime types come from 'peerc/runtime'.
  const dts = emitDeclarations(emitted.fileName, emitted.text);
  for (const d of [`${base}.d.mts`, `${base}.browser.d.mts`]) writeFileDurably(d, dts);
  return [tsPath, `${base}.mjs`, `${base}.d.mts`, `${base}.browser.mjs`, `${base}.browser.d.mts`];
}
