// peerc's own CPU backend (wasm-simd) beyond what every backend gets in codegen.test.ts and
// train-kernels.test.ts: the worker pool, 1 and 2 threads, the relaxed and the plain SIMD path,
// a table beyond 2^24 cells, a program that does not fit (PEER0606 before any work), and
// training resumed on it and across backends.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTraining, targetsShape } from '../src/autodiff/differentiate.js';
import { bindInputDims, entryFunction, interpret } from '../src/interp/interpreter.js';
import { uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';
import { seededWeights } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { optimize, type Lowering } from '../src/passes/pipeline.js';
import { unavailableReason } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { WorkerPool, sharedFloat32, tableFloat32 } from '../runtime/pool.js';
import { WasmSimdBackend } from '../runtime/backends/wasm-simd/backend.js';
import { BACKENDS } from '../runtime/backends/info.js';
import { sumFactoredRowsOnHost, sumRowsOnHost, type SparseGrad } from '../runtime/backends/row-sums.js';
import { outerRows } from '../runtime/backends/backend.js';
import { factorRowGradients } from '../src/autodiff/factor-rows.js';
import { DEFAULT_OPTIMIZER, gradientNorm, gradientNormThreaded, learningRate, Optimizer } from '../runtime/train/optim.js';
import { WasmGemm, wasmFeatures } from '../runtime/backends/wasm-simd/gemm.js';
import { retrieveModule, retrieveScratchBytes } from '../codegen/wasm/retrieve.js';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { expertActTask, expertOutTask } from '../codegen/host/experts.js';
import { productRetrieveTask } from '../codegen/host/retrieve.js';
import { product_retrieve } from '../src/ir/ops/fused.js';
import { kernelTask } from '../codegen/host/kernel-task.js';
import { batchnormTrainingTask, columnReduceTask } from '../codegen/host/columns.js';
import { decompose, type KernelPlan } from '../codegen/kernel.js';
import { compileOk, sampleInputs, scaledError, smallExample } from './helpers.js';

const skip = !!unavailableReason('wasm-simd');
const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'peerc.js');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-simd-'));
const peerc = (flags: string[], ...args: string[]) => spawnSync(process.execPath, [...flags, cli, ...args], { cwd: root, encoding: 'utf8', timeout: 600_000 });

const relErr = (ref: Tensor, out: Float32Array) => scaledError(ref.data, out);

