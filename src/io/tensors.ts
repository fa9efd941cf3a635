// Weights and inputs of a module, from safetensors files or from a seed.
import { readFileSync, statSync } from 'node:fs';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';
import type { IRFunction, IRModule } from '../ir/graph.js';
import { initialTensor, normalAt, uniformAt } from '../interp/init.js';
import { indexInputUses } from '../interp/input-checks.js';
import { entryFunction } from '../interp/interpreter.js';
import { optimize } from '../passes/pipeline.js';
import type { Dim } from '../shapes/dim.js';
import { Tensor } from '../interp/tensor.js';
import { checkFiniteWeight } from '../interp/input-checks.js';
import { readSafetensors, type StTensor, type TensorToWrite } from './safetensors.js';

const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);
const INT_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8']);

export function readFileChecked(path: string): Uint8Array {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`cannot read '${path}': no such file`);
  }
  if (st.isDirectory()) throw new UsageError(`'${path}' is a directory, not a file`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** A mistake in how peerc was invoked (exit status 2). */
export class UsageError extends Error {}

export function seededWeights(m: IRModule, seed: number): Map<string, Tensor> {
  return new Map(m.params.map((p) => [p.name, initialTensor(p, seed)]));
}

export function loadWeights(m: IRModule, path: string): Map<string, Tensor> {
  const { tensors } = readSafetensors(readFileChecked(path), path);
  const out = new Map<string, Tensor>();
  for (const p of m.params) {
    const t = tensors.get(p.name);
    if (!t) throw new CompileError(diagnostic('PEER0601', null, { file: path, name: p.name, kind: `${p.role} f32[${p.shape.join(', ')}]` }));
    if (!FLOAT_DTYPES.has(t.dtype) || t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      throw new CompileError(diagnostic('PEER0602', null, { name: p.name, expected: `a float tensor [${p.shape.join(', ')}]`, found: `${t.dtype}[${t.shape.join(', ')}]` }));
    checkFiniteWeight(p.name, t.data, t.shape, path);
    out.set(p.name, new Tensor('f32', t.shape, t.data));
  }
  return out;
}

export function loadInputs(fn: IRFunction, path: string): Map<string, Tensor> {
  const { tensors } = readSafetensors(readFileChecked(path), path);
  const out = new Map<string, Tensor>();
  for (const id of fn.inputs) {
    const node = fn.graph.node(id);
    const name = node.attrs.name as string;
    const dtype = node.types[0]!.dtype;
    const t: StTensor | undefined = tensors.get(name);
    if (!t) throw new CompileError(diagnostic('PEER0601', null, { file: path, name, kind: `input of @${fn.name}` }));
    const ok = dtype === 'f32' ? FLOAT_DTYPES.has(t.dtype) : INT_DTYPES.has(t.dtype);
    if (!ok) throw new CompileError(diagnostic('PEER0602', null, { name, expected: dtype === 'f32' ? 'a float dtype (F32, F64, F16, BF16)' : 'an integer dtype (I64, I32, ...)', found: t.dtype }));
    out.set(name, new Tensor(dtype, t.shape, t.data));
  }
  return out;
}

/**
 * Seeded inputs for a model: every open dim of the entry is `sizes.get(dim) ?? tokens`, floats
 * are standard normal, index inputs uniform over the range their uses allow (PEER0603's bound).
 */
export function seededInputs(m: IRModule, tokens: number, seed: number, sizes: ReadonlyMap<string, number> = new Map()): Map<string, Tensor> {
  const inlined = optimize(m, { stopAfter: 'inline' });
  const fn = entryFunction(inlined);
  const uses = indexInputUses(fn);
  for (const name of sizes.keys()) if (!fn.symbols.includes(name)) throw new UsageError(`--dim ${name}: the model has no open dimension '${name}' (its dimensions: ${fn.symbols.join(', ') || 'none'})`);
  const dimValue = (d: Dim) => d.evaluate((s) => sizes.get(s) ?? tokens)!;
  const out = new Map<string, Tensor>();
  fn.inputs.forEach((id, k) => {
    const n = fn.graph.node(id);
    const name = n.attrs.name as string;
    const type = n.types[0]!;
    const shape = type.shape.map(dimValue);
    const size = shape.reduce((a, b) => a * b, 1);
    if (type.dtype === 'f32') {
      out.set(name, new Tensor('f32', shape, Float64Array.from({ length: size }, (_, i) => normalAt(seed + 7919 * (k + 1), i))));
      return;
    }
    const list = uses.get(name);
    if (!list) throw new UsageError(`cannot tell the range of index input '${name}' (no gather or top-k reads it directly); write the inputs file yourself`);
    const bound = Math.min(...list.map((u) => dimValue(u.bound)));
    out.set(name, new Tensor('index', shape, Float64Array.from({ length: size }, (_, i) => Math.floor(uniformAt(seed + 7919 * (k + 1), i, 0) * bound))));
  });
  return out;
}

export function toWrite(name: string, t: Tensor, floatDtype: 'F32' | 'F64' = 'F64'): TensorToWrite {
  return { name, dtype: t.dtype === 'index' ? 'I64' : floatDtype, shape: t.shape, element: t.element };
}
