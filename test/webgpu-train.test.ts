/// <reference types="@webgpu/types" />
// Training on peerc's webgpu with the parameters resident on the GPU: the trainer's updates reach
// the GPU's copies as reports (touched rows scattered by a kernel, the rest written whole), so
// each step moves a few rows of a table, not the table; the losses are wasm-simd's step for step.
// Runs where Dawn finds a Vulkan driver (a GPU's, or Mesa's lavapipe); says so where it skips.
import { describe, expect, it } from 'vitest';
import { CompiledTrainer, seededWeights } from '../runtime/api.js';
import { gpuDevice } from '../runtime/backends/webgpu/device.js';
import { changed, Residents, type ResidentLayout } from '../runtime/backends/webgpu/residents.js';
import { moved } from '../runtime/backends/webgpu/transfer.js';
import { moduleToJSON } from '../src/ir/serialize.js';
import { compileOk, sharedPoolProgram } from './helpers.js';

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

describe.skipIf(!!webgpuMissing)('training on webgpu with the parameters resident on the GPU', () => {
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
      // Weights written from outside are sent again after weightsChanged.
      for (const t of [gpu, cpu]) {
        t.weights.get('Vals')!.fill(0.01);
        t.weights.get('Wout')!.fill(0.02);
        t.weightsChanged();
      }
      const { keys, targets } = batch(9);
      const a = await gpu.evaluate({ keys }, targets);
      const b = await cpu.evaluate({ keys }, targets);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
    } finally {
      gpu.destroy();
      cpu.destroy();
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
});
