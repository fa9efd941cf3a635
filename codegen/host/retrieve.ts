// product_retrieve as a generated host task (JavaScript over shared memory, run by the
// worker pool): per lane (token, head) one pass over each side's n sub-key scores keeping the
// subk best by insertion, then only the candidate pairs (i, j) with (i+1)(j+1) <= k (no other
// pair can reach the top k: each is beaten or tied at a lower rank by that many others),
// visited in rank order i*subk+j so ties go to the lower rank as in the reference, then the gate.
// Sizes are literals; NaN ranks below every number, as topk's reference does.
import type { PoolTask } from './pool-task.js';
import { elementwiseGateJs } from '../../src/ir/ops/unary.js';

/** Inserts value `v` (index `i`, the highest index seen so far, so ties lose) into the best-`k` arrays `vals`/`ids` of length `len`. */
const insertion = (vals: string, ids: string, len: string, k: number, v: string, i: string) => `
    if (${len} === ${k} && !(${v} > ${vals}[${k - 1}] || (${vals}[${k - 1}] !== ${vals}[${k - 1}] && ${v} === ${v}))) {} else {
      let p = ${len} === ${k} ? ${k - 1} : ${len}++;
      while (p > 0 && (${v} > ${vals}[p - 1] || (${vals}[p - 1] !== ${vals}[p - 1] && ${v} === ${v}))) { ${vals}[p] = ${vals}[p - 1]; ${ids}[p] = ${ids}[p - 1]; p--; }
      ${vals}[p] = ${v}; ${ids}[p] = ${i};
    }`;

export function productRetrieveTask(n: number, k: number, subk: number, gate: string): PoolTask {
  const weight = gate === 'softmax' ? 'Math.exp(cv[j] - cv[0]) / z' : elementwiseGateJs(gate, 'cv[j]');
  const source = `function productRetrieve(args, from, to) {
  const s1 = args[0], s2 = args[1], wOut = args[2], idxOut = args[3];
  const av = new Float64Array(${subk}), ai = new Int32Array(${subk}), bv = new Float64Array(${subk}), bi = new Int32Array(${subk});
  const cv = new Float64Array(${k}), ci = new Int32Array(${k});
  for (let l = from; l < to; l++) {
    const o = l * ${n};
    let na = 0, nb = 0, nc = 0;
    for (let i = 0; i < ${n}; i++) {
      const v = s1[o + i];${insertion('av', 'ai', 'na', subk, 'v', 'i')}
    }
    for (let i = 0; i < ${n}; i++) {
      const v = s2[o + i];${insertion('bv', 'bi', 'nb', subk, 'v', 'i')}
    }
    for (let i = 0; i < ${subk}; i++) {
      for (let j = 0; j < ${subk} && (i + 1) * (j + 1) <= ${k}; j++) {
        const v = av[i] + bv[j], c = i * ${subk} + j;${insertion('cv', 'ci', 'nc', k, 'v', 'c')}
      }
    }
    ${gate === 'softmax' ? `let z = 0;\n    for (let j = 0; j < ${k}; j++) z += Math.exp(cv[j] - cv[0]);` : ''}
    for (let j = 0; j < ${k}; j++) {
      const c = ci[j], a = ai[(c / ${subk}) | 0], b = bi[c % ${subk}];
      wOut[l * ${k} + j] = ${weight};
      idxOut[l * ${k} + j] = a * ${n} + b;
    }
  }
}`;
  return { key: `product_retrieve:${n}:${k}:${subk}:${gate}`, source };
}