describe.skipIf(skip)('the worker pool', () => {
  for (const threads of [1, 2])
    it(`${threads} thread${threads > 1 ? 's' : ''}: every lane is computed once, by some thread`, async () => {
      const pool = new WorkerPool(threads);
      try {
        const out = sharedFloat32(1000);
        const task = { key: 'test:square-plus-one', source: 'function (args, from, to) { const o = args[0]; for (let i = from; i < to; i++) o[i] += i * i + 1; }' };
        await pool.run(task, [out], 1000, { minLanes: 10 });
        expect(Array.from(out)).toEqual(Array.from({ length: 1000 }, (_, i) => i * i + 1));
        const plain = new Float32Array(1000);
        await pool.run(task, [plain], 1000, { minLanes: 10, outputs: [0] });
        expect(plain[999]).toBe(999 * 999 + 1);
      } finally {
        pool.destroy();
      }
    });
  it('a generated kernel task carries its cell coordinates from cell to cell (no divisions) and matches them at any split', () => {
    const shape = [3, 5, 7];
    const plan = { label: 'coords', args: [], earlierStages: 0, source: `${decompose('this.thread.x', shape, 'o')}\nreturn o0 * 100 + o1 * 10 + o2;` } as unknown as KernelPlan;
    const task = kernelTask(plan, 'test:coords');
    expect(task.source).not.toMatch(/Math\.floor/);
    const fn = new Function(`return (${task.source})`)() as (args: unknown[], from: number, to: number) => void;
    const cells = 3 * 5 * 7;
    for (const cut of [0, 1, 6, 7, 34, 35, 36, 104, 105]) {
      const out = new Float32Array(cells);
      fn([out], 0, cut);
      fn([out], cut, cells);
      expect(Array.from(out)).toEqual(Array.from({ length: cells }, (_, x) => Math.floor(x / 35) * 100 + (Math.floor(x / 7) % 5) * 10 + (x % 7)));
    }
  });
  for (const threads of [1, 2])
    it(`column tasks (${threads} thread${threads > 1 ? 's' : ''}): sums over rows and training BatchNorm are the per-column kernels' bits`, async () => {
      const pool = new WorkerPool(threads);
      try {
        const rows = 37, c = 48;
        const x = sharedFloat32(rows * c).map((_, i) => Math.sin(i * 0.37) * 3 + (i % c) * 0.01);
        const g = sharedFloat32(c).map((_, j) => 1 + j / 50), b = sharedFloat32(c).map((_, j) => j / 70 - 0.2);
        // The kernels' arithmetic: float64 sums over rows in row order; statistics stored as float32.
        const sums = new Float32Array(c), means = new Float32Array(c), mean32 = new Float32Array(c), inv32 = new Float32Array(c), bn = new Float32Array(rows * c);
        for (let j = 0; j < c; j++) {
          let acc = 0.0;
          for (let r = 0; r < rows; r++) acc = acc + x[r * c + j]!;
          sums[j] = acc;
          means[j] = acc / rows;
          const mean = acc / rows;
          let sq = 0.0;
          for (let r = 0; r < rows; r++) { const dv = x[r * c + j]! - mean; sq += dv * dv; }
          mean32[j] = mean;
          inv32[j] = 1.0 / Math.sqrt(sq / rows + 1e-5);
        }
        for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) bn[r * c + j] = (x[r * c + j]! - mean32[j]!) * inv32[j]! * g[j]! + b[j]!;
        for (const mean of [false, true]) {
          const out = sharedFloat32(c);
          await pool.run(columnReduceTask(rows, c, mean), [x, out], c, { minLanes: 8 });
          expect([...out]).toEqual([...(mean ? means : sums)]);
        }
        const out = sharedFloat32(rows * c);
        await pool.run(batchnormTrainingTask(rows, c, '0.00001'), [x, g, b, out], c, { minLanes: 8 });
        expect([...out]).toEqual([...bn]);
      } finally {
        pool.destroy();
      }
    });
  it('calls after the first go through the control blocks, not messages; new tasks and arrays between them still arrive', async () => {
    const pool = new WorkerPool(2);
    try {
      const add = { key: 'test:add', source: 'function (args, from, to) { const a = args[0]; for (let i = from; i < to; i++) a[i] += args[1]; }' };
      const a = sharedFloat32(1000);
      // On a loaded machine a worker can pass its idle wait between two calls (that call goes by
      // message): rounds of 50 calls until one has most of them fast, at most five.
      let rounds = 0, bestRound = 0;
      while (rounds < 5 && bestRound <= 40) {
        const fastBefore = pool.calls.fast;
        for (let r = 0; r < 50; r++) await pool.run(add, [a, 1], 1000, { minLanes: 10 });
        bestRound = Math.max(bestRound, pool.calls.fast - fastBefore);
        rounds++;
      }
      expect(bestRound).toBeGreaterThan(40);
      expect([...a].every((v) => v === 50 * rounds)).toBe(true);
      // A task defined and an array sent between calls: the worker is kicked out of its block to read them.
      const b = sharedFloat32(1000);
      const scale = { key: 'test:scale', source: 'function (args, from, to) { const a = args[0], b = args[1]; for (let i = from; i < to; i++) b[i] = a[i] * args[2]; }' };
      for (let r = 0; r < 5; r++) await pool.run(scale, [a, b, r], 1000, { minLanes: 10 });
      expect([...b].every((v) => v === 200 * rounds)).toBe(true);
      // A worker left idle past its wait goes back to its event loop; the next call goes by message and works.
      await new Promise((resolve) => setTimeout(resolve, 400));
      const before = pool.calls.message;
      await pool.run(add, [a, -50 * rounds], 1000, { minLanes: 10 });
      expect(pool.calls.message).toBe(before + 1);
      expect([...a].every((v) => v === 0)).toBe(true);
      const thrower = { key: 'test:throws-fast', source: "function (args, from, to) { if (from > 0 && args[1] > 0) throw new Error('lane ' + from + ' failed fast'); }" };
      await pool.run(thrower, [a, 0], 100, { minLanes: 10 });
      // On a loaded machine a pause past the workers' idle wait sends a call by message: try again until one goes fast.
      let wentFast = false;
      for (let attempt = 0; attempt < 5 && !wentFast; attempt++) {
        const fastBefore = pool.calls.fast;
        await expect(pool.run(thrower, [a, 1], 100, { minLanes: 10 })).rejects.toThrow(/worker task failed: .*lane 50 failed fast/);
        wentFast = pool.calls.fast === fastBefore + 1;
      }
      expect(wentFast).toBe(true);
      await pool.run(add, [a, 2], 1000, { minLanes: 10 });
      expect([...a].every((v) => v === 2)).toBe(true);
    } finally {
      pool.destroy();
    }
  });
  it('a task that throws on a worker rejects the call with its message', async () => {
    const pool = new WorkerPool(2);
    try {
      const task = { key: 'test:throws', source: "function (args, from, to) { if (from > 0) throw new Error('lane ' + from + ' failed'); }" };
      await expect(pool.run(task, [sharedFloat32(4)], 100, { minLanes: 10 })).rejects.toThrow(/worker task failed: .*lane 50 failed/);
    } finally {
      pool.destroy();
    }
  });
});

