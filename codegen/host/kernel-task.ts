// A generated gpu.js kernel (one output cell per thread, flat arguments) as a pool task: the
// same source, its cells looped over [from, to) instead of launched as threads. `this.thread.x`
// becomes the loop variable, `this.constants.pN` and `aN`/`stN` come from the task's
// arguments, and `return v;` stores v and goes on with the next cell. Kernels on 2-D grids,
// 2-D views, or returning vectors stay gpu.js kernels.
import { FLAT_INDEX_LIMIT, type KernelPlan } from '../kernel.js';
import type { PoolTask } from './pool-task.js';

/** Whether `plan` can run as a task (flat launch, flat arguments, one value per cell). */
export function taskable(plan: KernelPlan): boolean {
  if (plan.grid || plan.views?.size || plan.vec4 || plan.layout) return false;
  // Parameters of 2^24 cells or more are read through [row][col] views.
  return plan.args.every((a) => a.kind === 'value' || a.shape.reduce((x, y) => x * y, 1) < FLAT_INDEX_LIMIT);
}

/**
 * The task for `plan`. Its arguments: the output, then the plan's arguments in order (values
 * and parameters alike), then the earlier stages' outputs.
 */
export function kernelTask(plan: KernelPlan, key: string): PoolTask {
  const names = plan.args.map((a, i) => (a.kind === 'value' ? `a${i}` : `p${i}`));
  for (let s = 0; s < plan.earlierStages; s++) names.push(`st${s}`);
  const body = plan.source
    .replace(/this\.thread\.x/g, '__x')
    .replace(/this\.constants\.p(\d+)/g, 'p$1')
    .replace(/\breturn ([^;]*);/g, '{ __out[__x] = $1; continue __cells; }');
  if (/this\./.test(body)) throw new Error(`kernel '${plan.label}' reads ${/this\.[\w.]+/.exec(body)![0]}, which a task does not have`);
  const counted = countedCells(body);
  const source = `function kernel(args, from, to) {
  const __out = args[0]${names.map((n, i) => `, ${n} = args[${i + 1}]`).join('')};
${counted ? counted.before : ''}  __cells: for (let __x = from; __x < to; __x++${counted ? `, ${counted.advance}` : ''}) {
${counted ? counted.body : body}
  }
}`;
  return { key, source };
}

/**
 * The cell's coordinates as counters carried from cell to cell, instead of a division per axis
 * per cell (decompose in kernel.ts): a task's cells are consecutive, so each next cell only
 * increments the last coordinate and carries. The divisions were most of the time of the
 * elementwise tasks (a mul over [256, 512] took 0.45 ms on 2 threads). Undefined when the body
 * does not start with the decomposition of the cell index.
 */
function countedCells(body: string): { before: string; advance: string; body: string } | undefined {
  const head = /^let o_rest = __x;\n/.exec(body);
  if (!head) return undefined;
  const dims: number[] = [], axes: number[] = [];
  let at = head[0].length;
  for (;;) {
    const axis = new RegExp(
      `^let o_q(\\d+) = Math\\.floor\\(o_rest / (\\d+)\\);\\nlet o\\1 = o_rest - o_q\\1 \\* \\2;\\n` +
        `if \\(o\\1 < 0\\) \\{ o_q\\1 = o_q\\1 - 1; o\\1 = o\\1 \\+ \\2; \\}\\n` +
        `if \\(o\\1 >= \\2\\) \\{ o_q\\1 = o_q\\1 \\+ 1; o\\1 = o\\1 - \\2; \\}\\no_rest = o_q\\1;\\n`,
    ).exec(body.slice(at));
    if (!axis) break;
    if (dims.length > 0 && Number(axis[1]) !== axes.at(-1)! - 1) return undefined;
    axes.push(Number(axis[1]));
    dims.push(Number(axis[2]));
    at += axis[0].length;
  }
  const last = /^let o0 = o_rest;\n/.exec(body.slice(at));
  if (!last || dims.length === 0 || axes.at(-1) !== 1) return undefined;
  at += last[0].length;
  // The decomposition's temporaries are gone: a body still reading them keeps its divisions.
  if (/\bo_(rest|q\d)/.test(body.slice(at))) return undefined;
  const n = dims.length; // axes n (innermost) .. 1 carry; axis 0 only grows
  const sizes = [...dims].reverse(); // sizes[j - 1] is axis j's extent
  const names = Array.from({ length: n + 1 }, (_, j) => `o${j}`);
  const split = [`let __r = from;`];
  for (let j = n; j >= 1; j--) split.push(`${names[j]} = __r % ${sizes[j - 1]}; __r = (__r - ${names[j]}) / ${sizes[j - 1]};`);
  split.push(`o0 = __r;`);
  let advance = '++o0';
  for (let j = 1; j <= n; j++) advance = `(++${names[j]} === ${sizes[j - 1]} && (${names[j]} = 0, ${advance}))`;
  return { before: `  let ${names.join(', ')};\n  { ${split.join(' ')} }\n`, advance, body: body.slice(at) };
}
