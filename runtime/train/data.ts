// Datasets: byte-level text from any file (train / validation split), and a built-in synthetic
// key -> value recall task. Batches are a pure function of (seed, split, step), so the data
// position of a run is its step number and a resumed run sees exactly the same batches.
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import type { IRFunction, IRModule } from '../../src/ir/graph.js';
import { uniformAt } from '../../src/interp/rng.js';
import { entryFunction } from '../../src/interp/interpreter.js';
import type { F32Tensor } from '../executor.js';

export interface Batch {
  inputs: Map<string, F32Tensor>;
  targets: F32Tensor;
  /** Tokens (predictions) in the batch, for throughput. */
  tokens: number;
}

export type Split = 'train' | 'validation';

export interface Dataset {
  readonly kind: 'text' | 'recall';
  describe(): string;
  batch(split: Split, step: number): Batch;
}

const misfit = (detail: string) => new CompileError(diagnostic('PEER0704', null, { detail }));

/** The entry's one index input (what the data feeds), with its rank. */
function indexInput(fn: IRFunction, task: string): { name: string; rank: number; id: number } {
  const ins = fn.inputs.map((id) => fn.graph.node(id));
  const idx = ins.filter((n) => n.types[0]!.dtype === 'index');
  if (ins.length !== 1 || idx.length !== 1)
    throw misfit(`the ${task} task feeds one index input, but model '${fn.name}' takes ${ins.map((n) => `${n.attrs.name as string}: ${n.types[0]!.dtype}[${n.types[0]!.shape.join(', ')}]`).join(', ')}`);
  return { name: idx[0]!.attrs.name as string, rank: idx[0]!.types[0]!.shape.length, id: idx[0]!.id };
}

function classesOf(fn: IRFunction): number | undefined {
  const t = fn.graph.typeOf(fn.outputs[0]!);
  return t.shape[t.shape.length - 1]?.value;
}

export class TextDataset implements Dataset {
  readonly kind = 'text';
  private readonly input: string;
  private readonly trainEnd: number;

  constructor(private readonly bytes: Uint8Array, private readonly source: string, m: IRModule, private readonly batchSize: number, private readonly seq: number, private readonly seed: number, validationFraction = 0.1) {
    const fn = entryFunction(m);
    const inp = indexInput(fn, 'text');
    if (inp.rank !== 2) throw misfit(`the text task feeds byte sequences [batch, seq], but input '${inp.name}' has rank ${inp.rank}`);
    const classes = classesOf(fn);
    if (classes === undefined || classes < 256) throw misfit(`the text task predicts bytes (256 classes), but the model's output has ${classes ?? 'a symbolic number of'} classes`);
    this.input = inp.name;
    this.trainEnd = Math.floor(bytes.length * (1 - validationFraction));
    const shortest = Math.min(this.trainEnd, bytes.length - this.trainEnd);
    if (shortest < seq + 2) throw misfit(`${source} has ${bytes.length} bytes; with a ${Math.round(validationFraction * 100)}% validation split each part needs more than seq + 1 = ${seq + 1} bytes`);
  }

  describe(): string {
    return `text ${this.source}: ${this.trainEnd.toLocaleString('en-US')} training bytes, ${(this.bytes.length - this.trainEnd).toLocaleString('en-US')} validation bytes; batches of ${this.batchSize} x ${this.seq}`;
  }

  batch(split: Split, step: number): Batch {
    const [lo, hi] = split === 'train' ? [0, this.trainEnd] : [this.trainEnd, this.bytes.length];
    const b = this.batchSize, s = this.seq;
    const x = new Float32Array(b * s), y = new Float32Array(b * s);
    for (let r = 0; r < b; r++) {
      const start = lo + Math.floor(uniformAt(this.seed, step * b + r, split === 'train' ? 11 : 12) * (hi - lo - s - 1));
      for (let j = 0; j < s; j++) {
        x[r * s + j] = this.bytes[start + j]!;
        y[r * s + j] = this.bytes[start + j + 1]!;
      }
    }
    return { inputs: new Map([[this.input, { shape: [b, s], data: x }]]), targets: { shape: [b, s], data: y }, tokens: b * s };
  }
}

/**
 * Memorise K random (key, value) pairs: key k's value is a seeded draw from the classes. Keys
 * are the rows of the table the model looks its input up in; validation asks the same pairs.
 */
export class RecallDataset implements Dataset {
  readonly kind = 'recall';
  private readonly input: string;
  readonly keys: number;
  readonly classes: number;

  constructor(m: IRModule, private readonly batchSize: number, private readonly seed: number) {
    const fn = entryFunction(m);
    const inp = indexInput(fn, 'recall');
    if (inp.rank !== 1) throw misfit(`the recall task feeds a batch of keys [batch], but input '${inp.name}' has rank ${inp.rank}`);
    const lookup = fn.graph.nodes.find((n) => n.op === 'gather' && n.inputs[1]!.node === inp.id);
    const table = lookup && fn.graph.typeOf(lookup.inputs[0]!).shape[0]!.value;
    if (table === undefined) throw misfit(`the recall task needs the keys looked up in a table (embedding(E, ${inp.name})) to know how many keys there are`);
    const classes = classesOf(fn);
    if (classes === undefined) throw misfit(`the recall task needs logits over a fixed number of values as the model's output`);
    this.input = inp.name;
    this.keys = table;
    this.classes = classes;
  }

  describe(): string {
    return `recall: ${this.keys.toLocaleString('en-US')} random key -> value pairs over ${this.classes} values; batches of ${this.batchSize}`;
  }

  valueOf(key: number): number {
    return Math.floor(uniformAt(this.seed, key, 21) * this.classes);
  }

  batch(split: Split, step: number): Batch {
    const b = this.batchSize;
    const x = new Float32Array(b), y = new Float32Array(b);
    for (let r = 0; r < b; r++) {
      x[r] = split === 'train' ? Math.floor(uniformAt(this.seed, step * b + r, 22) * this.keys) : (step * b + r) % this.keys;
      y[r] = this.valueOf(x[r]!);
    }
    return { inputs: new Map([[this.input, { shape: [b], data: x }]]), targets: { shape: [b], data: y }, tokens: b };
  }
}