const PATHS = [{ relaxedSimd: false }, ...(wasmFeatures().relaxedSimd ? [{ relaxedSimd: true }] : [])];
const CONFIGS = [1, 2].flatMap((threads) => PATHS.map((p) => ({ threads, ...p })));

describe.skipIf(skip).each(CONFIGS)('wasm-simd with $threads thread(s), relaxed SIMD $relaxedSimd', (config) => {
  const m = compileOk(smallExample('peer_paper.peer'));
  const weights = seededWeights(m, 4);
  const inputs = sampleInputs(m, 2);
  for (const lowering of ['fused', 'naive'] as Lowering[])
    it(`${lowering} forward == reference`, async () => {
      const ref = interpret(m, inputs, weights).outputs[0]!;
      const ex = new Executor(optimize(m, { lowering }), weights, 'wasm-simd', config);
      try {
        expect(ex.describe()).toBe(`wasm-simd, ${config.threads} thread${config.threads > 1 ? 's' : ''}, ${config.relaxedSimd ? 'relaxed SIMD' : 'plain SIMD128'}`);
        expect(relErr(ref, (await ex.forward(inputs)).outputs[0]!.data)).toBeLessThan(2e-5);
      } finally {
        ex.destroy();
      }
    });
  it('training program == reference (loss, gradients, expert rows)', async () => {
    const prog = compileTraining(m, { gradients: true });
    const tin = new Map(inputs);
    const { shape, classes } = targetsShape(prog.targets!, bindInputDims(entryFunction(m), inputs));
    tin.set(prog.targets!.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.floor(uniformAt(4, i, 0) * classes))));
    const ref = interpret(prog.module, tin, weights, { training: true }).outputs;
    const ex = new Executor(prog.module, weights, 'wasm-simd', { ...config, training: true, paramsAsArguments: true });
    try {
      const got = (await ex.forward(tin)).outputs;
      expect(Math.abs(got[0]!.data[0]! - ref[0]!.data[0]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref[0]!.data[0]!)));
      for (const d of prog.layout.dense) expect(relErr(ref[d.output]!, got[d.output]!.data), d.param).toBeLessThan(2e-3);
      for (const s of prog.layout.sparse) {
        expect(Array.from(got[s.indices]!.data)).toEqual(Array.from(ref[s.indices]!.data));
        expect(relErr(ref[s.rows]!, got[s.rows]!.data), s.param).toBeLessThan(2e-3);
      }
    } finally {
      ex.destroy();
    }
  });
});

