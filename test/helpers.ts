import { compileSource, decodeSource } from '../src/frontend.js';
import { renderAll } from '../src/diagnostics/render.js';
import type { IRModule } from '../src/ir/graph.js';

/** Compiles and renders every diagnostic exactly as the CLI prints it. */
export function diagnose(text: string, file = 'test.peer'): string {
  const r = compileSource(text, file);
  return renderAll(r.diagnostics, r.sources);
}

export function diagnoseBytes(bytes: Uint8Array, file: string): string {
  const d = decodeSource(bytes, file);
  if ('error' in d) return renderAll([d.error], new Map());
  return diagnose(d.text, file);
}

export function compileOk(text: string, file = 'test.peer', entry?: string): IRModule {
  const r = compileSource(text, file, { entry });
  if (!r.module) throw new Error(renderAll(r.diagnostics, r.sources));
  return r.module;
}
