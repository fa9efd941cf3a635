// One training step and evaluation of a model, on any backend: the training program (loss,
// gradients, running statistics) runs as generated kernels with the weights passed per call;
// sparse tables get their touched rows summed by a kernel and updated lazily.
import { compileTraining, type TrainingProgram } from '../../src/autodiff/differentiate.js';
import { factorRowGradients } from '../../src/autodiff/factor-rows.js';
import type { IRModule, ParamInfo } from '../../src/ir/graph.js';
import { Executor, NonFiniteIndex, type F32Tensor } from '../executor.js';
import { addOuterRows, outerRows } from '../backends/backend.js';
import { resolveBackend, type BackendName, type RegisteredBackend } from '../backends/info.js';
import { gradientNormThreaded, Optimizer, type Gradients, type OptimizerConfig, type StepReport } from './optim.js';
import type { SparseGrad } from '../backends/row-sums.js';
import type { Batch } from './data.js';
import { isShared, sharedFloat32, toShared, type WorkerPool } from '../pool.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';

export interface StepResult extends StepReport {
  /** The objective: the task's loss plus the aux_loss terms, where the program has any. */
  loss: number;
  /** The weighted sum of the aux_loss terms, where the program has any. */
  aux?: number;
  /** The program's metric values (metric(x, value, name)), by name, where it has any. */
  metrics?: Record<string, number>;
  tokens: number;
  ms: number;
  /** Milliseconds per kernel label in this step. */
  timings: Map<string, number>;
}

export interface EvalResult {
  loss: number;
  /** Fraction of predictions whose arg-max is the target. */
  accuracy: number;
  /** Per sparse table: fraction of its rows (experts) chosen at least once, and the KL divergence of accumulated router weights from uniform. */
  /** Per table: the fraction of experts selected, KL of their load from uniform, and `cap`, the most the evaluation's selections allow (selections / rows, at most 1). */
  experts: { param: string; usage: number; unevenness: number; cap: number; counts: Float64Array }[];
}

/** Loss or gradients became NaN or infinite; the step was not applied. */
export class Diverged extends Error {
  constructor(readonly what: string) {
    super(`${what} is not finite`);
  }
}

export interface TrainerOptions {
  backend: BackendName | 'auto';
  optimizer: OptimizerConfig;
  /** Seed of training-time noise (dropout, Gumbel); the step is the optimizer's step count. */
  seed?: number;
  /** wasm-simd: threads (the caller included) for kernels, gathers, row sums and lazy Adam. */
  threads?: number;
  /** wasm-simd: false forces the plain SIMD128 path where relaxed SIMD exists. */
  relaxedSimd?: boolean;
  /** webgpu: bind at most this many bytes per buffer (tables then train in chunks of rows; tests use it). */
  maxBindingBytes?: number;
}

export class Trainer {
  readonly train: TrainingProgram;
  readonly evaluation: TrainingProgram;
  readonly optimizer: Optimizer;
  readonly backend: RegisteredBackend;
  private readonly trainExec: Executor;
  private readonly evalExec: Executor;
  private readonly params: ReadonlyMap<string, ParamInfo>;
  /** wasm-simd with more than one thread: the executors' worker pool. */
  private readonly pool: WorkerPool | undefined;

  /** `weights` are used in place: the trainer updates these arrays. */
  constructor(readonly module: IRModule, readonly weights: Map<string, Float32Array>, options: TrainerOptions) {
    this.backend = resolveBackend(options.backend);
    // Where the backend reads tables in place, the expert rows are read by fused ops in training
    // too (no [T, h, k, d] gathered copies, forward or backward).
    const fuseExpertReads = this.backend.tablesInPlace === true;
    // There too, a table's gradient rows that are outer products come as their two factors, which
    // the backend multiplies as it sums them (no [slots, d] rows built, written and read back).
    const train = compileTraining(module, { gradients: true, fuseExpertReads });
    this.train = fuseExpertReads ? factorRowGradients(train) : train;
    this.evaluation = compileTraining(module, { gradients: false, fuseExpertReads });
    const exec = { paramsAsArguments: true, threads: options.threads, relaxedSimd: options.relaxedSimd, maxBindingBytes: options.maxBindingBytes, viewOutputs: true };
    this.trainExec = new Executor(this.train.module, weights, this.backend.name, { ...exec, training: true });
    this.evalExec = new Executor(this.evaluation.module, weights, this.backend.name, { ...exec, training: false });
    this.pool = this.trainExec.pool;
    if (this.pool) {
      // The pool's threads update the tables in place: weights not yet in shared memory are
      // moved there once (the map's entries are replaced; seeded and loaded weights already are).
      for (const [name, w] of weights) if (!isShared(w)) weights.set(name, toShared(w));
      for (const e of [this.trainExec, this.evalExec]) for (const name of e.params.keys()) e.params.set(name, weights.get(name)!);
    }
    // Tables the fused expert ops read move where the kernels read them (the map's entries are replaced).
    // One executor after the other: the second must see the first's tables where they now are.
    for (const exec of [this.trainExec, this.evalExec])
      for (const [name, w] of exec.placeTables()) {
        weights.set(name, w);
        for (const e of [this.trainExec, this.evalExec]) if (e.params.has(name)) e.params.set(name, w);
      }
    this.params = new Map(module.params.map((p) => [p.name, p]));
    this.optimizer = new Optimizer(options.optimizer, module.params, { state: (name, count) => this.trainExec.tableState(name, count) });
    this.seed = options.seed ?? 0;
  }

