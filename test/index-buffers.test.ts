// Integer (index) buffers: fixed ids drawn once from the seed (randint) or read from a weights
// file, never trained, read by the indexing ops on every backend and through both exports (the
// example examples/hashed_bigram.peer runs in every per-example test); and the run-time check of
// indices that nothing bounds at compile time (computed from an index input or buffer), which
// every backend reports as PEER0603 at the op instead of reading outside a table.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { Tensor } from '../src/interp/tensor.js';
import { loadWeights, seededWeights } from '../src/io/tensors.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-file.js';
import { optimize } from '../src/passes/pipeline.js';
import { unavailableReason, type BackendName } from '../runtime/backends/info.js';
import { Executor } from '../runtime/executor.js';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { compileOk, diagnose, runPeerc } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'peerc-index-buffers-'));
const BACKENDS = (['cpu', 'webasm', 'wasm-simd', 'plain-js'] as BackendName[]).filter((b) => !unavailableReason(b));

/** Each token reads two rows of U picked by a fixed hash (ids), summed. */
const HASHED = `buffer ids: index[6, 2] = randint(0, 8)
param U: [8, 3] = normal(0, 1) @sparse
model f(tok: index[T]) -> [T, 3] {
  return sum(gather(U, gather(ids, tok)), axis=1)
}
`;
const tokens = (values: number[]) => new Map([['tok', new Tensor('index', [values.length], Float64Array.from(values))]]);

describe('declaring index buffers', () => {
  it('randint draws whole numbers in [low, high), the same for a seed, different across seeds', () => {
    const m = compileOk(HASHED.replace('randint(0, 8)', 'randint(3, 8)').replace('[6, 2]', '[600, 2]'));
    const a = [...seededWeights(m, 1).get('ids')!.data];
    expect(m.params[0]).toMatchObject({ name: 'ids', role: 'buffer', dtype: 'index', init: { kind: 'randint', low: 3, high: 8 } });
    expect(a.every((v) => Number.isInteger(v) && v >= 3 && v < 8)).toBe(true);
    expect(new Set(a).size).toBe(5);
    expect([...seededWeights(m, 1).get('ids')!.data]).toEqual(a);
    expect([...seededWeights(m, 2).get('ids')!.data]).not.toEqual(a);
  });

  it('mistakes are located errors with a way out', () => {
    const src = (decl: string) => `${decl}\nparam U: [8, 3]\nmodel f(tok: index[T]) -> [T, 2, 3] {\n  return gather(U, gather(ids, tok))\n}\n`;
    expect(diagnose(src('param ids: index[6, 2] = randint(0, 8)'))).toMatch(/PEER0204[\s\S]*an integer tensor is not trained: declare it as a buffer/);
    expect(diagnose(src('buffer ids: index[6, 2] = normal(0, 1)'))).toMatch(/PEER0407: normal\(\.\.\.\) draws real numbers; the index buffer 'ids' starts with integers/);
    expect(diagnose(src('buffer ids: index[6, 2] = constant(2.5)'))).toMatch(/PEER0407: the index buffer 'ids' holds integers from 0 to 2\^24; constant\(2.5\) is not one/);
    expect(diagnose(src('buffer ids: index[6, 2] = randint(-1, 8)'))).toMatch(/randint\(-1, 8\) draws outside them/);
    expect(diagnose(src('buffer ids: index[6, 2] = randint(8, 8)'))).toMatch(/randint: low and high must be integers with high > low/);
    expect(diagnose(src('buffer ids: index[6, 2] = randint(0, 8) @sparse'))).toMatch(/PEER0208: unknown .*'@sparse' on the index buffer 'ids'[\s\S]*none: an index buffer is not trained/);
    expect(diagnose(src('buffer ids: [6, 2] = randint(0, 8)'))).toMatch(/randint\(low, high\) draws integers for index buffers; 'ids' is f32: use uniform\(low, high\)/);
    // An index buffer meets float arithmetic only through float().
    expect(diagnose('buffer ids: index[4] = zeros()\nmodel f(x: [4]) -> [4] {\n  return x + ids\n}\n')).toMatch(/error PEER0300: the operator '\+' expects operands of one dtype[\s\S]*write float\(i\) to use one in f32 arithmetic/);
    expect(compileOk('buffer ids: index[4] = zeros()\nmodel f(x: [4]) -> [4] {\n  return x + float(ids)\n}\n').params[0]!.dtype).toBe('index');
  });
});

