// einsum: the one contraction op; matmul and transpose are written with it.
import { fail } from '../../diagnostics/diagnostic.js';
import { Tensor, strides } from '../../interp/tensor.js';
import { Dim, shapeToString } from '../../shapes/dim.js';
import { requireDtype } from './shape-rules.js';
import { defineOp, type GradBuilder, type GradValue } from './types.js';

export interface EinsumSpec {
  inputs: string[];
  output: string;
}

export function parseEinsum(spec: string, arity: number): EinsumSpec {
  const clean = spec.replace(/\s+/g, '');
  const m = /^([a-zA-Z,]*)->([a-zA-Z]*)$/.exec(clean);
  if (!m) fail('PEER0304', null, { spec, detail: 'write it as "ab,bc->ac": letters, commas between inputs, one arrow' });
  const inputs = m[1]!.split(',');
  const output = m[2]!;
  if (inputs.length !== arity)
    fail('PEER0304', null, { spec, detail: `it names ${inputs.length} input${inputs.length === 1 ? '' : 's'} but ${arity} tensors are given` });
  for (const s of [...inputs, output])
    if (new Set(s).size !== s.length) fail('PEER0304', null, { spec, detail: `letter repeated within '${s}' (diagonals are not supported)` });
  const seen = new Set(inputs.join(''));
  for (const c of output) if (!seen.has(c)) fail('PEER0304', null, { spec, detail: `output letter '${c}' appears in no input` });
  return { inputs, output };
}

/**
 * When the result's gradient is a scatter along its last letter L (only k of n entries per lane
 * are non-zero, as after a top-k) and the other operand is a table [L, rest...]: the table's
 * gradient is a scatter of k rows per lane and the operand's gradient contracts with the k
 * gathered rows, instead of two dense contractions over all n.
 */
function scatteredGrad(b: GradBuilder, spec: EinsumSpec, inputs: readonly GradValue[], g: GradValue): GradValue[] | undefined {
  const sc = b.producer(g);
  if (sc.op !== 'scatter_along' || inputs.length !== 2) return undefined;
  const L = spec.output[spec.output.length - 1]!;
  const lanes = spec.output.slice(0, -1);
  const t = spec.inputs.findIndex((s) => s[0] === L);
  if (t < 0) return undefined;
  const table = spec.inputs[t]!, other = spec.inputs[1 - t]!;
  const rest = table.slice(1);
  if (other.includes(L) || [...rest].some((c) => lanes.includes(c) || !other.includes(c)) || [...other].some((c) => !lanes.includes(c) && !rest.includes(c))) return undefined;
  const K = [...'KQZYXWV'].find((c) => !spec.inputs.join('').includes(c) && !spec.output.includes(c))!;
  const [gs, idx] = sc.inputs as [GradValue, GradValue];
  const rows = b.type(inputs[t]!).shape[0]!;
  const dOther = b.op('einsum', [gs, b.op('gather', [inputs[t]!, idx])], { spec: `${lanes}${K},${lanes}${K}${rest}->${other}` });
  const dTable = b.op('scatter_rows', [b.op('einsum', [gs, inputs[1 - t]!], { spec: `${lanes}${K},${other}->${lanes}${K}${rest}` }), idx], { rows: [rows] });
  return t === 0 ? [dTable, dOther] : [dOther, dTable];
}

