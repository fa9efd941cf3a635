// Weights and inputs of a module, from safetensors files or from a seed.
import { readFileSync, statSync } from 'node:fs';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';
import type { IRFunction, IRModule } from '../ir/graph.js';
import { Tensor } from '../interp/tensor.js';
import { checkWeightValues } from '../interp/input-checks.js';
import { readSafetensors, type StTensor, type TensorToWrite } from './safetensors.js';
import { fileError, isFileSystemError } from './files.js';

const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);
const INT_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8']);

export function readFileChecked(path: string): Uint8Array {
  // A path that cannot be read is the user's data error (exit 1, PEER0800), like any other path.
  const cannot = (reason: string) => new CompileError(diagnostic('PEER0800', null, { action: 'read', path, reason }));
  let st;
  try {
    st = statSync(path);
  } catch {
    throw cannot('no such file');
  }
  if (st.isDirectory()) throw cannot('it is a folder, not a file');
  try {
    return readFileSync(path);
  } catch (e) {
    if (isFileSystemError(e)) throw fileError('read', path, e as NodeJS.ErrnoException);
    throw cannot((e as Error).message);
  }
}

export { UsageError } from './usage-error.js';
export { seededInputs } from './seeded.js';
import { UsageError } from './usage-error.js';

export { seededTensors as seededWeights } from './seeded.js';

export function loadWeights(m: IRModule, path: string): Map<string, Tensor> {
  const { tensors } = readSafetensors(readFileChecked(path), path);
  const out = new Map<string, Tensor>();
  for (const p of m.params) {
    // A peerc train checkpoint holds the weights as param.NAME (beside the optimizer's state).
    const t = tensors.get(p.name) ?? tensors.get(`param.${p.name}`);
    if (!t) throw new CompileError(diagnostic('PEER0601', null, { file: path, name: p.name, kind: `${p.role} ${p.dtype}[${p.shape.join(', ')}]` }));
    // An index buffer comes as integers (peerc init writes I64), or as whole floats from a checkpoint (F32).
    const dtypeOk = FLOAT_DTYPES.has(t.dtype) || (p.dtype === 'index' && INT_DTYPES.has(t.dtype));
    if (!dtypeOk || t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
      throw new CompileError(diagnostic('PEER0602', null, { name: p.name, expected: `${p.dtype === 'index' ? 'an integer' : 'a float'} tensor [${p.shape.join(', ')}]`, found: `${t.dtype}[${t.shape.join(', ')}]` }));
    checkWeightValues(p, t.data, t.shape, path);
    out.set(p.name, new Tensor(p.dtype, t.shape, t.data));
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

export function toWrite(name: string, t: Tensor, floatDtype: 'F32' | 'F64' = 'F64'): TensorToWrite {
  return { name, dtype: t.dtype === 'index' ? 'I64' : floatDtype, shape: t.shape, element: t.element };
}