describe('running with index buffers', () => {
  const m = compileOk(HASHED);
  const weights = seededWeights(m, 4);
  const ids = [...weights.get('ids')!.data];
  const U = weights.get('U')!.data;

  it('the reference reads the rows the buffer names', () => {
    const out = interpret(m, tokens([5, 0, 5]), weights).outputs[0]!;
    const expected = (t: number) => [0, 1, 2].map((c) => U[ids[2 * t]! * 3 + c]! + U[ids[2 * t + 1]! * 3 + c]!);
    expect([...out.data]).toEqual([...expected(5), ...expected(0), ...expected(5)]);
  });

  it.each(BACKENDS)('%s agrees with the reference (fused and naive)', async (backend) => {
    const ref = interpret(m, tokens([1, 4, 2, 5]), weights).outputs[0]!;
    for (const lowering of ['fused', 'naive'] as const) {
      const ex = new Executor(optimize(m, { lowering }), weights, backend);
      try {
        const got = (await ex.forward(tokens([1, 4, 2, 5]))).outputs[0]!;
        got.data.forEach((v, i) => expect(Math.abs(v - ref.data[i]!), `${lowering} [${i}]`).toBeLessThan(1e-5));
      } finally {
        ex.destroy();
      }
    }
  });

  it('weights files carry index buffers as integers: I64 and I32 are read, fractions, negatives and floats for index are refused', () => {
    const write = (name: string, dtype: 'I64' | 'I32' | 'F32', values: number[]) => {
      const path = join(tmp, name);
      writeSafetensorsFile(path, [
        { name: 'ids', dtype, shape: [6, 2], element: (i) => values[i]! },
        { name: 'U', dtype: 'F32', shape: [8, 3], element: (i) => U[i]! },
      ]);
      return path;
    };
    const fixed = [7, 6, 5, 4, 3, 2, 1, 0, 7, 7, 0, 0];
    for (const dtype of ['I64', 'I32'] as const) {
      const loaded = loadWeights(m, write(`w-${dtype}.safetensors`, dtype, fixed));
      expect(loaded.get('ids')!.dtype).toBe('index');
      expect([...loaded.get('ids')!.data]).toEqual(fixed);
    }
    // A checkpoint holds buffers as F32: whole numbers are accepted.
    expect([...loadWeights(m, write('w-f32.safetensors', 'F32', fixed)).get('ids')!.data]).toEqual(fixed);
    expect(() => loadWeights(m, write('w-frac.safetensors', 'F32', [0.5, ...fixed.slice(1)]))).toThrow(/PEER0602.*'ids'.*whole numbers from 0 to 2\^24.*found 0.5 at \[0, 0\]/);
    expect(() => loadWeights(m, write('w-neg.safetensors', 'I32', [...fixed.slice(0, 11), -1]))).toThrow(/found -1 at \[5, 1\]/);
    // A value past the table's rows is caught where it is read.
    const big = loadWeights(m, write('w-big.safetensors', 'I64', [...fixed.slice(0, 3), 9, ...fixed.slice(4)]));
    expect(() => interpret(m, tokens([1]), big)).toThrow(/PEER0603.*index 9 is out of range for 8 rows/);
  });

  it('peerc init writes the buffer as I64, and peerc run reads it back on every backend', () => {
    const file = join(tmp, 'hashed.peer');
    writeFileSync(file, HASHED);
    expect(runPeerc(['init', file, '--seed', '4', '--out', join(tmp, 'init.safetensors')]).status).toBe(0);
    const { tensors } = readSafetensors(readFileSync(join(tmp, 'init.safetensors')), 'init');
    expect(tensors.get('ids')!.dtype).toBe('I64');
    expect([...tensors.get('ids')!.data]).toEqual(ids);
  });
});

describe('indices the checker cannot bound are checked where they are read', () => {
  const computed = compileOk('param U: [64, 8]\nmodel m(x: index[T]) -> [T, 8] {\n  return gather(U, x * 2)\n}\n');
  const buffered = compileOk('buffer ids: index[3] = constant(63)\nparam U: [64, 8]\nmodel m(x: index[T]) -> [T, 8] {\n  return gather(U, gather(ids, x) + 1)\n}\n');
  const w = (m: ReturnType<typeof compileOk>) => seededWeights(m, 1);

  it('the reference reports PEER0603', () => {
    expect(() => interpret(computed, tokens([1, 40]).set('x', tokens([1, 40]).get('tok')!), w(computed))).toThrow(/PEER0603.*index 80 is out of range for 64 rows/);
  });

  it.each(BACKENDS)('%s reports PEER0603 at the op, naming where the index came from, before reading', async (backend) => {
    const run = async (m: ReturnType<typeof compileOk>, x: number[]) => {
      const ex = new Executor(optimize(m), w(m), backend);
      try {
        return await ex.forward(new Map([['x', new Tensor('index', [x.length], Float64Array.from(x))]]));
      } finally {
        ex.destroy();
      }
    };
    await expect(run(computed, [1, 40])).rejects.toThrow(/PEER0603: gather: a computed index at \[1\]: index 80 is out of range for 64 rows/);
    await expect(run(buffered, [2])).rejects.toThrow(/index 64 is out of range for 64 rows/);
    // In range, the same programs run.
    expect((await run(computed, [1, 31])).outputs[0]!.shape).toEqual([2, 8]);
  });
});

describe('training with an index buffer', () => {
  it('trains the tables it selects, never the buffer, which the checkpoint keeps', () => {
    const file = join(tmp, 'hashed_bigram.peer');
    writeFileSync(file, readFileSync(join(import.meta.dirname, '..', 'examples', 'hashed_bigram.peer'), 'utf8'));
    const out = join(tmp, 'run');
    const data = join(import.meta.dirname, '..', 'docs', 'language.md'); // any text: it is there in every checkout
    const r = runPeerc(['train', file, '--data', data, '--steps', '6', '--batch', '4', '--seq', '16', '--seed', '3', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const m = compileOk(readFileSync(file, 'utf8'));
    const initial = seededWeights(m, 3);
    const ck = readCheckpoint(join(out, 'checkpoint.safetensors'));
    expect([...ck.tensors.get('param.hash_rows')!.data]).toEqual([...initial.get('hash_rows')!.data]);
    expect(ck.tensors.has('opt.m.hash_rows')).toBe(false);
    expect([...ck.tensors.get('param.Rows')!.data]).not.toEqual([...initial.get('Rows')!.data].map(Math.fround));
    const resumed = runPeerc(['train', file, '--data', data, '--steps', '8', '--out', out, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
  });
});
