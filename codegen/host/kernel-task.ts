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
  const source = `function kernel(args, from, to) {
  const __out = args[0]${names.map((n, i) => `, ${n} = args[${i + 1}]`).join('')};
  __cells: for (let __x = from; __x < to; __x++) {
${body}
  }
}`;
  return { key, source };
}
