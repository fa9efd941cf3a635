// `peerc demo` (the README's main job): check the paper's PEER layer, optimise and verify
// its IR, evaluate it on seeded weights with the float64 reference interpreter, and show
// that product-key retrieval found the true top-k experts.
import { CompileError } from '../../src/diagnostics/diagnostic.js';
import { compileSource } from '../../src/frontend.js';
import { verifyModule } from '../../src/ir/verify.js';
import { entryFunction, interpret } from '../../src/interp/interpreter.js';
import { normalAt, paramKey } from '../../src/interp/rng.js';
import { Tensor } from '../../src/interp/tensor.js';
import { topkLane } from '../../src/ir/ops/indexing.js';
import { seededWeights } from '../../src/io/tensors.js';
import { optimize } from '../../src/passes/pipeline.js';
import PAPER from '../../examples/peer_paper.peer';
import { ProgramErrors } from './errors.js';

const say = (s = '') => process.stdout.write(s + '\n');
const fmt = (n: number) => n.toLocaleString('en-US');

export function runDemo(tokens: number, seed: number): number {
  const t0 = performance.now();
  const r = compileSource(PAPER, 'examples/peer_paper.peer');
  if (!r.module) throw new ProgramErrors(r.diagnostics, r.sources);
  const m = r.module;
  const tCheck = performance.now() - t0;
  const trainable = m.params.filter((p) => p.role === 'param').reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  say("peerc demo: the paper's PEER layer (examples/peer_paper.peer)");
  say(`  checked in ${tCheck.toFixed(0)} ms: ${m.params.length} parameters and buffers, ${fmt(trainable)} trainable values`);
  for (const p of m.params.filter((q) => q.shape.reduce((x, y) => x * y, 1) > 1e6)) say(`    ${p.name}: f32[${p.shape.join(', ')}]${p.sparse ? ' (sparse updates)' : ''}`);
  const before = [...m.functions.values()].reduce((a, f) => a + f.graph.nodes.length, 0);
  const opt = optimize(m, { after: (pass, mod) => {
    const problems = verifyModule(mod);
    if (problems.length) throw new Error(`IR verification failed after ${pass.name}: ${problems[0]}`);
  } });
  const after = [...opt.functions.values()][0]!.graph.nodes.length;
  say(`  IR: ${m.functions.size} functions with ${before} nodes -> inlined and optimised to ${after} nodes, verified after every pass`);

  const fn = entryFunction(opt);
  const d = fn.graph.node(fn.inputs[0]!).types[0]!.shape[1]!.value!;
  const key = paramKey(seed + 1, 'demo-input');
  const x = new Tensor('f32', [tokens, d], Float64Array.from({ length: tokens * d }, (_, i) => normalAt(key, i)));
  const weights = seededWeights(opt, seed);
  const s1s: Tensor[] = [];
  let experts: Tensor | undefined;
  const t1 = performance.now();
  let result;
  try {
    result = interpret(opt, new Map([['x', x]]), weights, {
      trace: (node, _f, vals) => {
        if (node.op === 'einsum' && node.attrs.spec === 'thc,nc->thn') s1s.push(vals[0]!);
        if (node.op === 'take_along' && vals[0]!.dtype === 'index') experts = vals[0];
      },
    });
  } catch (e) {
    if (e instanceof CompileError) throw new ProgramErrors([e.diagnostic], r.sources);
    throw e;
  }
  const tRun = performance.now() - t1;
  const y = result.outputs[0]!;
  const mean = y.data.reduce((a, v) => a + v, 0) / y.size;
  const std = Math.sqrt(y.data.reduce((a, v) => a + (v - mean) ** 2, 0) / y.size);
  say(`  evaluated on T = ${tokens} random tokens (seed ${seed}) by the float64 reference interpreter in ${(tRun / 1000).toFixed(2)} s`);
  say(`  output [${y.shape.join(', ')}]: mean ${mean.toFixed(5)}, std ${std.toFixed(5)}, all finite`);
  if (experts && s1s.length === 2) {
    const [, h, k] = experts.shape as [number, number, number];
    const n = s1s[0]!.shape[2]!;
    const used = new Set(experts.data);
    say(`  retrieval: ${tokens} tokens x ${h} heads x ${k} experts = ${tokens * h * k} slots used ${fmt(used.size)} distinct experts of ${fmt(n * n)}`);
    say(`  token 0, head 0 picked experts ${[...experts.data.subarray(0, Math.min(k, 6))].join(', ')}${k > 6 ? ', ...' : ''}`);
    // Brute force over all n*n product scores must pick the same experts (the product-key guarantee).
    let agree = 0;
    const checks = Math.min(tokens * h, 16);
    for (let c = 0; c < checks; c++) {
      const full = new Float64Array(n * n);
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) full[a * n + b] = s1s[0]!.data[c * n + a]! + s1s[1]!.data[c * n + b]!;
      const truth = topkLane(full, k);
      const got = [...experts.data.subarray(c * k, c * k + k)];
      if (truth.every((t, i) => t === got[i])) agree++;
    }
    say(`  brute-force check over all ${fmt(n * n)} experts: ${agree} of ${checks} (token, head) pairs picked exactly the true top-${k}`);
    if (agree !== checks) {
      say('  MISMATCH: product-key retrieval disagreed with brute force');
      return 1;
    }
  }
  say(`  done in ${((performance.now() - t0) / 1000).toFixed(2)} s. Next: peerc check examples/*.peer, peerc info, peerc ir --dump-after inline`);
  return 0;
}
