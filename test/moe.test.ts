// A top-2 mixture of matrix experts (examples/moe_top2.peer: Mixtral's SwiGLU feed-forward layer,
// trained with Switch's load-balancing loss through aux_loss) as peerc runs it: fused to expert_act / expert_out on the [E, m, d] tables (no [T, 2, m, d]
// gathered matrices), equal in float64 to a PyTorch implementation written independently of
// peerc (a loop over experts, test/python/moe_reference.py), and trained on every backend with
// the interpreter's gradients (expert tables dense or @sparse, whose gradient rows come as factors
// on wasm-simd).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { interpret } from '../src/interp/interpreter.js';
import { normalAt, uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { toWrite } from '../src/io/tensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { optimize } from '../src/passes/pipeline.js';
import { unfusedPatterns } from '../src/passes/fusion-notes.js';
import { printModule } from '../src/ir/print.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Trainer } from '../runtime/train/trainer.js';
import { DEFAULT_OPTIMIZER } from '../runtime/train/optim.js';
import { denseGradients, weights as float64Weights } from './gradient-check.js';
import { compileOk, pythonProbe } from './helpers.js';

const root = join(import.meta.dirname, '..');
const example = readFileSync(join(root, 'examples', 'moe_top2.peer'), 'utf8');
/** The example, small: d = 8, m = 6, E = 5. */
const small = (sparse: boolean) =>
  example.replace('const d = 64', 'const d = 8').replace('const m = 256', 'const m = 6').replace('const E = 16', 'const E = 5').replace(/^(param W[123]: .*)$/gm, sparse ? '$1 @sparse' : '$1');
const T = 7;
const batchOf = (d: number) => ({
  x: new Tensor('f32', [T, d], Float64Array.from({ length: T * d }, (_, i) => normalAt(17, i))),
  targets: new Tensor('index', [T], Float64Array.from({ length: T }, (_, i) => Math.floor(uniformAt(19, i, 0) * d))),
});
const torch = pythonProbe('import torch, safetensors; print(torch.__version__)', 'the independent PyTorch MoE check', 'python3 with torch and safetensors not found (pip install torch safetensors)');

describe('top-2 mixture of matrix experts', () => {
  it('fuses: two expert_act and one expert_out read the [E, m, d] tables in place, nothing left unfused', () => {
    const fused = optimize(compileOk(example), { lowering: 'fused' });
    const ops = [...fused.functions.values()][0]!.graph.nodes.map((n) => n.op);
    expect(ops.filter((op) => op === 'expert_act')).toHaveLength(2);
    expect(ops.filter((op) => op === 'expert_out')).toHaveLength(1);
    expect(ops).not.toContain('gather');
    expect(unfusedPatterns(fused)).toEqual([]);
  });

  it('training reads the tables in place too where the backend can (no [T, 2, m, d] gathers; the gradient rows are outer products)', () => {
    const prog = compileTraining(compileOk(small(true)), { gradients: true, fuseExpertReads: true });
    expect(printModule(prog.module)).not.toMatch(/= gather\(/);
  });

  /** The small example with Switch's capacity (factor 1: 2 slots per expert of 14) and its dropped share as a metric. */
  const withCapacity = (text: string) =>
    text
      .replace('  w = softmax(g)\n', '  keep = capacity_keep(logits, e, 1.0)\n  w = softmax(g) * keep\n')
      .replace(/return aux_loss\((.*), 0\.01\)$/m, 'return metric(aux_loss($1, 0.01), 1 - mean(mean(keep)), "dropped")');

  for (const capacity of [false, true])
    it.skipIf(!torch)(`equals an independent PyTorch implementation in float64${capacity ? ', with expert capacity (dropped slots)' : ''}: output, experts, loss (load balancing included) and every gradient`, () => {
      const text = capacity ? withCapacity(small(false)) : small(false);
      if (capacity) expect(text).toMatch(/capacity_keep[\s\S]*metric\(/);
      const m = compileOk(text);
      const w = float64Weights(m, 4);
      const { x, targets } = batchOf(8);
      const ref = interpret(m, new Map([['x', x]]), w);
      const prog = compileTraining(m, { gradients: true });
      const outs = interpret(prog.module, new Map([['x', x], [prog.targets!.name, targets]]), w, { training: true }).outputs;
      const grads = denseGradients(m, prog, outs);

      const tmp = mkdtempSync(join(tmpdir(), 'peerc-moe-'));
      writeSafetensorsFile(join(tmp, 'w.safetensors'), [...w].map(([n, t]) => toWrite(n, t, 'F64')));
      writeSafetensorsFile(join(tmp, 'in.safetensors'), [toWrite('x', x, 'F64'), toWrite('targets', targets)]);
      const r = spawnSync('python3', [join(root, 'test', 'python', 'moe_reference.py'), join(tmp, 'w.safetensors'), join(tmp, 'in.safetensors'), ...(capacity ? ['--capacity', '1.0'] : [])], { encoding: 'utf8', timeout: 300_000 });
      expect(r.status, r.stderr).toBe(0);
      const py = JSON.parse(r.stdout) as { output: number[]; loss: number; dropped: number; grads: Record<string, number[]> };
      const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
        expect(a.length, what).toBe(b.length);
        let scale = 1e-300;
        for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
        for (let i = 0; i < b.length; i++) expect(Math.abs(a[i]! - b[i]!) / scale, `${what}[${i}]`).toBeLessThan(1e-10);
      };
      close(ref.outputs[0]!.data, py.output, 'output');
      expect(Math.abs(outs[prog.layout.loss]!.data[0]! - py.loss)).toBeLessThan(1e-12);
      for (const name of ['Wr', 'W1', 'W2', 'W3']) close(grads.get(name)!, py.grads[name]!, `d loss / d ${name}`);
      if (capacity) {
        // Some slots are dropped at these sizes (else the test would not test capacity), and the metric says how many.
        expect(py.dropped).toBeGreaterThan(0);
        const dropped = prog.layout.metrics!.find((x) => x.name === 'dropped')!;
        expect(Math.abs(outs[dropped.outputs[0]!]!.data[0]! - py.dropped)).toBeLessThan(1e-12);
      }
    });

  const backends = (['wasm-simd', 'cpu', 'plain-js'] as BackendName[]).filter((b) => !unavailableReason(b));
  for (const sparse of [false, true])
    it.each(backends)(`trains on %s with the interpreter's gradients (expert tables ${sparse ? '@sparse' : 'dense'})`, async (backend) => {
      const m = compileOk(small(sparse));
      const w = float64Weights(m, 6);
      const { x, targets } = batchOf(8);
      const prog = compileTraining(m, { gradients: true });
      const want = denseGradients(m, prog, interpret(prog.module, new Map([['x', x], [prog.targets!.name, targets]]), w, { training: true }).outputs);
      const trainer = new Trainer(m, new Map([...w].map(([n, t]) => [n, Float32Array.from(t.data)])), { backend, optimizer: { ...DEFAULT_OPTIMIZER, kind: 'sgd' } });
      try {
        const f32 = (t: Tensor) => ({ shape: [...t.shape], data: Float32Array.from(t.data) });
        const { grads } = await trainer.gradients({ inputs: new Map([['x', f32(x)]]), targets: f32(targets), tokens: T });
        for (const [name, g] of want) {
          const got = new Float64Array(g.length);
          const dense = grads.dense.get(name);
          if (dense) got.set(dense);
          const s = grads.sparse.get(name);
          if (s) {
            const rowSize = g.length / m.params.find((p) => p.name === name)!.shape[0]!;
            s.rows.forEach((r, i) => { for (let j = 0; j < rowSize; j++) got[r * rowSize + j] = got[r * rowSize + j]! + s.values![i * rowSize + j]!; });
          }
          expect(dense || s, `a gradient for ${name}`).toBeTruthy();
          let err = 0, scale = 1e-6;
          g.forEach((v, i) => { err = Math.max(err, Math.abs(v - got[i]!)); scale = Math.max(scale, Math.abs(v)); });
          expect(err / scale, `${backend} d loss / d ${name}`).toBeLessThan(1e-4);
        }
      } finally {
        trainer.destroy();
      }
    });
});