describe.skipIf(skip).each([1, 2])('training with fused expert reads on wasm-simd, %i thread(s)', (threads) => {
  const m = compileOk(smallExample('peer_paper.peer'));
  const weights = seededWeights(m, 4);
  const inputs = sampleInputs(m, 2);
  const withTargets = (prog: ReturnType<typeof compileTraining>) => {
    const tin = new Map(inputs);
    const { shape, classes } = targetsShape(prog.targets!, bindInputDims(entryFunction(m), inputs));
    tin.set(prog.targets!.name, new Tensor('index', shape, Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.floor(uniformAt(4, i, 0) * classes))));
    return tin;
  };
  it('means what the gathering program means, builds no gathered expert rows, and runs with the tables placed', async () => {
    const plain = compileTraining(m, { gradients: true }), fused = compileTraining(m, { gradients: true, fuseExpertReads: true });
    const tables = m.params.filter((p) => p.sparse).map((p) => p.name);
    const gathersOf = (prog: typeof fused) => entryFunction(prog.module).graph.nodes.filter((n) => n.op === 'gather' && tables.some((t) => { const src = entryFunction(prog.module).graph.node(n.inputs[0]!.node); return src.op === 'param' && src.attrs.name === t; })).length;
    expect(gathersOf(plain)).toBeGreaterThan(0);
    expect(gathersOf(fused)).toBe(0);
    // The sub-key tables' backward reads their rows in place too (expert_out per token and head), and
    // the two halves of the query's gradient are one concat, not two zero-pads added.
    const subKeyTables = m.params.filter((p) => /^C\d/.test(p.name)).map((p) => p.name);
    const fusedNodes = entryFunction(fused.module).graph.nodes;
    expect(fusedNodes.filter((n) => n.op === 'gather' && subKeyTables.some((t) => { const src = entryFunction(fused.module).graph.node(n.inputs[0]!.node); return src.op === 'param' && src.attrs.name === t; }))).toEqual([]);
    expect(fusedNodes.filter((n) => n.op === 'pad')).toEqual([]);
    expect(fusedNodes.filter((n) => n.op === 'concat').length).toBeGreaterThan(0);
    expect(entryFunction(fused.module).graph.nodes.filter((n) => n.op === 'expert_act' || n.op === 'expert_out').length).toBeGreaterThanOrEqual(3);
    const tin = withTargets(plain);
    // The float64 interpreter: the rewrite changes no value (loss, every gradient, the expert rows).
    const a = interpret(plain.module, tin, weights, { training: true }).outputs, b = interpret(fused.module, tin, weights, { training: true }).outputs;
    expect(Math.abs(a[0]!.data[0]! - b[0]!.data[0]!)).toBeLessThan(1e-12);
    for (const d of plain.layout.dense) expect(scaledError(a[d.output]!.data, Float32Array.from(b[fused.layout.dense.find((x) => x.param === d.param)!.output]!.data)), d.param).toBeLessThan(1e-6);
    for (const [i, sp] of plain.layout.sparse.entries()) expect(scaledError(a[sp.rows]!.data, Float32Array.from(b[fused.layout.sparse[i]!.rows]!.data)), sp.param).toBeLessThan(1e-6);
    // Returned as factors (the trainer's program here), the rows are the same products.
    const factored = factorRowGradients(fused);
    // The expert tables' rows (a vector per token) and the sub-key tables' (a vector per token and head).
    const subKeys = m.params.filter((p) => /^C\d/.test(p.name)).map((p) => p.name);
    expect(subKeys.length).toBeGreaterThan(0);
    expect(factored.layout.sparse.filter((x) => x.factors).map((x) => x.param).sort()).toEqual([...tables, ...subKeys].sort());
    const c = interpret(factored.module, tin, weights, { training: true }).outputs;
    for (const [i, sp] of factored.layout.sparse.entries()) {
      if (!sp.factors) continue;
      const rows = outerRows({ coef: Float32Array.from(c[sp.factors.coef]!.data), vec: Float32Array.from(c[sp.factors.vec]!.data) }, m.params.find((p) => p.name === sp.param)!.shape.at(-1)!);
      expect(scaledError(b[fused.layout.sparse[i]!.rows]!.data, rows), sp.param).toBeLessThan(1e-6);
    }
    expect(entryFunction(factored.module).graph.nodes.length).toBeLessThan(entryFunction(fused.module).graph.nodes.length);
    // wasm-simd with the tables moved into table memories: the SIMD row kernels read them, no note says otherwise.
    const w = new Map([...m.params].map((p) => [p.name, Float32Array.from(weights.get(p.name)!.data)]));
    const ex = new Executor(fused.module, w, 'wasm-simd', { threads, training: true, paramsAsArguments: true });
    try {
      expect([...ex.placeTables().keys()].sort()).toEqual([...tables, ...subKeys].sort());
      const got = (await ex.forward(tin)).outputs;
      expect(Math.abs(got[0]!.data[0]! - a[0]!.data[0]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(a[0]!.data[0]!)));
      for (const d of fused.layout.dense) expect(relErr(a[plain.layout.dense.find((x) => x.param === d.param)!.output]!, got[d.output]!.data), d.param).toBeLessThan(2e-3);
      expect(ex.notes().filter((n) => n.includes('JavaScript task'))).toEqual([]);
    } finally {
      ex.destroy();
    }
  });
  it('row sums in the table memory equal the host loops', async () => {
    const rows = 300, d = 8, slots = 700;
    const backend = new WasmSimdBackend(BACKENDS['wasm-simd'], { threads });
    try {
      const table = tableFloat32(rows * d);
      const placed = backend.placeTable('T', table, d);
      expect(placed).toBe(table); // adopted: the table's own memory, no copy
      const ids = Float32Array.from({ length: slots }, (_, i) => Math.floor(uniformAt(9, i, 0) * rows));
      const grads = Float32Array.from({ length: slots * d }, (_, i) => Math.cos(i * 0.7));
      const host = sumRowsOnHost(ids, grads, d);
      const whole = await backend.sumRows(ids, grads, d, 'T');
      expect([...whole.rows]).toEqual([...host.rows]);
      expect([...whole.values!]).toEqual([...host.values!]);
      expect(whole.sumSquares!).toBeCloseTo(host.values!.reduce((a, x) => a + x * x, 0), 6);
      // Rows given as factors (row q = coef[q] * vec[q / perToken]): the same sums, none of the rows built.
      const coef = Float32Array.from({ length: slots }, (_, i) => Math.sin(i * 1.3)), vec = Float32Array.from({ length: (slots / 7) * d }, (_, i) => Math.cos(i * 0.3));
      const factoredHost = sumRowsOnHost(ids, outerRows({ coef, vec }, d), d);
      const factored = await backend.sumFactoredRows(ids, { coef, vec }, d, 'T')!;
      expect([...factored.values!]).toEqual([...factoredHost.values!]);
    } finally {
      backend.destroy();
    }
  });
  for (const d of [8, 64])
    it(`factored rows scattered into a placed table's dense gradient by columns equal the sums by row bit for bit (rows of ${d})`, async () => {
      const rows = 50, tokens = 30, perToken = 9, slots = tokens * perToken;
      const backend = new WasmSimdBackend(BACKENDS['wasm-simd'], { threads });
      try {
        backend.placeTable('K', tableFloat32(rows * d), d);
        const ids = Float32Array.from({ length: slots }, (_, i) => Math.floor(uniformAt(12, i, 0) ** 3 * rows));
        const f = { coef: Float32Array.from({ length: slots }, (_, i) => Math.sin(i * 1.7)), vec: Float32Array.from({ length: tokens * d }, (_, i) => Math.cos(i * 0.37)) };
        const full = new Float32Array(rows * d);
        expect(await backend.addFactoredRows(full, ids, f, d, 'K')).toBe('factored row gradients into dense tables (scatter)');
        const want = new Float32Array(rows * d), host = sumFactoredRowsOnHost(ids, f, d);
        host.rows.forEach((r, i) => want.set(host.values!.subarray(i * d, (i + 1) * d), r * d));
        expect(Buffer.from(full.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        expect(full.some((x) => x !== 0)).toBe(true);
      } finally {
        backend.destroy();
      }
    });
  const updates = [
    { name: 'AdamW', config: { kind: 'adamw' as const }, optim: undefined },
    { name: 'Adam', config: { kind: 'adam' as const }, optim: undefined },
    { name: 'SGD with momentum and decay', config: { kind: 'sgd' as const, momentum: 0.9, weightDecay: 0.05 }, optim: undefined },
    { name: 'SGD without momentum', config: { kind: 'sgd' as const, momentum: 0 }, optim: undefined },
    { name: 'Adagrad (@optim)', config: { kind: 'adam' as const }, optim: { kind: 'adagrad' as const, weightDecay: 0.01 } },
  ];
  for (const u of updates)
    it(`${u.name} on a table's touched rows in its table memory equals the host loop bit for bit, state included`, async () => {
      const rows = 300, d = 8, slots = 700;
      const backend = new WasmSimdBackend(BACKENDS['wasm-simd'], { threads });
      try {
        const table = tableFloat32(rows * d);
        table.forEach((_, i) => (table[i] = Math.sin(i)));
        backend.placeTable('T', table, d);
        const info = { name: 'T', role: 'param', shape: [rows, d], sparse: true, weightDecay: true, lrMultiplier: 1, optim: u.optim } as never;
        const config = { ...DEFAULT_OPTIMIZER, clip: 0.5, ...u.config };
        const hostOpt = new Optimizer(config, [info]);
        const tableOpt = new Optimizer(config, [info], { state: (name, count) => backend.tableState(name, count) as Float32Array[] });
        const w = Float32Array.from(table);
        const sumsOfStep = (step: number) => {
          const ids = Float32Array.from({ length: slots }, (_, i) => Math.floor(uniformAt(9 + step, i, 0) * rows));
          return { ids, grads: Float32Array.from({ length: slots * d }, (_, i) => Math.cos(i * 0.7 + step)) };
        };
        let kernelCalls = 0;
        const onTable = async (name: string, sparse: SparseGrad, update: Parameters<WasmSimdBackend['updateRows']>[2]) => {
          const r = await backend.updateRows(name, sparse, update);
          if (r.done) kernelCalls++;
          return r;
        };
        for (let step = 0; step < 3; step++) {
          const { ids, grads } = sumsOfStep(step);
          const host = sumRowsOnHost(ids, grads, d);
          hostOpt.step(new Map([['T', w]]), { dense: new Map(), sparse: new Map([['T', host]]) }, 2);
          const summed = await backend.sumRows(ids, grads, d, 'T');
          const r = await tableOpt.stepThreaded(undefined, new Map([['T', table]]), { dense: new Map(), sparse: new Map([['T', summed]]) }, 2, onTable);
          expect(r.finite).toBe(true);
          expect(r.clipped).toBe(true);
        }
        expect(kernelCalls).toBe(3);
        const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
        expect(bytes(table).equals(bytes(w)), 'weights').toBe(true);
        for (const state of ['m', 'v'] as const) {
          expect(tableOpt[state].has('T'), state).toBe(hostOpt[state].has('T'));
          if (hostOpt[state].has('T')) expect(bytes(tableOpt[state].get('T')!).equals(bytes(hostOpt[state].get('T')!)), state).toBe(true);
        }
        // A gradient that makes a weight infinite is reported.
        const { ids, grads } = sumsOfStep(3);
        const summed = await backend.sumRows(ids, grads, d, 'T');
        summed.values![3] = Infinity;
        expect((await tableOpt.stepThreaded(undefined, new Map([['T', table]]), { dense: new Map(), sparse: new Map([['T', summed]]) }, 1, onTable)).finite).toBe(false);
      } finally {
        backend.destroy();
      }
    });
});

describe('dense Adam on the pool', () => {
  it('the gradient norm summed by chunks on 2 threads is the one-thread value exactly', async () => {
    const big = sharedFloat32(5 * 65536 + 17), small = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    big.forEach((_, i) => (big[i] = Math.cos(i * 0.01) * (1 + (i % 7))));
    const g = { dense: new Map([['A', big], ['B', small]]), sparse: new Map() };
    const pool = new WorkerPool(2);
    try {
      const threaded = await gradientNormThreaded(g, pool);
      expect(threaded).toBe(gradientNorm(g));
      expect(threaded).toBeCloseTo(Math.sqrt([...big, ...small].reduce((a, x) => a + x * x, 0)), 6);
    } finally {
      pool.destroy();
    }
  });

  it('large dense parameters updated on 2 threads equal the main-thread loop bit for bit, clipped, with a non-finite weight reported', async () => {
    const n = 70_001; // past the pool's threshold (2^16), odd so the halves differ
    const info = { name: 'W', role: 'param', shape: [n], sparse: false, weightDecay: true, lrMultiplier: 1 } as never;
    const config = { ...DEFAULT_OPTIMIZER, kind: 'adamw' as const, clip: 1 };
    const start = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const onMain = new Optimizer(config, [info]), onPool = new Optimizer(config, [info]);
    const wMain = Float32Array.from(start), wPool = sharedFloat32(n);
    wPool.set(start);
    const pool = new WorkerPool(2);
    try {
      for (let step = 0; step < 3; step++) {
        const g = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.37 + step));
        const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
        onMain.step(new Map([['W', wMain]]), { dense: new Map([['W', g]]), sparse: new Map() }, norm);
        const r = await onPool.stepThreaded(pool, new Map([['W', wPool]]), { dense: new Map([['W', g]]), sparse: new Map() }, norm);
        expect(r.finite).toBe(true);
        expect(r.clipped).toBe(true);
      }
      const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      expect(bytes(wPool).equals(bytes(wMain))).toBe(true);
      expect(bytes(onPool.m.get('W')!).equals(bytes(onMain.m.get('W')!))).toBe(true);
      expect(bytes(onPool.v.get('W')!).equals(bytes(onMain.v.get('W')!))).toBe(true);
      const bad = new Float32Array(n);
      bad[n - 1] = Infinity;
      expect((await onPool.stepThreaded(pool, new Map([['W', wPool]]), { dense: new Map([['W', bad]]), sparse: new Map() }, 1)).finite).toBe(false);
    } finally {
      pool.destroy();
    }
  });
});

