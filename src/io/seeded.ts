// Seeded weights and inputs without Node built-ins (the playground's worker makes them too).
import type { Dim } from '../shapes/dim.js';
import { initialTensor } from '../interp/init.js';
import { normalAt, uniformAt } from '../interp/rng.js';
import { indexInputUses } from '../interp/input-checks.js';
import { entryFunction } from '../interp/interpreter.js';
import { Tensor } from '../interp/tensor.js';
import type { IRModule } from '../ir/graph.js';
import { optimize } from '../passes/pipeline.js';
import { UsageError } from './usage-error.js';

/**
 * What "tokens" means in every command (bench, init --inputs, the playground): the positions the
 * model reads in one call. The last open dim of the entry (the sequence) is `tokens`, every other
 * open dim (a batch) is 1, so a [B, S] model and a [T] model both read `tokens` positions.
 */
export function tokenDims(symbols: readonly string[], tokens: number, sizes: ReadonlyMap<string, number> = new Map()): (sym: string) => number {
  const last = symbols[symbols.length - 1];
  return (sym) => sizes.get(sym) ?? (sym === last ? tokens : 1);
}

/**
 * Seeded inputs for a model: the open dims as tokenDims binds them (`sizes` overrides), floats
 * are standard normal, index inputs uniform over the range their uses allow (PEER0603's bound).
 */
export function seededInputs(m: IRModule, tokens: number, seed: number, sizes: ReadonlyMap<string, number> = new Map()): Map<string, Tensor> {
  const inlined = optimize(m, { stopAfter: 'inline' });
  const fn = entryFunction(inlined);
  const uses = indexInputUses(fn);
  for (const name of sizes.keys()) if (!fn.symbols.includes(name)) throw new UsageError(`--dim ${name}: the model has no open dimension '${name}' (its dimensions: ${fn.symbols.join(', ') || 'none'})`);
  const bind = tokenDims(fn.symbols, tokens, sizes);
  const dimValue = (d: Dim) => d.evaluate(bind)!;
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


/** The seeded initial weights as lazy reference tensors (bit-identical to peerc init --seed). */
export function seededTensors(m: IRModule, seed: number): Map<string, Tensor> {
  return new Map(m.params.map((p) => [p.name, initialTensor(p, seed)]));
}
