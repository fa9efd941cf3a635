// Training checkpoints: one safetensors file with the weights, the optimizer's state, and in
// its metadata the program, step, data position, RNG state and settings. Written atomically and
// durably (src/io/durable.ts); read in a streaming way, since the paper's layer with Adam state
// is several GB, beyond what one Node buffer holds. The reader trusts nothing: the header's size
// and JSON, every dtype, shape and offset (in range, contiguous, not overlapping, covering the
// file exactly) and the metadata are checked before a byte of data is used, and every failure
// is a coded error naming the file and the tensor.
import { sharedFloat32 } from '../pool.js';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-file.js';
import { MAX_HEADER_BYTES, type TensorToWrite } from '../../src/io/safetensors.js';
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

interface Entry {
  name: string;
  shape: number[];
  from: number;
  to: number;
}

/** The header's tensor entries, each checked (F32, a shape of whole numbers, offsets matching it). */
function entriesOf(file: string, header: Record<string, unknown>): Entry[] {
  const out: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) bad(file, `the entry of tensor '${name}' is not an object`);
    if (e.dtype !== 'F32') bad(file, `tensor '${name}' has dtype ${JSON.stringify(e.dtype)}; peerc checkpoints hold F32 tensors`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) bad(file, `tensor '${name}' has a malformed shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((o) => !Number.isSafeInteger(o) || (o as number) < 0)) bad(file, `tensor '${name}' has malformed data_offsets ${JSON.stringify(off)}`);
    const shape = e.shape as number[];
    const [from, to] = off as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count * 4) || to - from !== count * 4) bad(file, `tensor '${name}' is F32[${shape.join(', ')}] (${count * 4} bytes) but its data_offsets [${from}, ${to}] span ${to - from}`);
    out.push({ name, shape, from, to });
  }
  return out;
}

/** The tensors must tile the data section exactly: no gap, no overlap, nothing past the end. */
function checkLayout(file: string, entries: Entry[], dataBytes: number): void {
  const sorted = [...entries].sort((a, b) => a.from - b.from || a.to - b.to);
  let at = 0, prev = '';
  for (const e of sorted) {
    if (e.from < at) bad(file, `tensors '${prev}' and '${e.name}' overlap (bytes ${e.from}..${at})`);
    if (e.from > at) bad(file, `there are ${e.from - at} unclaimed bytes before tensor '${e.name}'`);
    at = e.to;
    prev = e.name;
  }
  if (at > dataBytes) bad(file, `tensor '${prev}' ends at byte ${at} of the data, but the file has only ${dataBytes} data bytes (it is truncated)`);
  if (at < dataBytes) bad(file, `the file has ${dataBytes - at} bytes after its last tensor`);
}

/** Metadata fields: the format, then each field's type, so a damaged file never crashes a reader later. */
function metaOf(file: string, raw: unknown): CheckpointMeta {
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')))
    bad(file, '__metadata__ must map names to strings');
  const meta = (raw ?? {}) as Record<string, string>;
  if (meta.format !== CHECKPOINT_FORMAT)
    throw new CompileError(diagnostic('PEER0708', null, { file, format: meta.format ? `its format is '${meta.format}', not '${CHECKPOINT_FORMAT}'` : meta.producer ? `it was written by ${meta.producer}` : 'it has no peerc metadata' }));
  const count = (k: string) => {
    const v = Number(meta[k]);
    if (meta[k] === undefined || !Number.isSafeInteger(v) || v < 0) bad(file, `metadata '${k}' must be a whole number >= 0, not ${JSON.stringify(meta[k] ?? null)}`);
    return v;
  };
  const json = (k: string, kind: 'object' | 'array', fallback: string) => {
    const text = meta[k] ?? fallback;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      bad(file, `metadata '${k}' is not valid JSON`);
    }
    if (kind === 'array' ? !Array.isArray(v) : typeof v !== 'object' || v === null || Array.isArray(v)) bad(file, `metadata '${k}' must be a JSON ${kind}`);
    return text;
  };
  if (typeof meta.source !== 'string' || !meta.source) bad(file, "metadata 'source' (the program) is missing");
  const run = json('run', 'object', '');
  const steps = (JSON.parse(run) as { steps?: unknown }).steps;
  if (!Number.isSafeInteger(steps) || (steps as number) < 1) bad(file, "metadata 'run' has no whole number of steps");
  return {
    format: meta.format, source: meta.source, file: meta.file ?? '', entry: meta.entry ?? '', step: count('step'),
    optimizer: json('optimizer', 'object', '{}'), optimizerStep: count('optimizerStep'), data: json('data', 'object', '{}'),
    rng: json('rng', 'object', '{}'), backend: meta.backend ?? '', run, resumes: json('resumes', 'array', '[]'),
  };
}

/** The first NaN or infinite element of a tensor, as a coded error naming it. */
export function checkFinite(file: string, name: string, shape: readonly number[], data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) {
      const at: number[] = [];
      let r = i;
      for (let d = shape.length - 1; d >= 0; d--) (at.unshift(r % shape[d]!), (r = Math.floor(r / shape[d]!)));
      throw new CompileError(diagnostic('PEER0605', null, { what: `tensor '${name}' in ${file}`, detail: `element [${at.join(', ')}] is ${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}` }));
    }
  }
}

/** `alloc`: the array a tensor is read into (default: a shared one), e.g. a table's where kernels read it in place. */
export function readCheckpoint(path: string, options: { tensors?: boolean; finite?: boolean; alloc?: (name: string, length: number) => Float32Array } = {}): Checkpoint {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw new UsageError(`cannot read checkpoint '${path}': no such file`);
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (size < 8 || readSync(fd, head, 0, 8, 0) !== 8) bad(path, `it has ${size} bytes, fewer than the 8-byte header length`);
    const big = head.readBigUInt64LE(0);
    if (big > BigInt(MAX_HEADER_BYTES)) bad(path, `the header length is ${big} bytes, more than the ${MAX_HEADER_BYTES} allowed`);
    const n = Number(big);
    if (n < 2 || 8 + n > size) bad(path, `the header claims ${n} bytes but the file has ${size}`);
    const hb = Buffer.alloc(n);
    if (readSync(fd, hb, 0, n, 8) !== n) bad(path, 'the header could not be read whole');
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hb));
    } catch {
      bad(path, 'the header is not valid UTF-8 JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) bad(path, `the header is ${header === null ? 'null' : Array.isArray(header) ? 'an array' : `a ${typeof header}`}, not a JSON object`);
    const h = header as Record<string, unknown>;
    const meta = metaOf(path, h.__metadata__);
    const entries = entriesOf(path, h);
    checkLayout(path, entries, size - 8 - n);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    // Metadata only (peerc compare, sweep): the tensors of a 1M-expert run are 6 GB.
    if (options.tensors === false) return { meta, tensors };
    for (const { name, shape, from, to } of entries) {
      const data = options.alloc ? options.alloc(name, (to - from) / 4) : sharedFloat32((to - from) / 4); // shared: the wasm-simd backend's threads update it in place
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      for (let off = 0; off < bytes.length; ) {
        const got = readSync(fd, bytes, off, Math.min(1 << 30, bytes.length - off), 8 + n + from + off);
        if (got <= 0) bad(path, `tensor '${name}' is truncated`);
        off += got;
      }
      if (options.finite) checkFinite(path, name, shape, data);
      tensors.set(name, { shape, data });
    }
    return { meta, tensors };
  } finally {
    closeSync(fd);
  }
}