describe.skipIf(skip)('wasm-simd limits', () => {
  it('an expert table beyond 2^24 cells (2^17 x 256) is read whole', async () => {
    const src = smallExample('peer_paper.peer').replace('const N = 32^2', 'const N = 362^2').replace(/const k = \d+/, 'const k = 4');
    const m = compileOk(src);
    const u = m.params.find((p) => p.name === 'U')!;
    expect(u.shape[0]! * u.shape[1]!).toBeGreaterThan(2 ** 24);
    const weights = seededWeights(m, 1);
    const inputs = sampleInputs(m, 3);
    const ref = interpret(m, inputs, weights).outputs[0]!;
    const ex = new Executor(optimize(m), weights, 'wasm-simd');
    try {
      expect(relErr(ref, (await ex.forward(inputs)).outputs[0]!.data)).toBeLessThan(2e-5);
    } finally {
      ex.destroy();
    }
  }, 600_000);
  it('products past wasm32\'s 4 GiB are PEER0606 at the op, before any kernel runs', () => {
    const file = join(tmp, 'outer.peer');
    writeFileSync(file, 'const n = 32768\nmodel outer(a: [T, n], b: [T, n]) -> [T, n, n] {\n  return einsum("ti,tj->tij", a, b)\n}\n');
    const inputs = join(tmp, 'outer-in.safetensors');
    expect(peerc([], 'init', file, '--inputs', '--tokens', '1', '--seed', '1', '--out', inputs).status).toBe(0);
    const r = peerc([], 'run', file, '--seed', '1', '--inputs', inputs, '--out', join(tmp, 'o.safetensors'), '--backend', 'wasm-simd');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/outer\.peer:3:\d+: error PEER0606: this program does not fit backend wasm-simd: 1 x \[32768, 1\] x \[1, 32768\] needs \d+ bytes.*passes wasm32's limit/);
  });
});