  private readonly seed: number;

  /** Dense gradients of factored tables, kept between steps (gradients' arrays live until its next call). */
  private readonly factoredGradients = new Map<string, Float32Array>();

  /**
   * A zero-filled shared array for `name`'s gradient, skewed against its weights and moments (the
   * pool's dense Adam reads it in place): the last step's array, cleared, where it has the size;
   * a fresh SharedArrayBuffer each step cost more than the sums written into it (~1 ms at 1024^2).
   */
  private zeroedGradient(name: string, length: number): Float32Array {
    let g = this.factoredGradients.get(name);
    if (g?.length === length) g.fill(0);
    else this.factoredGradients.set(name, (g = sharedFloat32(length, 3)));
    return g;
  }

  private inputsOf(p: TrainingProgram, batch: Batch): Map<string, F32Tensor> {
    const inputs = new Map(batch.inputs);
    if (p.targets) inputs.set(p.targets.name, batch.targets);
    return inputs;
  }

  /** Loss and gradients of one batch, without updating anything (the arrays are valid until the next call). */
  async gradients(batch: Batch): Promise<{ loss: number; aux?: number; metrics?: Record<string, number>; grads: Gradients; buffers: Map<string, Float32Array>; timings: Map<string, number> }> {
    const L = this.train.layout;
    let result;
    // Noise is a function of (seed, step): a resumed run draws what an uninterrupted one would.
    this.trainExec.noise = { seed: this.seed, step: this.optimizer.t };
    try {
      result = await this.trainExec.forward(this.inputsOf(this.train, batch));
    } catch (e) {
      if (e instanceof NonFiniteIndex) throw new Diverged('a value in the forward pass');
      throw e;
    }
    const { outputs, timings } = result;
    const loss = outputs[L.loss]!.data[0]!;
    const dense = new Map(L.dense.map((d) => [d.param, outputs[d.output]!.data]));
    const sparse = new Map<string, SparseGrad>();
    for (const name of new Set(L.sparse.map((s) => s.param))) {
      const parts = L.sparse.filter((s) => s.param === name);
      const ids = concat(parts.map((s) => outputs[s.indices]!.data));
      const info = this.params.get(name)!;
      // Factored rows are [T, d] token vectors times per-slot coefficients: rows of the table's last axis.
      const factoredSize = info.shape.at(-1)!;
      const factorsOf = (s: (typeof parts)[number]) => (s.factors ? { coef: outputs[s.factors.coef]!.data, vec: outputs[s.factors.vec]!.data } : undefined);
      const t0 = performance.now();
      const one = parts.length === 1 ? factorsOf(parts[0]!) : undefined;
      if (info.sparse && one) {
        // Summed for the backend's own update of the rows (a GPU keeps the sums where the table is), unless a dense gradient joins them.
        const forUpdate = !L.dense.some((d) => d.param === name);
        sparse.set(name, await this.trainExec.sumRows(ids, one, factoredSize, name, forUpdate));
        timings.set('row sums (sparse gradients)', (timings.get('row sums (sparse gradients)') ?? 0) + performance.now() - t0);
        continue;
      }
      if (!info.sparse && one) {
        // A dense-optimised table (matrix experts of a mixture, say): the factors go straight into its gradient,
        // in shared memory skewed against the weights and moments: the pool's dense Adam reads it in place.
        const full = this.zeroedGradient(name, info.shape.reduce((a, b) => a * b, 1));
        let label = await this.trainExec.addFactoredRows(full, ids, one, factoredSize, name);
        if (!label) {
          // A backend without such kernels (webgpu's placed sub-key tables): its row sums, by row, then written whole rows.
          // One row per id only: a matrix expert's block of rows per id is the grouped products' case above.
          const summed = one.coef.length === ids.length ? this.trainExec.sumFactoredRowsByBackend(ids, one, factoredSize, name) : undefined;
          if (summed) {
            const s = await summed;
            for (let i = 0; i < s.rows.length; i++) full.set(s.values!.subarray(i * factoredSize, (i + 1) * factoredSize), s.rows[i]! * factoredSize);
            label = 'factored row gradients into dense tables (by row)';
          } else {
            addOuterRows(full, ids, one, factoredSize);
            label = 'factored row gradients into dense tables (host)';
          }
        }
        dense.set(name, full);
        timings.set(label, (timings.get(label) ?? 0) + performance.now() - t0);
        continue;
      }
      const rows = concat(parts.map((s) => { const f = factorsOf(s); return f ? outerRows(f, factoredSize) : outputs[s.rows]!.data; }));
      const rowSize = rows.length / ids.length;
      if (info.sparse) {
        sparse.set(name, await this.trainExec.sumRows(ids, rows, rowSize, name));
      } else {
        // A dense-optimised table whose gradient came as rows (a small key table, an embedding):
        // added straight into a dense gradient, no bucketing needed.
        const full = new Float32Array(info.shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < ids.length; i++) {
          const dst = ids[i]! * rowSize, src = i * rowSize;
          for (let c = 0; c < rowSize; c++) full[dst + c] = full[dst + c]! + rows[src + c]!;
        }
        dense.set(name, full);
      }
      timings.set('row sums (sparse gradients)', (timings.get('row sums (sparse gradients)') ?? 0) + performance.now() - t0);
    }
    const buffers = new Map(L.buffers.map((b) => [b.name, outputs[b.output]!.data]));
    const aux = L.aux === undefined ? undefined : outputs[L.aux]!.data[0]!;
    const metrics = L.metrics && Object.fromEntries(L.metrics.map((m) => [m.name, m.outputs.reduce((a, o) => a + outputs[o]!.data[0]!, 0) / m.outputs.length]));
    return { loss, aux, metrics, grads: { dense, sparse }, buffers, timings };
  }

