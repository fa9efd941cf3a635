// Runs in a Chromium page (test/webgpu.test.ts bundles it): each program given, both lowerings,
// on peerc's webgpu backend against the float64 interpreter; the result goes to window.__webgpu.
import { compileSource } from '../../src/frontend.js';
import { interpret } from '../../src/interp/interpreter.js';
import { seededInputs, seededTensors } from '../../src/io/seeded.js';
import { optimize } from '../../src/passes/pipeline.js';
import { Executor } from '../../runtime/executor.js';

export interface PageCase {
  file: string;
  text: string;
}
export interface PageResult {
  file: string;
  lowering: string;
  error?: string;
  /** Largest |got - want| / (1 + |want|) over the outputs. */
  worst?: number;
  /** Outputs holding expert ids (integer-valued) that differ from the interpreter's. */
  idMismatches?: number;
  detail?: string;
  kernels?: number;
  /** The backend's notes (what runs slower than it could, tables bound in parts). */
  notes?: string[];
}

export interface RunOptions {
  maxBindingBytes?: number;
  subgroups?: boolean;
  lowerings?: ('naive' | 'fused')[];
}

async function runCase(c: PageCase, lowering: 'naive' | 'fused', options: RunOptions): Promise<PageResult> {
  const r = compileSource(c.text, c.file);
  if (!r.module) return { file: c.file, lowering, error: r.diagnostics.map((d) => d.message).join('; ') };
  const weights = seededTensors(r.module, 3);
  const inputs = seededInputs(r.module, 4, 5);
  const want = interpret(r.module, inputs, weights).outputs;
  const ex = new Executor(optimize(r.module, { lowering }), weights, 'webgpu', { maxBindingBytes: options.maxBindingBytes, subgroups: options.subgroups });
  try {
    const got = await ex.forward(inputs);
    let worst = 0, idMismatches = 0;
    got.outputs.forEach((o, i) => {
      const w = want[i]!;
      if (w.dtype === 'index') o.data.forEach((v, j) => (idMismatches += v === w.data[j] ? 0 : 1));
      else o.data.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - w.data[j]!) / (1 + Math.abs(w.data[j]!)))));
    });
    return { file: c.file, lowering, worst, idMismatches, detail: ex.describe(), kernels: ex.kernelSources().length, notes: ex.notes() };
  } finally {
    ex.destroy();
  }
}

/** Every case on both lowerings (errors reported per case, not thrown). */
export async function runCases(cases: PageCase[], options: RunOptions = {}): Promise<PageResult[]> {
  const out: PageResult[] = [];
  for (const c of cases)
    for (const lowering of options.lowerings ?? (['naive', 'fused'] as const)) {
      try {
        out.push(await runCase(c, lowering, options));
      } catch (e) {
        out.push({ file: c.file, lowering, error: String((e as Error)?.message ?? e) });
      }
    }
  return out;
}

if (typeof window !== 'undefined') (window as unknown as { runCases: typeof runCases }).runCases = runCases;