describe.skipIf(skip)('peerc run with relaxed SIMD switched on in the engine (by node\'s flag, or by the CLI itself)', () => {
  it('agrees with the reference interpreter and says which path ran', () => {
    const file = join(tmp, 'paper.peer');
    writeFileSync(file, smallExample('peer_paper.peer'));
    const inputs = join(tmp, 'paper-in.safetensors');
    expect(peerc([], 'init', file, '--inputs', '--tokens', '6', '--seed', '2', '--out', inputs).status).toBe(0);
    const ref = peerc([], 'run', file, '--seed', '3', '--inputs', inputs, '--out', join(tmp, 'ref.safetensors'));
    expect(ref.status, ref.stderr).toBe(0);
    const runs = [
      { flags: ['--experimental-wasm-relaxed-simd'], extra: [], env: {}, path: 'relaxed SIMD' },
      { flags: [], extra: [], env: {}, path: 'relaxed SIMD' }, // the CLI sets the engine flag itself
      { flags: [], extra: ['--plain-simd'], env: {}, path: 'plain SIMD128' },
      { flags: [], extra: [], env: { PEERC_RELAXED_SIMD: '0' }, path: 'plain SIMD128' },
    ];
    for (const { flags, extra, env, path } of runs) {
      const args = [...flags, cli, 'run', file, '--seed', '3', '--inputs', inputs, '--out', join(tmp, 'simd.safetensors'), '--backend', 'wasm-simd', '--threads', '2', ...extra];
      const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`backend wasm-simd, 2 threads, ${path}`);
      const a = readCheckpointLike(join(tmp, 'ref.safetensors')), b = readCheckpointLike(join(tmp, 'simd.safetensors'));
      let err = 0, scale = 1;
      Array.from(a).forEach((v, i) => {
        err = Math.max(err, Math.abs(v - b[i]!));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale, path).toBeLessThan(2e-5);
    }
  });
});

