// Optimizers over float32 parameters, updated in place: SGD (with momentum), Adam, AdamW, and
// lazy (sparse) Adam for tables whose gradient is a set of touched rows: only those rows of
// the parameter and its moments change, with the global step's bias correction (as
// TensorFlow's LazyAdam). Learning-rate groups come from `@lr(x)`, decay from the language.
import type { ParamInfo, ParamOptimizerKind } from '../../src/ir/graph.js';
import type { SparseGrad } from '../backends/row-sums.js';
import type { RowsUpdate } from '../backends/backend.js';
import { fail } from '../../src/diagnostics/diagnostic.js';
import { CHUNK_SQUARES_TASK, DENSE_ADAM_TASK, LAZY_ADAM_TASK } from '../../codegen/host/experts.js';
import { isShared, sharedFloat32, type WorkerPool } from '../pool.js';

export type OptimizerKind = 'sgd' | 'adam' | 'adamw';

export interface OptimizerConfig {
  kind: OptimizerKind;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW, SGD); Adam adds none. */
  weightDecay: number;
  momentum: number;
  /** Global gradient-norm clipping threshold; 0 turns it off. */
  clip: number;
  warmup: number;
  schedule: 'cosine' | 'constant';
  steps: number;
  /** The cosine schedule ends at lr * minLrRatio. */
  minLrRatio: number;
}

export const DEFAULT_OPTIMIZER: OptimizerConfig = {
  kind: 'adamw', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, momentum: 0.9, clip: 1, warmup: 0, schedule: 'cosine', steps: 100, minLrRatio: 0.1,
};

/** Optimizer settings from a library caller, checked with the codes `train { }` settings get (PEER0501). */
export function checkOptimizerConfig(c: Partial<OptimizerConfig>): void {
  const bad = (name: string, detail: string): never => fail('PEER0501', null, { name, detail });
  const num = (name: keyof OptimizerConfig, ok: (v: number) => boolean, detail: string) => {
    const v = c[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && ok(v))) bad(name, `${detail}, not ${JSON.stringify(v)}`);
  };
  if (c.kind !== undefined && !['sgd', 'adam', 'adamw'].includes(c.kind)) bad('kind', `must be 'sgd', 'adam' or 'adamw', not ${JSON.stringify(c.kind)}`);
  if (c.schedule !== undefined && c.schedule !== 'cosine' && c.schedule !== 'constant') bad('schedule', `must be 'cosine' or 'constant', not ${JSON.stringify(c.schedule)}`);
  num('lr', (v) => v > 0, 'must be a number > 0');
  num('beta1', (v) => v >= 0 && v < 1, 'must be in [0, 1)');
  num('beta2', (v) => v >= 0 && v < 1, 'must be in [0, 1)');
  num('eps', (v) => v > 0, 'must be a number > 0');
  num('weightDecay', (v) => v >= 0, 'must be >= 0');
  num('momentum', (v) => v >= 0 && v < 1, 'must be in [0, 1)');
  num('clip', (v) => v >= 0, 'must be >= 0 (0 turns clipping off)');
  num('warmup', (v) => Number.isInteger(v) && v >= 0, 'must be a whole number >= 0');
  num('steps', (v) => Number.isInteger(v) && v >= 1, 'must be a whole number >= 1');
  num('minLrRatio', (v) => v >= 0 && v <= 1, 'must be in [0, 1]');
  const known = Object.keys(DEFAULT_OPTIMIZER);
  for (const k of Object.keys(c)) if (!known.includes(k)) bad(k, `is not an optimizer setting; known settings are ${known.join(', ')}`);
}

/** A parameter's learning-rate multiplier at step t (0-based): constant, or linear from m to `to` over `over` steps. */
export function lrMultiplierAt(p: Pick<ParamInfo, 'lrMultiplier' | 'lrDecay'>, t: number): number {
  if (!p.lrDecay) return p.lrMultiplier;
  const f = Math.min(1, t / p.lrDecay.over);
  return p.lrMultiplier + (p.lrDecay.to - p.lrMultiplier) * f;
}

