// What a host kernel renderer hands the worker pool: JavaScript source for one task, keyed so
// each thread compiles it once. Declared here, below both the renderers (codegen/host) and the
// pool that runs them (runtime/pool.ts), so neither imports the other's floor.

/** A task: `(args, from, to, ctx) => void` over lanes [from, to). */
export interface PoolTask {
  key: string;
  source: string;
}
