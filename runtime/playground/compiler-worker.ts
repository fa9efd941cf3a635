// The playground's compiler worker: the same front end as the CLI (parser, checker, passes),
// off the page's thread so typing never waits for it.
import { compileSource } from '../../src/frontend.js';
import { CompileError } from '../../src/diagnostics/diagnostic.js';
import { printModule } from '../../src/ir/print.js';
import { optimize } from '../../src/passes/pipeline.js';
import { fusedSummary, unfusedPatterns } from '../../src/passes/fusion-notes.js';
import { moduleInfo } from '../cli/info.js';
import { compileTraining } from '../../src/autodiff/differentiate.js';
import { pageDiagnostic } from './diagnostics.js';
import { settingsOf } from '../train/settings.js';
import type { IRModule } from '../../src/ir/graph.js';
import type { CompilerReply, CompilerRequest, IRDump, TrainDefaults } from './protocol.js';

function trainDefaults(m: IRModule): TrainDefaults {
  const perTask: TrainDefaults['perTask'] = {};
  for (const task of ['recall', 'text'] as const) {
    const s = settingsOf(m, new Map<string, string | number | boolean>([['task', task], ...(task === 'text' ? [['data', 'text'] as [string, string]] : [])]));
    perTask[task] = { steps: s.steps, batch: s.batch, seq: s.seq, lr: s.optimizer.lr, evalEvery: s.evalEvery };
  }
  return { task: m.train.get('task') === 'text' ? 'text' : 'recall', perTask };
}

const post = (r: CompilerReply) => (self as unknown as Worker).postMessage(r);

function check(req: Extract<CompilerRequest, { kind: 'check' }>): CompilerReply {
  const t0 = performance.now();
  const r = compileSource(req.source, req.file);
  const diagnostics = r.diagnostics.map((d) => pageDiagnostic(d, req.file, r.sources));
  const m = r.module;
  if (!m || diagnostics.length) return { kind: 'checked', version: req.version, ms: performance.now() - t0, diagnostics };
  const info = moduleInfo(m);
  const summary = { text: info.text, entry: m.entry ?? null, parameters: info.total_parameters, inputs: info.entry?.inputs ?? [], train: trainDefaults(m) };
  if (!m.entry) return { kind: 'checked', version: req.version, ms: performance.now() - t0, diagnostics, info: summary, noModel: true };
  const ir: IRDump[] = [{ pass: 'check', text: printModule(m) }];
  let fused = m;
  try {
    fused = optimize(m, { lowering: 'fused', after: (pass, out) => ir.push({ pass: pass.name, text: printModule(out) }) });
  } catch (e) {
    // A pass that rejects a checked program is reported where it happened, not as a crash.
    if (!(e instanceof CompileError)) throw e;
    return { kind: 'checked', version: req.version, ms: performance.now() - t0, diagnostics: [pageDiagnostic(e.diagnostic, req.file, r.sources)] };
  }
  // The training program (as `peerc ir --train`): the loss, the fused retrieval and every gradient.
  try {
    ir.push({ pass: 'training program', text: printModule(compileTraining(m, { gradients: true }).module) });
  } catch (e) {
    if (!(e instanceof CompileError)) throw e;
    ir.push({ pass: 'training program', text: `no training program: ${e.diagnostic.code}: ${e.diagnostic.message}` });
  }
  const fusion = [...fusedSummary(fused), ...unfusedPatterns(fused).map((n) => `not fused${n.span ? ` (line ${n.span.line}:${n.span.col})` : ''}: ${n.message}`)];
  return { kind: 'checked', version: req.version, ms: performance.now() - t0, diagnostics, info: summary, ir, fusion };
}

async function emit(req: Extract<CompilerRequest, { kind: 'emit' }>): Promise<CompilerReply> {
  const r = compileSource(req.source, req.file);
  if (!r.module?.entry) return { kind: 'failed', version: req.version, message: 'the program must compile and have a model to emit its module' };
  // ts-morph is large: loaded only when a module is asked for.
  const { emitModule } = await import('../../codegen/emit.js');
  const out = emitModule(optimize(r.module), { source: req.file, lowering: req.lowering, runtimeImport: 'peerc/runtime', program: { text: req.source, set: '' } });
  return { kind: 'emitted', version: req.version, fileName: out.fileName, text: out.text };
}

self.onmessage = async (e: MessageEvent<CompilerRequest>) => {
  const req = e.data;
  try {
    post(req.kind === 'check' ? check(req) : await emit(req));
  } catch (err) {
    post({ kind: 'failed', version: req.version, message: `internal error in the compiler (please report it with this program): ${err instanceof Error ? err.message : String(err)}` });
  }
};
