/// <reference types="@webgpu/types" />
// Training on peerc's webgpu with the parameters resident on the GPU: the trainer's updates reach
// the GPU's copies as reports (touched rows scattered by a kernel, the rest written whole), so
// each step moves a few rows of a table, not the table; the losses are wasm-simd's step for step.
// Runs where Dawn finds a Vulkan driver (a GPU's, or Mesa's lavapipe); says so where it skips.
import { describe, expect, it } from 'vitest';
import { CompiledTrainer, seededWeights } from '../runtime/api.js';
import { gpuDevice } from '../runtime/backends/webgpu/device.js';
import { changed, isDeviceNewer, Residents, type ResidentLayout } from '../runtime/backends/webgpu/residents.js';
import { TableUpdates } from '../runtime/backends/webgpu/table-updates.js';
import { sumFactoredRowsOnHost } from '../runtime/backends/row-sums.js';
import type { RowsUpdate } from '../runtime/backends/backend.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { DEFAULT_OPTIMIZER, type OptimizerKind } from '../runtime/train/optim.js';
import { Trainer } from '../runtime/train/trainer.js';
import { moved } from '../runtime/backends/webgpu/transfer.js';
import { moduleToJSON } from '../src/ir/serialize.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileOk, runPeerc, sharedPoolProgram } from './helpers.js';

const webgpuMissing = await gpuDevice().then(() => null, (e: Error) => e.message);
if (webgpuMissing) console.log(`webgpu training in Node skipped: ${webgpuMissing}`);

/** Two product-key memories reading one pool of 64^2 rows (256 KiB): a step touches at most 128 of them. */
const SHARED = sharedPoolProgram(64);

const B = 8;
const batch = (step: number) => ({
  keys: { shape: [B], data: Array.from({ length: B }, (_, i) => (i * 7 + step * 13) % 64) },
  targets: { shape: [B], data: Array.from({ length: B }, (_, i) => (i + step * 3) % 16) },
});

/** A buffer's floats, read back. */
async function readBack(device: GPUDevice, buf: GPUBuffer, floats: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: floats * 4, usage: 0x0001 /* MAP_READ */ | 0x0008 /* COPY_DST */ });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, floats * 4);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(1);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/** One product-key memory of 32^2 rows of its own: its gradient rows come as factors, summed on the GPU. */
const SINGLE = `const K = 64
const Vocab = 16
const d = 16
const N = 32^2
const h = 2
const k = 4
const dk = 16
param E: [K, d] = normal(0, 1)
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
param C1: [h, sqrt(N), dk/2] = normal(0, 1/sqrt(dk/2))
param C2: [h, sqrt(N), dk/2] = normal(0, 1/sqrt(dk/2))
param Vals: [N, d] = normal(0, 0.02) @sparse
param Wout: [d, Vocab] = normal(0, 1/sqrt(d))
model recall(keys: index[B]) -> [B, Vocab] {
  x = embedding(E, keys)
  x = x + pkm(x, Wq, C1, C2, Vals, k)
  return matmul(x, Wout)
}
`;

/** Largest |a - b| over the scale of b. */
function relDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0, scale = 1e-6;
  for (let i = 0; i < b.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / scale;
}