  async step(batch: Batch): Promise<StepResult> {
    const t0 = performance.now();
    const { loss, aux, metrics, grads, buffers, timings } = await this.gradients(batch);
    if (!Number.isFinite(loss)) throw new Diverged('the loss');
    const tNorm = performance.now();
    const norm = await gradientNormThreaded(grads, this.pool);
    timings.set('gradient norm', performance.now() - tNorm);
    if (!Number.isFinite(norm)) throw new Diverged('the gradient');
    for (const [name, v] of buffers) this.weights.get(name)!.set(v);
    this.lastTouched = new Map([...grads.sparse].map(([name, s]) => [name, { rows: s.rows.length, rowSize: this.params.get(name)!.shape.at(-1)! }]));
    const t1 = performance.now();
    // Tables a device backend updated where it keeps them: newer there than in their host arrays (syncWeights).
    const onDevice = new Set<string>();
    const report = await this.optimizer.stepThreaded(this.pool, this.weights, grads, norm, async (name, sparse, update) => {
      const r = await this.trainExec.updateRows(name, sparse, update, grads.dense.has(name));
      if (r.onDevice) onDevice.add(name);
      return r;
    });
    timings.set('optimizer', performance.now() - t1);
    this.reportChanges(grads, buffers, onDevice);
    if (!report.finite) throw new Diverged('the weights');
    return { ...report, loss, ...(aux === undefined ? {} : { aux }), ...(metrics ? { metrics } : {}), tokens: batch.tokens, ms: performance.now() - t0, timings };
  }

  /**
   * Tells both executors what the step changed (a device backend's copies follow): touched rows
   * of sparse tables, all of every parameter with a dense gradient, the running statistics.
   */
  private reportChanges(grads: Gradients, buffers: ReadonlyMap<string, Float32Array>, onDevice: ReadonlySet<string>): void {
    for (const exec of [this.trainExec, this.evalExec]) {
      for (const name of buffers.keys()) exec.paramsChanged(name);
      for (const name of grads.dense.keys()) exec.paramsChanged(name);
      for (const [name, s] of grads.sparse)
        if (!grads.dense.has(name) && !onDevice.has(name) && s.rows.length) exec.paramsChanged(name, s.rows, s.rowSize);
    }
  }

  /**
   * Brings the weights' arrays and the optimizer's state up to date where a device backend
   * updated tables in place (webgpu): call before reading them (checkpoints, exports, another
   * backend). A no-op elsewhere.
   */
  async syncWeights(): Promise<void> {
    await this.trainExec.syncToHost();
    await this.evalExec.syncToHost();
  }

  /**
   * The weights' arrays were changed from outside (loaded, edited): every parameter is sent
   * to a device backend again before the next step.
   */
  weightsChanged(): void {
    // The device's newer values would be lost, and what was written mixed with stale rows.
    const newer = this.trainExec.paramsNewerOnDevice();
    if (newer.length) throw new CompileError(diagnostic('PEER0712', null, { names: newer.join(', ') }));
    for (const exec of [this.trainExec, this.evalExec]) for (const name of this.weights.keys()) exec.paramsChanged(name);
  }