/** The first tensor of a safetensors file as numbers. */
function readCheckpointLike(path: string): ArrayLike<number> {
  const { tensors } = readSafetensors(readFileSync(path), path);
  return [...tensors.values()][0]!.data;
}

describe.skipIf(skip)('training resumed on wasm-simd', () => {
  const recall = join(tmp, 'recall.peer');
  writeFileSync(recall, smallExample('recall.peer').replace('const K = 4096', 'const K = 256'));
  const common = ['--steps', '10', '--seed', '3', '--eval-every', '5'];
  it('stays bit-identical to an uninterrupted run', () => {
    const whole = join(tmp, 'whole'), parts = join(tmp, 'parts');
    expect(peerc([], 'train', recall, ...common, '--backend', 'wasm-simd', '--out', whole).status).toBe(0);
    expect(peerc([], 'train', recall, ...common, '--backend', 'wasm-simd', '--out', parts, '--stop-at', '4').status).toBe(0);
    const r = peerc([], 'train', recall, '--resume', '--out', parts, '--backend', 'wasm-simd');
    expect(r.status, r.stderr).toBe(0);
    const a = readCheckpoint(join(whole, 'checkpoint.safetensors')), b = readCheckpoint(join(parts, 'checkpoint.safetensors'));
    for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
  }, 600_000);
  it('a run started on cpu resumes on wasm-simd within float32 tolerance of one that stayed on cpu', () => {
    const cpu = join(tmp, 'cpu-whole'), moved = join(tmp, 'moved');
    expect(peerc([], 'train', recall, ...common, '--backend', 'cpu', '--out', cpu).status).toBe(0);
    expect(peerc([], 'train', recall, ...common, '--backend', 'cpu', '--out', moved, '--stop-at', '4').status).toBe(0);
    const r = peerc([], 'train', recall, '--resume', '--out', moved, '--backend', 'wasm-simd');
    expect(r.status, r.stderr).toBe(0);
    const a = readCheckpoint(join(cpu, 'checkpoint.safetensors')), b = readCheckpoint(join(moved, 'checkpoint.safetensors'));
    for (const [name, t] of a.tensors) {
      if (!name.startsWith('param.')) continue;
      const other = b.tensors.get(name)!.data;
      let err = 0, scale = 1e-3;
      t.data.forEach((v, i) => {
        err = Math.max(err, Math.abs(v - other[i]!));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale, name).toBeLessThan(1e-3);
    }
  }, 600_000);
});

describe('generated expert tasks', () => {
  const d = 5, rows = 9, perToken = 6, T = 3; // 6 slots: one group of four and a tail of two per token
  const U = Float32Array.from({ length: rows * d }, (_, i) => Math.sin(i)), x = Float32Array.from({ length: T * d }, (_, i) => Math.cos(i));
  const idx = Float32Array.from({ length: T * perToken }, (_, i) => (i * 5) % rows), w = Float32Array.from({ length: T * perToken }, (_, i) => 0.1 * i);
  const run = (task: { source: string }, args: (Float32Array | number)[]) => (new Function(`return (${task.source})`)() as (a: unknown[], f: number, t: number) => void)(args, 0, T);
  it('expert_act and expert_out agree with plain loops, groups of four and tails alike', () => {
    const act = new Float32Array(T * perToken), out = new Float32Array(T * d);
    run(expertActTask(d, rows, perToken, 'relu'), [x, U, idx, w, act]);
    run(expertOutTask(d, rows, perToken, false), [w, U, idx, out]);
    for (let i = 0; i < T * perToken; i++) {
      const t = Math.floor(i / perToken);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += U[idx[i]! * d + j]! * x[t * d + j]!;
      expect(act[i]).toBeCloseTo(w[i]! * Math.max(dot, 0), 5);
    }
    for (let t = 0; t < T; t++)
      for (let j = 0; j < d; j++) {
        let y = 0;
        for (let s = 0; s < perToken; s++) y += w[t * perToken + s]! * U[idx[t * perToken + s]! * d + j]!;
        expect(out[t * d + j]).toBeCloseTo(y, 5);
      }
  });
  it('a row index made NaN upstream stops with NonFiniteIndex, in a group or a tail', () => {
    for (const at of [1, 5]) {
      const bad = Float32Array.from(idx);
      bad[at] = NaN;
      expect(() => run(expertOutTask(d, rows, perToken, false), [w, U, bad, new Float32Array(T * d)])).toThrow(/NonFiniteIndex: expert_out: index NaN/);
      expect(() => run(expertActTask(d, rows, perToken, 'none'), [x, U, bad, w, new Float32Array(T * perToken)])).toThrow(/NonFiniteIndex: expert_act: index NaN/);
    }
  });
});

describe.skipIf(skip)('generated retrieval kernel', () => {
  // Scores drawn from few values (many ties), with NaN and infinities in some lanes: the kernel's
  // one-compare filter must keep exactly the reference's choices (ties to the lower index, NaN last).
  it.each([1, 2])('selects what the reference selects, ties, NaN and infinities included (%i thread(s))', async (threads) => {
    const pool = new WorkerPool(threads);
    const gemm = new WasmGemm({ pool });
    // n = 200 has 50 vectors (16 groups, two left over) and a tail past the last 16; n = 1024,
    // subk = 16 is the benchmark's layer; n = 64 has one round of groups; n = 300, subk = 40
    // keeps 10 per lane; n = 20, subk = 19 has fewer groups than that (no floor).
    for (const [n, subk, lanes] of [[40, 6, 24], [37, 5, 9], [200, 6, 12], [1024, 16, 6], [64, 16, 5], [300, 40, 3], [20, 19, 4]] as const)
      for (const [k, gate] of [[8, 'softmax'], [6, 'none'], [subk * subk, 'relu'], [1, 'sigmoid']] as const) {
        const draw = (salt: number) => Float64Array.from({ length: lanes * n }, (_, i) => {
          const u = uniformAt(salt, i, 0);
          // NaN in even lanes, infinities in every third: other lanes have a floor to find. Lane 4
          // is NaN but for a few numbers (fewer than subk in most rows): its group maxima skip NaN,
          // and the list must be filled with NaN after the numbers.
          const lane = Math.floor(i / n);
          if (lane === 4 && i % 41 !== 3) return NaN;
          if (i % 97 === 5 && lane % 2 === 0) return NaN;
          if (i % 31 === 7 && lane % 3 === 0) return salt === 1 ? Infinity : -Infinity;
          return Math.floor(u * 7) / 4 - 0.5;
        });
        const s1 = new Tensor('f32', [lanes, n], draw(1)), s2 = new Tensor('f32', [lanes, n], draw(2));
        const [w, idx] = product_retrieve.evaluate!([s1, s2], { k, subk, gate }, { training: false, dimValue: () => 0, updateBuffer: () => undefined, inputParamNames: [] });
        const kernel = gemm.instantiate(`retrieve:${n}:${k}:${subk}`, (limits) => retrieveModule(n, k, subk, limits));
        const [p1, p2, scratch, cand, ids] = [4 * lanes * n, 4 * lanes * n, lanes * retrieveScratchBytes(k, subk), 8 * lanes * k, 4 * lanes * k].map((b) => gemm.reserve(b));
        gemm.view(Float32Array, p1!, lanes * n)().set(s1.data);
        gemm.view(Float32Array, p2!, lanes * n)().set(s2.data);
        const wOut = sharedFloat32(lanes * k);
        await pool.run(productRetrieveTask(kernel, n, k, subk, gate), [p1!, p2!, scratch!, cand!, ids!, gemm.view(Float64Array, cand!, lanes * k)(), wOut], lanes, { outputs: [5, 6] });
        expect([...gemm.view(Float32Array, ids!, lanes * k)()], `n=${n} k=${k} ${gate}`).toEqual([...idx!.data]);
        wOut.forEach((v, i) => (Number.isNaN(w!.data[i]!) ? expect(v, `n=${n} k=${k} ${gate} ${i}`).toBeNaN() : expect(v, `n=${n} k=${k} ${gate} ${i}`).toBeCloseTo(w!.data[i]!, 5)));
      }
  });
});
