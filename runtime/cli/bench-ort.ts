// The ONNX Runtime baseline of `peerc bench`: the same model, weights and inputs exported with
// peerc's ONNX exporter (the fused lowering is the ONNX_EXPORT pipeline) and run by onnxruntime-node on the CPU, what a user deploying the model
// would otherwise use. onnxruntime-node is an opt-in extra (`npm run extras -- ort`): without it
// the report says how to add it.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IRModule } from '../../src/ir/graph.js';
import type { Tensor } from '../../src/interp/tensor.js';
import { entryFunction } from '../../src/interp/interpreter.js';
import { emitOnnx } from '../../codegen/onnx/export.js';
import { median } from '../stats.js';

export type OrtBaseline =
  | { available: true; version: string; threads: number; medianMs: number; runsMs: number[]; maxDiffVsFused: number }
  | { available: false; reason: string };


/** The part of onnxruntime-node's API that peerc uses, so peerc type-checks without the extra. */
export interface OrtTensor {
  readonly dims: readonly number[];
  readonly data: unknown;
}
export interface Ort {
  Tensor: new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtTensor;
  InferenceSession: {
    create(path: string, options: { executionProviders: string[]; intraOpNumThreads?: number; graphOptimizationLevel?: 'all' }): Promise<{
      readonly outputNames: readonly string[];
      run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
      release(): Promise<void>;
    }>;
  };
  env: { versions: { node?: string; common: string } };
}

/** onnxruntime-node where it is installed; the import error's message where it is not. */
export async function loadOrt(): Promise<Ort | string> {
  const name: string = 'onnxruntime-node'; // not a literal: the type checker and the bundler leave it to run time
  try {
    return (await import(name)) as Ort;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** An entry's inputs as ONNX Runtime tensors, by name: index inputs as int64, the rest float32. */
export function ortFeeds(ort: Ort, m: IRModule, inputs: ReadonlyMap<string, Tensor>): Record<string, OrtTensor> {
  const fn = entryFunction(m);
  const feeds: Record<string, OrtTensor> = {};
  for (const id of fn.inputs) {
    const name = fn.graph.node(id).attrs.name as string;
    const t = inputs.get(name)!;
    feeds[name] = t.dtype === 'index' ? new ort.Tensor('int64', BigInt64Array.from(Array.from(t.data, (v) => BigInt(v))), t.shape) : new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
  }
  return feeds;
}

export async function ortBaseline(fused: IRModule, weights: ReadonlyMap<string, Float32Array>, inputs: ReadonlyMap<string, Tensor>, runs: number, fusedOutput: Float32Array): Promise<OrtBaseline> {
  const ort = await loadOrt();
  if (typeof ort === 'string') return { available: false, reason: 'onnxruntime-node is not installed (npm run extras -- ort, in a clone of peerc, adds the ONNX Runtime CPU baseline)' };
  const dir = mkdtempSync(join(tmpdir(), 'peerc-bench-ort-'));
  try {
    const path = join(dir, 'model.onnx');
    const out = emitOnnx(fused, { get: (n) => weights.get(n)! }, path, 'peerc bench');
    writeFileSync(path, out.model);
    if (out.external) {
      // Chunk by chunk: the 1M-expert layer's tables are past what one Buffer holds (2 GiB).
      writeFileSync(`${path}.data`, new Uint8Array(0));
      for (const c of out.external.chunks) appendFileSync(`${path}.data`, c);
    }
    const threads = (await import('node:os')).availableParallelism();
    const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
    const feeds = ortFeeds(ort, fused, inputs);
    let result = await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      result = await session.run(feeds);
      times.push(performance.now() - t0);
    }
    const got = result[session.outputNames[0]!]!.data as Float32Array;
    let diff = 0;
    for (let i = 0; i < fusedOutput.length; i++) diff = Math.max(diff, Math.abs(got[i]! - fusedOutput[i]!));
    await session.release();
    return { available: true, version: ort.env.versions.node ?? ort.env.versions.common, threads, medianMs: median(times), runsMs: times, maxDiffVsFused: diff };
  } catch (e) {
    return { available: false, reason: `ONNX Runtime could not run the exported model: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
