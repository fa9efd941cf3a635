// safetensors: 8-byte little-endian header length, a JSON header, then raw little-endian data.
// Reading distrusts the file: every length, offset, dtype and shape is checked before use.
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
const ITEM: Record<StDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
export const MAX_HEADER_BYTES = 100_000_000;

export interface StTensor {
  dtype: StDtype;
  shape: number[];
  /** Values widened to float64 (integers are exact below 2^53). */
  data: Float64Array;
}

function bad(file: string, detail: string): never {
  throw new CompileError(diagnostic('PEER0600', null, { file, detail }));
}

export function readSafetensors(bytes: Uint8Array, file: string): { tensors: Map<string, StTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) bad(file, `it has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) bad(file, `the header claims ${n} bytes but only ${bytes.length - 8} follow`);
  if (n > BigInt(MAX_HEADER_BYTES)) bad(file, `the header is ${n} bytes, more than the ${MAX_HEADER_BYTES} allowed`);
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch {
    bad(file, 'the header is not valid UTF-8 JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad(file, 'the header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string'))
        bad(file, '__metadata__ must map strings to strings');
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) bad(file, `entry '${name}' is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ITEM)) bad(file, `tensor '${name}' has unknown dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as StDtype;
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) bad(file, `tensor '${name}' has a malformed shape`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((o) => !Number.isSafeInteger(o) || o < 0)) bad(file, `tensor '${name}' has malformed data_offsets`);
    const [begin, end] = off as [number, number];
    if (begin > end || end > dataLen) bad(file, `tensor '${name}' has data_offsets [${begin}, ${end}] outside the ${dataLen} data bytes`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count * ITEM[dtype]) || count * ITEM[dtype] !== end - begin)
      bad(file, `tensor '${name}' is ${dtype}[${shape.join(', ')}] (${count * ITEM[dtype]} bytes) but its data_offsets span ${end - begin} bytes`);
    ranges.push([begin, end, name]);
    tensors.set(name, { dtype, shape, data: decode(bytes, dataStart + begin, count, dtype) });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++)
    if (ranges[i]![0] < ranges[i - 1]![1]) bad(file, `tensors '${ranges[i - 1]![2]}' and '${ranges[i]![2]}' overlap`);
  return { tensors, metadata };
}

function decode(bytes: Uint8Array, start: number, count: number, dtype: StDtype): Float64Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset + start, count * ITEM[dtype]);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'F64': out[i] = v.getFloat64(i * 8, true); break;
      case 'F32': out[i] = v.getFloat32(i * 4, true); break;
      case 'F16': out[i] = halfToFloat(v.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = bf16ToFloat(v.getUint16(i * 2, true)); break;
      case 'I64': out[i] = Number(v.getBigInt64(i * 8, true)); break;
      case 'I32': out[i] = v.getInt32(i * 4, true); break;
      case 'I16': out[i] = v.getInt16(i * 2, true); break;
      case 'I8': out[i] = v.getInt8(i); break;
      case 'U8': case 'BOOL': out[i] = v.getUint8(i); break;
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function bf16ToFloat(h: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, h << 16);
  return b.getFloat32(0);
}

export interface TensorToWrite {
  name: string;
  dtype: 'F64' | 'F32' | 'I64' | 'I32';
  shape: readonly number[];
  /** Element at a flat position (lets lazy tensors be written without materialising). */
  element: (i: number) => number;
  /** F32 data to write as it is (little-endian hosts), much faster than element by element. */
  f32?: Float32Array;
}

const LITTLE_ENDIAN = new Uint8Array(Float32Array.of(1).buffer)[3] === 0x3f;

export function headerBytes(tensors: readonly TensorToWrite[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * ITEM[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keep data 8-byte aligned
  const enc = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + enc.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(enc.length), true);
  out.set(enc, 8);
  return out;
}

export function* chunks(t: TensorToWrite, chunk = 1 << 20): Generator<Uint8Array> {
  const count = t.shape.reduce((a, b) => a * b, 1);
  const item = ITEM[t.dtype];
  if (t.f32 && t.dtype === 'F32' && LITTLE_ENDIAN) {
    for (let s = 0; s < count; s += chunk * 4) yield new Uint8Array(t.f32.buffer, t.f32.byteOffset + s * 4, Math.min(chunk * 4, count - s) * 4);
    return;
  }
  for (let s = 0; s < count; s += chunk) {
    const n = Math.min(chunk, count - s);
    const buf = new Uint8Array(n * item);
    const v = new DataView(buf.buffer);
    for (let i = 0; i < n; i++) {
      const x = t.element(s + i);
      if (t.dtype === 'F64') v.setFloat64(i * 8, x, true);
      else if (t.dtype === 'F32') v.setFloat32(i * 4, x, true);
      else if (t.dtype === 'I64') v.setBigInt64(i * 8, BigInt(Math.round(x)), true);
      else v.setInt32(i * 4, x, true);
    }
    yield buf;
  }
}

export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): Uint8Array {
  const parts = [headerBytes(tensors, metadata), ...tensors.flatMap((t) => [...chunks(t)])];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
