// Training checkpoints: one safetensors file with the weights, the optimizer's state, and in
// its metadata the program, step, data position, RNG state and settings. Written atomically
// (temporary file, then rename); read in a streaming way, since the paper's layer with Adam
// state is several GB, beyond what one Node buffer holds.
import { sharedFloat32 } from '../pool.js';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-file.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { UsageError } from '../../src/io/tensors.js';

export { CHECKPOINT_FORMAT, type CheckpointMeta } from './checkpoint-format.js';
import { CHECKPOINT_FORMAT, checkpointMetadata, type CheckpointMeta } from './checkpoint-format.js';

export interface Checkpoint {
  meta: CheckpointMeta;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

export function writeCheckpoint(path: string, meta: CheckpointMeta, tensors: Map<string, { shape: readonly number[]; data: Float32Array }>): void {
  const list: TensorToWrite[] = [...tensors].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, element: (i) => t.data[i]!, f32: t.data }));
  writeSafetensorsFile(path, list, checkpointMetadata(meta));
}

function bad(file: string, detail: string): never {
  throw new CompileError(diagnostic('PEER0600', null, { file, detail }));
}

export function readCheckpoint(path: string, options: { tensors?: boolean } = {}): Checkpoint {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new UsageError(`cannot read checkpoint '${path}': no such file`);
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (size < 8 || readSync(fd, head, 0, 8, 0) !== 8) bad(path, 'it is shorter than the 8-byte header length');
    const n = Number(head.readBigUInt64LE(0));
    if (n > 100_000_000 || 8 + n > size) bad(path, `the header claims ${n} bytes but the file has ${size}`);
    const hb = Buffer.alloc(n);
    readSync(fd, hb, 0, n, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch {
      bad(path, 'the header is not valid JSON');
    }
    const meta = (header.__metadata__ ?? {}) as Record<string, string>;
    if (meta.format !== CHECKPOINT_FORMAT)
      throw new CompileError(diagnostic('PEER0708', null, { file: path, format: meta.format ? `its format is '${meta.format}', not '${CHECKPOINT_FORMAT}'` : meta.producer ? `it was written by ${meta.producer}` : 'it has no peerc metadata' }));
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, e] of Object.entries(header)) {
      // Metadata only (peerc compare): the tensors of a 1M-expert run are 6 GB.
      if (name === '__metadata__' || options.tensors === false) continue;
      const t = e as { dtype: string; shape: number[]; data_offsets: [number, number] };
      const count = t.shape.reduce((a, b) => a * b, 1);
      const [from, to] = t.data_offsets;
      if (t.dtype !== 'F32' || to - from !== count * 4 || 8 + n + to > size) bad(path, `tensor '${name}' is not a consistent F32 tensor`);
      const data = sharedFloat32(count); // shared: the wasm-simd backend's threads update it in place
      const bytes = new Uint8Array(data.buffer);
      for (let off = 0; off < bytes.length; ) {
        const got = readSync(fd, bytes, off, Math.min(1 << 30, bytes.length - off), 8 + n + from + off);
        if (got <= 0) bad(path, `tensor '${name}' is truncated`);
        off += got;
      }
      tensors.set(name, { shape: t.shape, data });
    }
    const num = (k: string) => Number(meta[k]);
    return {
      meta: { format: meta.format!, source: meta.source ?? '', file: meta.file ?? '', entry: meta.entry ?? '', step: num('step'), optimizer: meta.optimizer ?? '{}', optimizerStep: num('optimizerStep'), data: meta.data ?? '{}', rng: meta.rng ?? '{}', backend: meta.backend ?? '', run: meta.run ?? '{}', resumes: meta.resumes ?? '[]' },
      tensors,
    };
  } finally {
    closeSync(fd);
  }
}
