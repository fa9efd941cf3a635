// Expert usage per call site: a pool (one @sparse table) that several layers read is reported as a
// whole and per call, so a layer that stopped using its share is visible; call sites survive
// inlining and every rewrite (rules keep the site of the node they replace).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining } from '../src/autodiff/differentiate.js';
import { optimize } from '../src/passes/pipeline.js';
import { moduleToJSON } from '../src/ir/serialize.js';
import { CompiledTrainer, seededWeights } from '../runtime/api.js';
import { compileOk, runPeerc, sharedPoolProgram } from './helpers.js';

const SHARED = sharedPoolProgram(16, '\ntrain { task = "recall"; steps = 6; batch = 8; lr = 1e-3; optimizer = "adam"; eval_every = 3; eval_batches = 1 }\n');

describe('usage per call site of a shared pool', () => {
  it('every read of the pool carries the line of the call it was inlined from, through the fusions', () => {
    const prog = compileTraining(optimize(compileOk(SHARED, 'shared.peer')), { gradients: true });
    const reads = prog.layout.router.filter((r) => r.param === 'Vals');
    expect(new Set(reads.map((r) => r.site))).toEqual(new Set(['line 18', 'line 19']));
  });

  it('peerc train reports the pool, and each call beside it, with counts that add up', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-sites-'));
    const file = join(tmp, 'shared.peer');
    writeFileSync(file, SHARED);
    const r = runPeerc(['train', file, '--out', join(tmp, 'run'), '--seed', '1']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/experts: Vals used [\d.]+% KL [\d.]+, Vals \(line 18\) used [\d.]+% KL [\d.]+, Vals \(line 19\) used/);
    const rows = readFileSync(join(tmp, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const experts = rows.filter((x) => x.split === 'validation').at(-1).experts as { param: string; usage: number; cap: number }[];
    expect(experts.map((e) => e.param)).toEqual(['Vals', 'Vals (line 18)', 'Vals (line 19)']);
    const [all, a, b] = experts;
    // Each call selects as many rows as the other (B * h * k), so the pool's cap is the sum of the calls'.
    expect(all!.cap).toBeCloseTo(Math.min(1, a!.cap + b!.cap), 10);
    expect(all!.usage).toBeLessThanOrEqual(a!.usage + b!.usage + 1e-12);
    expect(all!.usage).toBeGreaterThanOrEqual(Math.max(a!.usage, b!.usage) - 1e-12);
  });

  it('a table read from one call is reported once, as before', () => {
    const prog = compileTraining(optimize(compileOk(readFileSync(join(import.meta.dirname, '..', 'examples', 'recall.peer'), 'utf8'), 'recall.peer')), { gradients: true });
    expect(new Set(prog.layout.router.map((r) => r.site)).size).toBe(1);
  });

  it('the library trainer (CompiledTrainer, from the serialised IR) reports the pool and each call too', async () => {
    const m = compileOk(SHARED, 'shared.peer');
    const ir = JSON.parse(JSON.stringify(moduleToJSON(m)));
    const trainer = new CompiledTrainer(ir, seededWeights(m.params, 1), { backend: 'plain-js' });
    try {
      const keys = { shape: [8], data: Array.from({ length: 8 }, (_, i) => (i * 7) % 64) };
      const targets = { shape: [8], data: Array.from({ length: 8 }, (_, i) => i % 16) };
      await trainer.step({ keys }, targets);
      const r = await trainer.evaluate({ keys }, targets);
      expect(r.experts.map((e) => e.param)).toEqual(['Vals', 'Vals (line 18)', 'Vals (line 19)']);
      for (const e of r.experts) expect(e.usage).toBeGreaterThan(0);
    } finally {
      trainer.destroy();
    }
  });
});