describe.skipIf(!!webgpuMissing)('training on webgpu with the parameters resident on the GPU', () => {
  // Adagrad only as a table's own @optim (the run's optimizer is AdamW then).
  for (const [kind, extra, optim] of [['adamw', {}, ''], ['sgd', { momentum: 0.9 }, ''], ['adamw', {}, ' @optim(adagrad, lr=0.05)']] as [OptimizerKind, object, string][])
    it(`updates a trained table on the GPU (${optim || kind}): its gradient rows summed there, the table and its state newer there until synced, as wasm-simd's`, async () => {
      const m = compileOk(SINGLE.replace('@sparse', `@sparse${optim}`), 'single.peer');
      const ir = JSON.parse(JSON.stringify(moduleToJSON(m)));
      const optimizer = { kind, lr: 1e-2, clip: 0.5, ...extra };
      const gpu = new CompiledTrainer(ir, seededWeights(m.params, 2), { backend: 'webgpu', optimizer });
      const cpu = new CompiledTrainer(ir, seededWeights(m.params, 2), { backend: 'wasm-simd', threads: 1, optimizer });
      try {
        const ups: number[] = [];
        for (let step = 0; step < 5; step++) {
          const { keys, targets } = batch(step);
          const before = moved.params;
          const a = await gpu.step({ keys }, targets);
          const b = await cpu.step({ keys }, targets);
          expect(Math.abs(a.loss - b.loss), `step ${step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
          expect(Math.abs(a.gradNorm - b.gradNorm) / b.gradNorm, `gradient norm at step ${step}`).toBeLessThan(1e-4);
          ups.push(moved.params - before);
        }
        // After the first step, nothing of Vals goes up (the touched rows differ by step): only the
        // dense parameters, written whole, the same bytes at every step.
        expect(new Set(ups.slice(1)).size, `bytes into parameters per step: ${ups.join(', ')}`).toBe(1);
        expect(ups[1]!).toBeLessThan(32 * 1024);
        const vals = gpu.weights.get('Vals')!;
        // The host array lags the GPU until synced: the updates happened there.
        expect(isDeviceNewer(vals)).toBe(true);
        expect(relDiff(vals, cpu.weights.get('Vals')!)).toBeGreaterThan(1e-3);
        await gpu.syncWeights();
        expect(isDeviceNewer(vals)).toBe(false);
        expect(relDiff(vals, cpu.weights.get('Vals')!)).toBeLessThan(1e-4);
        // The checkpoint (synced first) holds the GPU's table and optimizer state.
        const [ga, cb] = [readSafetensors(await gpu.checkpoint(), 'gpu').tensors, readSafetensors(await cpu.checkpoint(), 'cpu').tensors];
        expect([...ga.keys()].sort()).toEqual([...cb.keys()].sort());
        for (const [name, t] of cb) expect(relDiff(Float32Array.from(ga.get(name)!.data), Float32Array.from(t.data)), name).toBeLessThan(1e-3);
        expect(gpu.backendDetail).toMatch(/webgpu/);
      } finally {
        await gpu.destroy();
        await cpu.destroy();
      }
    }, 600_000);

  it('trains a table bound as chunks of rows (one binding smaller than the table) as wasm-simd does', async () => {
    const m = compileOk(SINGLE, 'single.peer');
    const optimizer = { ...DEFAULT_OPTIMIZER, lr: 1e-2 };
    // Vals is 64 KiB: four buffers of 256 rows, and its moments beside them in the same rows.
    const gpu = new Trainer(m, seededWeights(m.params, 4), { backend: 'webgpu', optimizer, maxBindingBytes: 16 * 1024 });
    const cpu = new Trainer(m, seededWeights(m.params, 4), { backend: 'wasm-simd', threads: 1, optimizer });
    try {
      for (let step = 0; step < 4; step++) {
        const { keys, targets } = batch(step);
        const b = { inputs: new Map([['keys', { shape: [B], data: Float32Array.from(keys.data) }]]), targets: { shape: [B], data: Float32Array.from(targets.data) }, tokens: B };
        const [x, y] = [await gpu.step(b), await cpu.step(b)];
        expect(Math.abs(x.loss - y.loss), `step ${step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(y.loss)));
      }
      const notes = gpu.notes().join('\n');
      expect(notes).toMatch(/Vals in 4 buffers/);
      expect(notes).not.toMatch(/runs on the host|summed on the host/);
      expect(isDeviceNewer(gpu.weights.get('Vals')!)).toBe(true);
      await gpu.syncWeights();
      expect(relDiff(gpu.weights.get('Vals')!, cpu.weights.get('Vals')!)).toBeLessThan(1e-4);
      for (const state of ['m', 'v'] as const) expect(relDiff(gpu.optimizer[state].get('Vals')!, cpu.optimizer[state].get('Vals')!), state).toBeLessThan(1e-3);
    } finally {
      gpu.destroy();
      cpu.destroy();
    }
  }, 300_000);

  it('a model of the trained weights reads what the GPU updated: on webgpu from its buffers, on another backend after a sync', async () => {
    const m = compileOk(SINGLE, 'single.peer');
    const ir = JSON.parse(JSON.stringify(moduleToJSON(m)));
    const gpu = new CompiledTrainer(ir, seededWeights(m.params, 3), { backend: 'webgpu', optimizer: { lr: 1e-2 } });
    try {
      for (let step = 0; step < 3; step++) {
        const { keys, targets } = batch(step);
        await gpu.step({ keys }, targets);
      }
      const vals = gpu.weights.get('Vals')!;
      const { keys } = batch(7);
      const onGpu = gpu.model();
      const a = (await onGpu.forward({ keys })).outputs[0]!.data;
      // The webgpu model read the GPU's buffers: nothing came back.
      expect(isDeviceNewer(vals)).toBe(true);
      const onCpu = gpu.model({ backend: 'wasm-simd' });
      const b = (await onCpu.forward({ keys })).outputs[0]!.data;
      expect(isDeviceNewer(vals)).toBe(false);
      expect(relDiff(Float32Array.from(a), Float32Array.from(b))).toBeLessThan(1e-4);
      onGpu.destroy();
      onCpu.destroy();
    } finally {
      await gpu.destroy();
    }
  }, 300_000);

  it('sums factored rows and updates rows across chunks of a table as the host loops do, and reports a non-finite weight', async () => {
    const { device } = await gpuDevice();
    const rows = 50, width = 8, slots = 40, T = 10;
    const table = Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i));
    const residents = new Residents();
    const make = (floats: number) => device.createBuffer({ size: floats * 4, usage: 0x0080 | 0x0008 | 0x0004 });
    const shape = [rows, width];
    // The table bound as two chunks of whole rows (as the expert kernels bind one larger than a binding).
    for (const chunk of [{ first: 0, rows: 30, width }, { first: 30, rows: 20, width }]) residents.buffer(device, table, { shape, chunk }, make);
    const updates = new TableUpdates(residents, () => {});
    try {
      const ids = Float32Array.from({ length: slots }, (_, i) => (i * 17) % rows);
      const f = { coef: Float32Array.from({ length: slots }, (_, i) => Math.cos(i)), vec: Float32Array.from({ length: T * width }, (_, i) => Math.sin(i * 0.3)) };
      const host = sumFactoredRowsOnHost(ids, f, width);
      const sums = (await updates.sumFactored(device, ids, f, width, 'T'))!;
      expect([...sums.rows]).toEqual([...host.rows]);
      expect(sums.values).toBeUndefined();
      let squares = 0;
      for (const x of host.values!) squares += x * x;
      expect(Math.abs(sums.sumSquares! - squares) / squares).toBeLessThan(1e-5);
      const m = new Float32Array(rows * width), v = new Float32Array(rows * width);
      const u: RowsUpdate = { kind: 'adam', m, v, scale: 0.5, b1: 0.9, b2: 0.999, stepSize: 0.01, epsHat: 1e-8, keep: 0.99 };
      const want = table.slice(), wm = m.slice(), wv = v.slice();
      host.rows.forEach((row, i) => {
        for (let c = 0; c < width; c++) {
          const j = row * width + c, d = host.values![i * width + c]! * u.scale;
          wm[j] = u.b1 * wm[j]! + (1 - u.b1) * d;
          wv[j] = u.b2 * wv[j]! + (1 - u.b2) * d * d;
          want[j] = want[j]! * u.keep - (u.stepSize * wm[j]!) / (Math.sqrt(wv[j]!) + u.epsHat);
        }
      });
      const r = await updates.update(device, 'T', table, sums, u);
      expect(r).toEqual({ done: true, finite: true, onDevice: true });
      expect(isDeviceNewer(table) && isDeviceNewer(m) && isDeviceNewer(v)).toBe(true);
      const untouched = table.slice();
      await residents.syncToHost(device);
      // f32 against float64 host arithmetic.
      expect(relDiff(table, want)).toBeLessThan(1e-5);
      expect(relDiff(m, wm)).toBeLessThan(1e-5);
      expect(relDiff(v, wv)).toBeLessThan(1e-4);
      // Rows no slot touched are as they were.
      for (let row = 0; row < rows; row++) if (!host.rows.includes(row)) expect(table.subarray(row * width, row * width + width)).toEqual(untouched.subarray(row * width, row * width + width));
      // Host sums (rows given whole) are uploaded; an infinite gradient makes a weight infinite, reported.
      const bad = { rows: host.rows, rowSize: width, values: host.values!.slice() };
      bad.values[5] = Infinity;
      expect((await updates.update(device, 'T', table, bad, { kind: 'sgd', scale: 1, momentum: 0, lr: 0.1, decay: 0 })).finite).toBe(false);
    } finally {
      updates.destroy();
      residents.release();
    }
  }, 300_000);

  it('matches wasm-simd step for step, evaluation included, and moves rows, not the table, per step', async () => {
    const m = compileOk(SHARED, 'shared.peer');
    const ir = JSON.parse(JSON.stringify(moduleToJSON(m)));
    const gpu = new CompiledTrainer(ir, seededWeights(m.params, 1), { backend: 'webgpu', optimizer: { lr: 1e-2 } });
    const cpu = new CompiledTrainer(ir, seededWeights(m.params, 1), { backend: 'wasm-simd', threads: 1, optimizer: { lr: 1e-2 } });
    const tableBytes = 64 * 64 * 16 * 4;
    try {
      const ups: number[] = [];
      for (let step = 0; step < 6; step++) {
        const { keys, targets } = batch(step);
        const before = moved.params;
        const a = await gpu.step({ keys }, targets);
        ups.push(moved.params - before);
        const b = await cpu.step({ keys }, targets);
        expect(Math.abs(a.loss - b.loss), `step ${step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
        if (step % 2 === 1) {
          // The evaluation program reads the same GPU buffers (shared, brought up to date once).
          const ea = await gpu.evaluate({ keys }, targets);
          const eb = await cpu.evaluate({ keys }, targets);
          expect(Math.abs(ea.loss - eb.loss), `evaluation after step ${step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(eb.loss)));
        }
      }
      // The losses moved: the GPU read updated weights, not the first step's.
      // After the first step (which uploads every parameter once) a step writes into the
      // parameters' copies the touched rows and the small dense parameters: well under the pool.
      console.log(`webgpu training: bytes into parameters' copies per step ${ups.join(', ')} (pool ${tableBytes})`);
      expect(ups[0]!).toBeGreaterThan(tableBytes);
      for (const up of ups.slice(1)) expect(up).toBeLessThan(tableBytes / 4);
      // Writing the weights while the GPU holds newer values of them is refused (they would mix with stale rows) ...
      expect(() => gpu.weightsChanged()).toThrow(/PEER0712: the backend updated Vals on its device/);
      // ... and after a sync, weights written from outside are sent again after weightsChanged.
      for (const t of [gpu, cpu]) {
        await t.syncWeights();
        t.weights.get('Vals')!.fill(0.01);
        t.weights.get('Wout')!.fill(0.02);
        t.weightsChanged();
      }
      const { keys, targets } = batch(9);
      const a = await gpu.evaluate({ keys }, targets);
      const b = await cpu.evaluate({ keys }, targets);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
    } finally {
      await gpu.destroy();
      await cpu.destroy();
    }
  }, 600_000);

  it('brings every layout of a changed array up to date: touched rows scattered, chunks of rows, permuted copies', async () => {
    const { device } = await gpuDevice();
    const rows = 100, width = 6;
    const data = Float32Array.from({ length: rows * width }, (_, i) => i);
    const make = (floats: number) => device.createBuffer({ size: floats * 4, usage: 0x0080 | 0x0008 | 0x0004 });
    const notes: string[] = [];
    const residents = new Residents((t) => notes.push(t));
    const shape = [rows, width];
    const layouts: ResidentLayout[] = [{ shape }, { shape, chunk: { first: 0, rows: 40, width } }, { shape, chunk: { first: 40, rows: 60, width } }, { name: 'T', shape, perm: [1, 0] }];
    const expected = (l: ResidentLayout): Float32Array => {
      if (l.perm) return Float32Array.from({ length: rows * width }, (_, i) => data[(i % rows) * width + Math.floor(i / rows)]!);
      if (l.chunk) return data.slice(l.chunk.first * width, (l.chunk.first + l.chunk.rows) * width);
      return data.slice();
    };
    try {
      const check = async (what: string) => {
        for (const l of layouts) {
          const buf = residents.buffer(device, data, l, make);
          const want = expected(l);
          expect(Array.from(await readBack(device, buf, want.length)), `${what}: ${JSON.stringify(l)}`).toEqual(Array.from(want));
        }
      };
      await check('first upload');
      // Two reports of rows (one repeated, as a trainer's two executors report the same list), both chunks touched.
      const touched = [3, 41, 99, 3];
      for (const r of touched) data.fill(-r, r * width, r * width + width);
      changed(data, touched, width);
      changed(data, touched, width);
      changed(data, [7], width);
      data.fill(-7, 7 * width, 8 * width);
      const before = moved.params;
      await check('after row updates');
      // The unpermuted layouts took only the touched rows (and their ids); the permuted one was written whole.
      expect(moved.params - before).toBeLessThan(rows * width * 4 + 2 * 4 * 4 * width + 64);
      // ... and that slower path is said.
      expect(notes.join('\n')).toMatch(/parameter T: its copy with axes \(1, 0\) is written whole \(0\.0 MiB\) after each update of some of its rows/);
      const said = notes.length;
      data.fill(5);
      changed(data);
      await check('after a whole change');
      // A whole change is no slower path: nothing more is said.
      expect(notes.length).toBe(said);
    } finally {
      residents.release();
    }
  }, 300_000);

  it('peerc train --backend webgpu writes checkpoints of what the GPU updated, and resumes from them, as wasm-simd does', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'peerc-webgpu-train-'));
    try {
      const run = (backend: string, steps: number, resume: boolean) => {
        const r = runPeerc(['train', 'examples/recall.peer', '--task', 'recall', '--steps', String(steps), '--eval-every', '3', '--eval-batches', '1', '--checkpoint-every', '3', '--backend', backend, '--seed', '1', '--out', join(tmp, backend), ...(resume ? ['--resume'] : [])]);
        expect(r.status, r.stdout + r.stderr).toBe(0);
        return readSafetensors(readFileSync(join(tmp, backend, 'checkpoint.safetensors')), backend).tensors;
      };
      for (const [steps, resume] of [[4, false], [7, true]] as const) {
        const gpu = run('webgpu', steps, resume), cpu = run('wasm-simd', steps, resume);
        for (const name of ['param.Vals', 'opt.m.Vals', 'opt.v.Vals', 'param.Wq'])
          expect(relDiff(Float32Array.from(gpu.get(name)!.data), Float32Array.from(cpu.get(name)!.data)), `${name} after ${steps} steps`).toBeLessThan(1e-3);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 600_000);
});
