// Every example through every pass: the verifier holds after each, the interpreter gives
// the same numbers before and after optimisation, and the optimised IR matches its golden.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printModule } from '../src/ir/print.js';
import { verifyModule } from '../src/ir/verify.js';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize, PIPELINE } from '../src/passes/pipeline.js';
import { compileOk, sampleInputs } from './helpers.js';

const dir = join(import.meta.dirname, '..', 'examples');
const files = readdirSync(dir).filter((f) => f.endsWith('.peer'));

describe.each(files)('%s', (file) => {
  const m = compileOk(readFileSync(join(dir, file), 'utf8'), `examples/${file}`);

  it('verifies after checking and after every pass', () => {
    expect(verifyModule(m)).toEqual([]);
    let cur = m;
    for (const pass of PIPELINE) {
      cur = pass.run(cur);
      expect(verifyModule(cur), `after ${pass.name}`).toEqual([]);
    }
    expect(cur.functions.size).toBe(1);
    expect([...cur.functions.values()][0]!.graph.nodes.some((n) => n.op === 'call')).toBe(false);
  });

  it('means the same before and after optimisation', () => {
    const inputs = sampleInputs(m);
    const weights = seededWeights(m, 3);
    for (const training of [false, true]) {
      const a = interpret(m, inputs, weights, { training });
      const b = interpret(optimize(m), inputs, weights, { training });
      expect(b.outputs.map((t) => t.shape)).toEqual(a.outputs.map((t) => t.shape));
      a.outputs.forEach((t, i) => t.data.forEach((v, j) => expect(Math.abs(v - b.outputs[i]!.data[j]!)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(v)))));
      // BatchNorm running statistics are updated whether or not the layers were inlined (index buffers never are).
      const buffers = m.params.filter((p) => p.role === 'buffer' && p.dtype === 'f32').map((p) => p.name).sort();
      expect([...a.bufferUpdates.keys()].sort()).toEqual(training ? buffers : []);
      for (const [name, t] of a.bufferUpdates) expect([...b.bufferUpdates.get(name)!.data]).toEqual([...t.data]);
    }
  });

  it('optimised IR golden', async () => {
    await expect(printModule(optimize(m))).toMatchFileSnapshot(join(import.meta.dirname, 'golden', file.replace('.peer', '.ir')));
  });
});

describe('rewrite rules', () => {
  it('fold constants and identities', () => {
    const m = compileOk('model f(x: [T]) -> [T] { return -(-(x * (2 - 1) + 0 * 3)) / sqrt(1) }');
    const text = printModule(optimize(m));
    expect(text).not.toMatch(/ (mul|add|neg|div)\(/);
    expect(text).toMatch(/return %0\b/);
  });
  it('CSE merges repeated work after inlining', () => {
    const m = compileOk('layer g(x: [T]) -> [T] { return exp(x) }\nmodel f(x: [T]) -> [T] { return g(x) + g(x) }');
    const text = printModule(optimize(m, {}));
    expect(text.match(/= exp\(/g)!.length).toBe(1);
  });
  it('--dump-after stops after the named pass', () => {
    const m = compileOk('layer g(x: [T]) -> [T] { return x * 1 }\nmodel f(x: [T]) -> [T] { return g(x) }');
    expect(printModule(optimize(m, { stopAfter: 'inline' }))).toMatch(/mul\(/);
    expect(printModule(optimize(m, { stopAfter: 'fold-constants' }))).not.toMatch(/mul\(/);
  });
  it('the verifier catches a corrupted graph', () => {
    const m = optimize(compileOk('model f(x: [T, 4]) -> [T] { return sum(x) }'));
    const fn = [...m.functions.values()][0]!;
    const bad = { ...m, functions: new Map([['f', { ...fn, outputs: [{ node: 99, result: 0 }] }]]) };
    expect(verifyModule(bad).join('\n')).toMatch(/output %99#0 does not exist/);
  });
});
