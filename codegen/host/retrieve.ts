// product_retrieve on the worker pool: the selection as the generated SIMD kernel
// (codegen/wasm/retrieve.ts), run in the memory that holds the scores, then the gate over each
// lane's k best sums in JavaScript (wasm has no exp), all inside one task per thread.
import type { PoolTask } from './pool-task.js';
import { retrieveScratchBytes } from '../wasm/retrieve.js';
import { elementwiseGateJs } from '../../src/ir/ops/unary.js';

/**
 * The task for lanes [from, to): args are byte pointers into the kernel memory (scores s1 and
 * s2, scratch, the k best sums, the ids), then the sums as a Float64Array view of that memory
 * and the gate weights' Float32Array. `kernel` names the retrieval instance in ctx.wasm.
 */
export function productRetrieveTask(kernel: string, n: number, k: number, subk: number, gate: string): PoolTask {
  // softmax: each exp once, kept in float64 until divided (the reference's arithmetic).
  const weight = gate === 'softmax' ? 'e[j] / z' : elementwiseGateJs(gate, 'cv[o + j]');
  const source = `function productRetrieve(args, from, to, ctx) {
  ctx.wasm[${JSON.stringify(kernel)}].retrieve(args[0] + from * ${4 * n}, args[1] + from * ${4 * n}, args[2] + from * ${retrieveScratchBytes(k, subk)}, args[3] + from * ${8 * k}, args[4] + from * ${4 * k}, to - from);
  const cv = args[5], wOut = args[6];${gate === 'softmax' ? `\n  const e = new Float64Array(${k});` : ''}
  for (let l = from; l < to; l++) {
    const o = l * ${k};
    ${gate === 'softmax' ? `const top = cv[o];\n    let z = 0;\n    for (let j = 0; j < ${k}; j++) z += (e[j] = Math.exp(cv[o + j] - top));` : ''}
    for (let j = 0; j < ${k}; j++) wOut[o + j] = ${weight};
  }
}`;
  return { key: `product_retrieve:${kernel}:${gate}`, source };
}