/** Learning rate at step t (0-based): linear warmup, then cosine decay (or constant). */
export function learningRate(c: OptimizerConfig, t: number): number {
  if (c.warmup > 0 && t < c.warmup) return (c.lr * (t + 1)) / c.warmup;
  if (c.schedule === 'constant') return c.lr;
  const span = Math.max(1, c.steps - c.warmup);
  const progress = Math.min(1, (t - c.warmup) / span);
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export interface Gradients {
  dense: Map<string, Float32Array>;
  sparse: Map<string, SparseGrad>;
}

/** Dense gradients of at least two chunks are summed chunk by chunk (on the pool when shared). */
const SQUARES_CHUNK = 1 << 16;

/** Chunk c's sum of squares of a (float64, in element order): the same on every thread count. */
function chunkSquares(a: Float32Array, c: number): number {
  let s = 0;
  const end = Math.min(a.length, (c + 1) * SQUARES_CHUNK);
  for (let i = c * SQUARES_CHUNK; i < end; i++) s += a[i]! * a[i]!;
  return s;
}

function denseSquares(d: Float32Array, chunkSums?: Float64Array): number {
  if (d.length < 2 * SQUARES_CHUNK) {
    let sq = 0;
    for (let i = 0; i < d.length; i++) sq += d[i]! * d[i]!;
    return sq;
  }
  const chunks = Math.ceil(d.length / SQUARES_CHUNK);
  let sq = 0;
  for (let c = 0; c < chunks; c++) sq += chunkSums ? chunkSums[c]! : chunkSquares(d, c);
  return sq;
}

function sparseSquares(g: Gradients): number {
  let sq = 0;
  for (const s of g.sparse.values()) {
    if (s.sumSquares !== undefined) sq += s.sumSquares;
    else if (s.values) for (let i = 0; i < s.values.length; i++) sq += s.values[i]! * s.values[i]!;
    else throw new Error('internal: gradient rows kept on a device came without their sum of squares');
  }
  return sq;
}

export function gradientNorm(g: Gradients): number {
  let sq = 0;
  for (const d of g.dense.values()) sq += denseSquares(d);
  return Math.sqrt(sq + sparseSquares(g));
}

/**
 * gradientNorm with the chunks of large shared dense gradients summed on the pool's threads
 * (a 50M-parameter mixture spent 60 ms of its step here on one thread): the same value, since
 * each chunk is summed in order and the chunks are added in order.
 */
export async function gradientNormThreaded(g: Gradients, pool: WorkerPool | undefined): Promise<number> {
  if (!pool || pool.threads < 2) return gradientNorm(g);
  let sq = 0;
  for (const d of g.dense.values()) {
    if (d.length < 4 * SQUARES_CHUNK || !isShared(d)) {
      sq += denseSquares(d);
      continue;
    }
    const sums = new Float64Array(new SharedArrayBuffer(8 * Math.ceil(d.length / SQUARES_CHUNK)));
    await pool.run(CHUNK_SQUARES_TASK, [d, sums, SQUARES_CHUNK], sums.length, { outputs: [1] });
    sq += denseSquares(d, sums);
  }
  return Math.sqrt(sq + sparseSquares(g));
}

/** The update of a sparse table's touched rows run by the backend, where it keeps the table with its state (Executor.updateRows). */
export type RowsUpdater = (name: string, sparse: SparseGrad, update: RowsUpdate) => Promise<{ done: boolean; finite: boolean }>;

/** State arrays of a table's update, in the order RowsUpdate names them: Adam's m and v, SGD's velocity, Adagrad's sum of squares. */
export function stateCount(kind: ParamOptimizerKind, c: OptimizerConfig): number {
  return kind === 'adam' || kind === 'adamw' ? 2 : kind === 'adagrad' || (kind === 'sgd' && c.momentum > 0) ? 1 : 0;
}

export interface StepReport {
  lr: number;
  gradNorm: number;
  clipped: boolean;
  /** Every updated weight is finite. */
  finite: boolean;
}

/** One parameter's optimization at one step: the run's settings with its @optim over them. */
interface ParamStep {
  kind: ParamOptimizerKind;
  lr: number;
  decay: number;
  /** Gradient scale: the global clip's, times this parameter's own clip's. */
  scale: number;
}

/** Dense parameters of at least this many elements are updated on the pool's threads. */
const DENSE_ON_POOL = 1 << 16;

/** Adagrad's epsilon (PyTorch's default): its accumulator starts at 0, so it must be tiny. */
const ADAGRAD_EPS = 1e-10;

/** The kind a parameter is optimized with: its @optim's, else the run's. */
export function kindOf(p: ParamInfo, c: OptimizerConfig): ParamOptimizerKind {
  return p.optim?.kind ?? c.kind;
}

/** Its learning rate at step t (0-based): @optim(lr=) is absolute, else the run's rate times @lr. */
export function paramLearningRate(p: ParamInfo, c: OptimizerConfig, t: number): number {
  const o = p.optim;
  if (o?.lr !== undefined) return learningRate({ ...c, lr: o.lr, schedule: o.schedule ?? c.schedule }, t);
  return learningRate(o?.schedule ? { ...c, schedule: o.schedule } : c, t) * lrMultiplierAt(p, t);
}

function squares(a: Float32Array): number {
  let sq = 0;
  for (let i = 0; i < a.length; i++) sq += a[i]! * a[i]!;
  return sq;
}

export class Optimizer {
  /** First moments (Adam) or velocity (SGD), by parameter name. */
  readonly m = new Map<string, Float32Array>();
  /** Second moments (Adam) or the sum of squares (Adagrad), by parameter name. */
  readonly v = new Map<string, Float32Array>();
  /** Steps taken (the bias correction's t). */
  t = 0;

  /**
   * `options.state`: where a sparse table's Adam moments live when the backend keeps them beside
   * the table (its lazy Adam then updates them there: Trainer passes the executor's tableState).
   */
  constructor(readonly config: OptimizerConfig, private readonly infos: readonly ParamInfo[], options: { state?: (name: string, count: number) => Float32Array[] | undefined } = {}) {
    for (const p of infos) {
      if (p.role !== 'param') continue;
      const size = p.shape.reduce((a, b) => a * b, 1);
      const kind = kindOf(p, config);
      const count = stateCount(kind, config);
      if (p.sparse && count > 0) {
        const placed = options.state?.(p.name, count);
        if (placed) {
          if (kind === 'adagrad') this.v.set(p.name, placed[0]!);
          else {
            this.m.set(p.name, placed[0]!);
            if (count === 2) this.v.set(p.name, placed[1]!);
          }
          continue;
        }
      }
      // Filled now, not on first touch: a sparse table's state would otherwise fault in page by
      // page during the first epoch, making early steps slow and hiding the real memory use.
      // Shared memory: the wasm-simd backend's threads update the touched rows in place.
      // Skewed against the weights and each other (pool.ts skewBytes): the update streams all four.
      if (kind === 'adam' || kind === 'adamw' || (kind === 'sgd' && config.momentum > 0)) this.m.set(p.name, sharedFloat32(size, 1).fill(0));
      if (kind !== 'sgd') this.v.set(p.name, sharedFloat32(size, 2).fill(0));
    }
  }

  /** Applies one step (`gradNorm`: the caller's gradientNorm(g), when it already has it). */
  step(params: Map<string, Float32Array>, g: Gradients, gradNorm = gradientNorm(g)): StepReport {
    const s = this.begin(gradNorm);
    for (const p of this.infos) if (p.role === 'param') this.updateParam(p, this.paramStep(p, s, g), s, params, g, true);
    return this.end(s);
  }

  /**
   * The same step with the touched rows of sparse tables updated in the backend (`rowsUpdate`,
   * where it keeps the table and its state) or, for lazy Adam, split across a worker pool's
   * threads (the tables and their moments must be in shared memory); the rest as step().
   */
  async stepThreaded(pool: WorkerPool | undefined, params: Map<string, Float32Array>, g: Gradients, gradNorm = gradientNorm(g), rowsUpdate?: RowsUpdater): Promise<StepReport> {
    const threads = pool && pool.threads > 1 ? pool : undefined;
    if (!threads && !rowsUpdate) return this.step(params, g, gradNorm);
    const s = this.begin(gradNorm);
    const flags = new Int32Array(new SharedArrayBuffer(4));
    for (const p of this.infos) {
      if (p.role !== 'param') continue;
      const ps = this.paramStep(p, s, g);
      const u = this.rowsUpdate(p.name, ps, s);
      const lazy = u.kind === 'adam';
      const { beta1, beta2 } = this.config;
      const { stepSize, epsHat, keep } = lazy ? u : { stepSize: 0, epsHat: 0, keep: 1 };
      const dense = g.dense.get(p.name), w = params.get(p.name)!, m = this.m.get(p.name)!, v = this.v.get(p.name)!;
      if (threads && lazy && dense && dense.length >= DENSE_ON_POOL && isShared(w) && isShared(m) && isShared(v)) {
        // Large dense parameters (matrix experts, embeddings) on the pool's threads; a gradient
        // not in shared memory is copied into a kept shared buffer first (the pool's staging).
        await threads.run(DENSE_ADAM_TASK, [w, m, v, dense, flags, ps.scale, beta1, beta2, stepSize, epsHat, keep], dense.length, { minLanes: DENSE_ON_POOL / 2 });
      } else this.updateParam(p, ps, s, params, g, false);
      const sparse = g.sparse.get(p.name);
      if (!sparse || sparse.rows.length === 0) continue;
      const rowSize = sparse.rowSize;
      if (rowsUpdate) {
        const r = await rowsUpdate(p.name, sparse, u);
        if (r.done) {
          if (!r.finite) flags[0] = 1;
          continue;
        }
      }
      if (!sparse.values) throw new Error(`internal: the gradient rows of ${p.name} stayed on the device, but the device did not update them`);
      if (!lazy) this.updateSparse(p, ps, s, params, sparse);
      else if (threads) {
        const args = [params.get(p.name)!, m, v, sparse.values!, sparse.rows, flags, rowSize, ps.scale, beta1, beta2, stepSize, epsHat, keep];
        await threads.run(LAZY_ADAM_TASK, args, sparse.rows.length, { minLanes: 64 });
      } else {
        this.updateSparse(p, ps, s, params, sparse);
      }
    }
    if (flags[0]) this.updateSum = NaN;
    return this.end(s);
  }

  /** p's update of its touched rows at this step, for the backend (the host loop's settings and state). */
  private rowsUpdate(name: string, ps: ParamStep, s: ReturnType<Optimizer['begin']>): RowsUpdate {
    const c = this.config;
    if (ps.kind === 'sgd') return { kind: 'sgd', m: this.m.get(name), scale: ps.scale, momentum: c.momentum, lr: ps.lr, decay: ps.decay };
    if (ps.kind === 'adagrad') return { kind: 'adagrad', v: this.v.get(name)!, scale: ps.scale, lr: ps.lr, keep: 1 - ps.lr * ps.decay, eps: ADAGRAD_EPS };
    return { kind: 'adam', m: this.m.get(name)!, v: this.v.get(name)!, scale: ps.scale, b1: c.beta1, b2: c.beta2, stepSize: (ps.lr / s.bc1) * Math.sqrt(s.bc2), epsHat: c.eps * Math.sqrt(s.bc2), keep: 1 - ps.lr * ps.decay };
  }

  private begin(gradNorm: number) {
    const c = this.config;
    const lr = learningRate(c, this.t);
    const scale = c.clip > 0 && gradNorm > c.clip ? c.clip / gradNorm : 1;
    this.t++;
    return { lr, gradNorm, scale, bc1: 1 - Math.pow(c.beta1, this.t), bc2: 1 - Math.pow(c.beta2, this.t) };
  }

  private paramStep(p: ParamInfo, s: ReturnType<Optimizer['begin']>, g: Gradients): ParamStep {
    const c = this.config;
    const kind = kindOf(p, c);
    const decay = p.optim?.weightDecay ?? (p.weightDecay && kind !== 'adam' && kind !== 'adagrad' ? c.weightDecay : 0);
    let scale = s.scale;
    const clip = p.optim?.clip;
    if (clip !== undefined) {
      const sparse = g.sparse.get(p.name), dense = g.dense.get(p.name);
      const sq = (dense ? squares(dense) : 0) + (sparse ? (sparse.sumSquares ?? squares(sparse.values!)) : 0);
      const norm = Math.sqrt(sq) * scale;
      if (norm > clip) scale *= clip / norm;
    }
    return { kind, lr: paramLearningRate(p, c, this.t - 1), decay, scale };
  }

  private end(s: ReturnType<Optimizer['begin']>): StepReport {
    const finite = Number.isFinite(this.updateSum);
    this.updateSum = 0;
    return { lr: s.lr, gradNorm: s.gradNorm, clipped: s.scale < 1, finite };
  }

  /** The dense gradient of p, and its sparse rows when `withSparse`. */
  private updateParam(p: ParamInfo, ps: ParamStep, s: ReturnType<Optimizer['begin']>, params: Map<string, Float32Array>, g: Gradients, withSparse: boolean): void {
    const w = params.get(p.name)!;
    const dense = g.dense.get(p.name);
    const sparse = withSparse ? g.sparse.get(p.name) : undefined;
    if (dense) this.update(p.name, w, dense, 0, w.length, 0, ps, s.bc1, s.bc2);
    if (sparse) this.updateSparse(p, ps, s, params, sparse);
  }

  /** The touched rows of p's sparse gradient on this thread. */
  private updateSparse(p: ParamInfo, ps: ParamStep, s: ReturnType<Optimizer['begin']>, params: Map<string, Float32Array>, sparse: SparseGrad): void {
    const w = params.get(p.name)!;
    // Row ids index the table as its gathers read it (a stacked [L, N, d] table as L*N rows).
    const rowSize = sparse.rowSize, values = sparse.values;
    if (!values) throw new Error(`internal: the gradient rows of ${p.name} stayed on a device; the host cannot update them`);
    sparse.rows.forEach((row, i) => this.update(p.name, w, values, row * rowSize, rowSize, i * rowSize - row * rowSize, ps, s.bc1, s.bc2));
  }

  /** Sum of updated weights: non-finite iff some updated weight is (cheaper than testing each). */
  private updateSum = 0;

  /** Updates w[from .. from+count) with gradient g[i + gOffset]. */
  private update(name: string, w: Float32Array, g: Float32Array, from: number, count: number, gOffset: number, ps: ParamStep, bc1: number, bc2: number): void {
    const c = this.config;
    const m = this.m.get(name), v = this.v.get(name);
    const end = from + count;
    const { lr, decay, scale } = ps;
    // A local accumulator: a number field updated in the loop would box a heap number per element.
    let check = 0;
    if (ps.kind === 'sgd') {
      const mom = c.momentum;
      for (let i = from; i < end; i++) {
        let d = g[i + gOffset]! * scale;
        if (m) d = m[i] = mom * m[i]! + d;
        const wi = (w[i] = w[i]! - lr * (d + decay * w[i]!));
        check += wi * 0;
      }
    } else if (ps.kind === 'adagrad') {
      // Lazy on sparse tables like the rest: only touched rows accumulate (PyTorch's sparse Adagrad).
      const vv = v!, keep = 1 - lr * decay;
      for (let i = from; i < end; i++) {
        const d = g[i + gOffset]! * scale;
        const vi = (vv[i] = vv[i]! + d * d);
        const wi = (w[i] = w[i]! * keep - (lr * d) / (Math.sqrt(vi) + ADAGRAD_EPS));
        check += wi * 0;
      }
    } else {
      // Divisions hoisted: lr * (m / bc1) / (sqrt(v / bc2) + eps) = step * m / (sqrt(v) + eps * sqrt(bc2)).
      const b1 = c.beta1, b2 = c.beta2, mm = m!, vv = v!;
      const stepSize = (lr / bc1) * Math.sqrt(bc2), epsHat = c.eps * Math.sqrt(bc2), keep = 1 - lr * decay;
      for (let i = from; i < end; i++) {
        const d = g[i + gOffset]! * scale;
        const mi = (mm[i] = b1 * mm[i]! + (1 - b1) * d);
        const vi = (vv[i] = b2 * vv[i]! + (1 - b2) * d * d);
        const wi = (w[i] = w[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) + epsHat));
        check += wi * 0;
      }
    }
    this.updateSum += check;
  }
}
