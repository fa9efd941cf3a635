// product_retrieve as a generated host task (JavaScript over shared memory, run by the
// worker pool): per lane (token, head) one pass over each side's n sub-key scores keeping the
// subk best by insertion, then only the candidate pairs (i, j) with (i+1)(j+1) <= k (no other
// pair can reach the top k: each is beaten or tied at a lower rank by that many others),
// visited in rank order i*subk+j so ties go to the lower rank as in the reference, then the gate.
// Sizes are literals; NaN ranks below every number, as topk's reference does.
import type { PoolTask } from './pool-task.js';
import { elementwiseGateJs } from '../../src/ir/ops/unary.js';

/**
 * Inserts value `v` (index `i`, the highest index seen so far, so ties lose) into the best-`k`
 * arrays `vals`/`ids` of length `len`, keeping `thr` (the k-th value once full, else -Infinity)
 * and `thrNaN` (that value is NaN, so any number beats it) for the caller's one-compare filter.
 */
const insertion = (vals: string, ids: string, len: string, thr: string, k: number, v: string, i: string) => `
      let p = ${len} === ${k} ? ${k - 1} : ${len}++;
      while (p > 0 && (${v} > ${vals}[p - 1] || (${vals}[p - 1] !== ${vals}[p - 1] && ${v} === ${v}))) { ${vals}[p] = ${vals}[p - 1]; ${ids}[p] = ${ids}[p - 1]; p--; }
      ${vals}[p] = ${v}; ${ids}[p] = ${i};
      if (${len} === ${k}) { ${thr} = ${vals}[${k - 1}]; ${thr}NaN = ${thr} !== ${thr}; }`;

/**
 * One pass over `count` values keeping the best `k`: the first k are inserted as they come, the
 * rest only past one compare with the current k-th (most values of a long row fail it). The
 * caller declares `${len}Thr = -Infinity, ${len}ThrNaN = false` once per selection.
 */
const selectBest = (vals: string, ids: string, len: string, k: number, count: number | string, value: (i: string) => string, index: (i: string) => string, guard = '') => `
    for (let q = 0; q < ${count}${guard}; q++) {
      const v = ${value('q')};
      if (${len} < ${k} || v > ${len}Thr || (${len}ThrNaN && v === v)) {${insertion(vals, ids, len, `${len}Thr`, k, 'v', index('q'))}
      }
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
    let naThr = -Infinity, naThrNaN = false, nbThr = -Infinity, nbThrNaN = false, ncThr = -Infinity, ncThrNaN = false;
    {${selectBest('av', 'ai', 'na', subk, n, (q) => `s1[o + ${q}]`, (q) => q)}
    }
    {${selectBest('bv', 'bi', 'nb', subk, n, (q) => `s2[o + ${q}]`, (q) => q)}
    }
    for (let i = 0; i < ${subk}; i++) {${selectBest('cv', 'ci', 'nc', k, subk, (q) => `av[i] + bv[${q}]`, (q) => `i * ${subk} + ${q}`, ` && (i + 1) * (q + 1) <= ${k}`)}
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