  async evaluate(batches: readonly Batch[]): Promise<EvalResult> {
    const L = this.evaluation.layout;
    let lossSum = 0, correct = 0, total = 0;
    const stats = new Map<string, { counts: Float64Array; weights: Float64Array; slices: number }>();
    // A table that several calls share (one pool, several layers) is also reported per call, as `U (line 12)`.
    const sites = new Map<string, Set<string>>();
    for (const r of L.router) if (r.site && r.slices === 1) sites.set(r.param, (sites.get(r.param) ?? new Set()).add(r.site));
    const keysOf = (r: (typeof L.router)[number]) => [r.param, ...(r.site && (sites.get(r.param)?.size ?? 0) > 1 ? [`${r.param} (${r.site})`] : [])];
    for (const batch of batches) {
      let outputs;
      try {
        ({ outputs } = await this.evalExec.forward(this.inputsOf(this.evaluation, batch)));
      } catch (e) {
        if (e instanceof NonFiniteIndex) throw new Diverged('a value in the validation forward pass');
        throw e;
      }
      const loss = outputs[L.loss]!.data[0]!;
      if (!Number.isFinite(loss)) throw new Diverged('the validation loss');
      lossSum += loss;
      if (this.evaluation.targets) {
        const logits = outputs[L.logits]!.data;
        const t = batch.targets.data;
        const classes = logits.length / t.length;
        for (let i = 0; i < t.length; i++) {
          let best = 0;
          for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
          if (best === t[i]) correct++;
        }
        total += t.length;
      }
      for (const r of L.router) {
        const ids = outputs[r.indices]!.data, w = r.weights === undefined ? undefined : outputs[r.weights]!.data;
        for (const key of keysOf(r)) {
          let s = stats.get(key);
          if (!s) stats.set(key, (s = { counts: new Float64Array(r.rows), weights: new Float64Array(r.rows), slices: r.slices }));
          for (let i = 0; i < ids.length; i++) {
            s.counts[ids[i]!] = s.counts[ids[i]!]! + 1;
            s.weights[ids[i]!] = s.weights[ids[i]!]! + (w ? w[i]! : 1);
          }
        }
      }
    }
    // A stacked table reports each slice (each layer's pool) on its own, as U[0], U[1], ...
    const experts = [...stats].flatMap(([param, s]) => {
      const per = s.counts.length / s.slices;
      return Array.from({ length: s.slices }, (_, i) => {
        const counts = s.counts.subarray(i * per, (i + 1) * per), weights = s.weights.subarray(i * per, (i + 1) * per);
        const selections = counts.reduce((a, c) => a + c, 0);
        return { param: s.slices > 1 ? `${param}[${i}]` : param, counts, usage: counts.reduce((a, c) => a + (c > 0 ? 1 : 0), 0) / counts.length, unevenness: klFromUniform(weights), cap: Math.min(1, selections / counts.length) };
      });
    });
    return { loss: lossSum / batches.length, accuracy: total ? correct / total : NaN, experts };
  }

  /** The backend as it runs here (threads, SIMD path), for reports. */
  describe(): string {
    return this.trainExec.describe();
  }

  /** Bytes copied between host and device so far (both programs: one device), where the backend has one. */
  transfers(): { up: number; down: number; params: number } | undefined {
    return this.trainExec.transfers();
  }

  /**
   * The machine's yardsticks on this backend, for reports: the best 512^3 matmul's GFLOP/s, and
   * random row reads of the largest placed table (undefined without one).
   */
  async yardsticks(): Promise<{ matmulGflops: number; rowReads?: { gbPerS: number; rows: number; rowBytes: number } }> {
    return { matmulGflops: await this.trainExec.matmulReference(), rowReads: await this.trainExec.rowReadReference() };
  }

  /** Rows of each sparse table the last step touched (summed and updated by lazy Adam), and their row sizes. */
  touchedRows(): Map<string, { rows: number; rowSize: number }> {
    return this.lastTouched;
  }

  private lastTouched = new Map<string, { rows: number; rowSize: number }>();

  /** Steps that run slower than they could on this backend, and why (known after their first call). */
  notes(): string[] {
    return [...new Set([...this.trainExec.notes(), ...this.evalExec.notes()])];
  }

  destroy(): void {
    this.trainExec.destroy();
    this.evalExec.destroy();
  }
}

/** KL(p || uniform) of non-negative weights normalised to p: 0 when perfectly even, log N at worst. */
export function klFromUniform(w: Float64Array): number {
  const sum = w.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) return NaN;
  let kl = 0;
  for (const x of w) if (x > 0) kl += (x / sum) * Math.log((x / sum) * w.length);
  return kl;
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