export const einsum = defineOp({
  name: 'einsum',
  inputs: ['operands...'],
  attrs: { spec: 'string' },
  infer(ins, attrs) {
    const spec = parseEinsum(attrs.spec as string, ins.length);
    const dims = new Map<string, Dim>();
    ins.forEach((t, i) => {
      requireDtype(t, 'f32', `einsum operand ${i + 1}`);
      const sub = spec.inputs[i]!;
      if (sub.length !== t.shape.length)
        fail('PEER0304', null, { spec: attrs.spec as string, detail: `operand ${i + 1} '${sub}' has ${sub.length} letters but its shape ${shapeToString(t.shape)} has rank ${t.shape.length}` });
      [...sub].forEach((c, j) => {
        const d = t.shape[j]!;
        const prev = dims.get(c);
        if (prev && !prev.equals(d))
          fail('PEER0304', null, { spec: attrs.spec as string, detail: `letter '${c}' is ${prev} in one place but ${d} in operand ${i + 1} (shape ${shapeToString(t.shape)})` });
        dims.set(c, d);
      });
    });
    return [{ dtype: 'f32', shape: [...spec.output].map((c) => dims.get(c)!) }];
  },
  evaluate(ins, attrs) {
    const spec = parseEinsum(attrs.spec as string, ins.length);
    const size = new Map<string, number>();
    ins.forEach((t, i) => [...spec.inputs[i]!].forEach((c, j) => size.set(c, t.shape[j]!)));
    const outLetters = [...spec.output];
    const sumLetters = [...size.keys()].filter((c) => !outLetters.includes(c));
    const letters = [...outLetters, ...sumLetters];
    const pos = new Map(letters.map((c, i) => [c, i]));
    const inStrides = ins.map((t, i) => {
      const st = strides(t.shape);
      const per = new Array<number>(letters.length).fill(0);
      [...spec.inputs[i]!].forEach((c, j) => (per[pos.get(c)!] = per[pos.get(c)!]! + st[j]!));
      return per;
    });
    const outShape = outLetters.map((c) => size.get(c)!);
    const sumShape = sumLetters.map((c) => size.get(c)!);
    const out = Tensor.zeros('f32', outShape);
    const datas = ins.map((t) => t.data);
    const sumCount = sumShape.reduce((a, b) => a * b, 1);
    const idx = new Array<number>(letters.length).fill(0);
    const od = out.data;
    for (let o = 0; o < out.size; o++) {
      let rem = o;
      for (let i = outLetters.length - 1; i >= 0; i--) {
        idx[i] = rem % outShape[i]!;
        rem = Math.floor(rem / outShape[i]!);
      }
      let acc = 0;
      for (let s = 0; s < sumCount; s++) {
        let r = s;
        for (let i = sumLetters.length - 1; i >= 0; i--) {
          idx[outLetters.length + i] = r % sumShape[i]!;
          r = Math.floor(r / sumShape[i]!);
        }
        let prod = 1;
        for (let t = 0; t < datas.length; t++) {
          let off = 0;
          const st = inStrides[t]!;
          for (let l = 0; l < letters.length; l++) off += idx[l]! * st[l]!;
          prod *= datas[t]![off]!;
        }
        acc += prod;
      }
      od[o] = acc;
    }
    return [out];
  },
  // d operand_i = einsum of the result's gradient with the other operands, onto operand i's
  // letters; letters only operand i has (summed away) come back by broadcasting.
  grad(b, { inputs, attrs }, [g]) {
    if (!g) return inputs.map(() => undefined);
    const spec = parseEinsum(attrs.spec as string, inputs.length);
    const sparse = scatteredGrad(b, spec, inputs, g);
    if (sparse) return sparse;
    return inputs.map((x, i) => {
      const others = [spec.output, ...spec.inputs.filter((_, j) => j !== i)];
      const known = new Set(others.join(''));
      const mine = spec.inputs[i]!;
      const kept = [...mine].filter((c) => known.has(c)).join('');
      const operands = [g, ...inputs.filter((_, j) => j !== i)];
      const shape = b.type(x).shape;
      let d = b.op('einsum', operands, { spec: `${others.join(',')}->${kept}` });
      if (kept.length < mine.length) {
        const withOnes = [...mine].map((c, j) => (kept.includes(c) ? shape[j]! : Dim.of(1)));
        d = b.op('broadcast_to', [b.op('reshape', [d], { shape: withOnes })], { shape });
      }
      return d;
    });
  },
});
