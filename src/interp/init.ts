// Seeded parameter initialisation with a counter-based generator: every element is a pure
// function of (seed, parameter name, position), so a table of a million experts can be
// materialised lazily, row by row, and any backend reproduces the same weights.
import type { InitSpec, ParamInfo } from '../ir/graph.js';
import { Tensor } from './tensor.js';
import { normalAt, paramKey, uniformAt } from './rng.js';

export function elementInit(init: InitSpec, key: number): (i: number) => number {
  switch (init.kind) {
    case 'normal':
      return (i) => init.mean + init.std * normalAt(key, i);
    case 'uniform':
      return (i) => init.low + (init.high - init.low) * uniformAt(key, i, 0);
    case 'randint':
      return (i) => init.low + Math.min(init.high - init.low - 1, Math.floor((init.high - init.low) * uniformAt(key, i, 0)));
    case 'constant':
      return () => init.value;
  }
}

/** A lazy tensor holding the seeded initial value of a parameter. */
export function initialTensor(p: ParamInfo, seed: number): Tensor {
  return new Tensor(p.dtype, p.shape, elementInit(p.init, paramKey(seed, p.name)));
}
