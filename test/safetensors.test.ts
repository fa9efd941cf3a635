// Reading safetensors distrusts the file; writing round-trips.
import { describe, expect, it } from 'vitest';
import { CompileError } from '../src/diagnostics/diagnostic.js';
import { encodeSafetensors, readSafetensors } from '../src/io/safetensors.js';

function file(header: unknown, data = new Uint8Array(0), claimedLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(claimedLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function rejection(bytes: Uint8Array): string {
  try {
    readSafetensors(bytes, 'w.safetensors');
  } catch (e) {
    if (e instanceof CompileError) return `${e.diagnostic.code}: ${e.diagnostic.message}`;
    throw e;
  }
  throw new Error('accepted a malformed file');
}

describe('safetensors', () => {
  it('round-trips F32, F64 and I64 tensors with metadata', () => {
    const bytes = encodeSafetensors(
      [
        { name: 'a', dtype: 'F32', shape: [2, 2], element: (i) => i + 0.5 },
        { name: 'b', dtype: 'F64', shape: [3], element: (i) => Math.PI * i },
        { name: 'c', dtype: 'I64', shape: [2], element: (i) => 1048575 - i },
      ],
      { producer: 'test' },
    );
    const { tensors, metadata } = readSafetensors(bytes, 'x');
    expect(metadata).toEqual({ producer: 'test' });
    expect([...tensors.get('a')!.data]).toEqual([0.5, 1.5, 2.5, 3.5]);
    expect([...tensors.get('b')!.data]).toEqual([0, Math.PI, 2 * Math.PI]);
    expect([...tensors.get('c')!.data]).toEqual([1048575, 1048574]);
    expect((bytes.length - 8) % 8).toBe(0);
  });

  it('reads F16 and BF16', () => {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint16(0, 0x3c00, true); // f16 1.0
    new DataView(data.buffer).setUint16(2, 0xc000, true); // bf16 -2.0
    const t = readSafetensors(file({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] }, b: { dtype: 'BF16', shape: [1], data_offsets: [2, 4] } }, data), 'x').tensors;
    expect(t.get('h')!.data[0]).toBe(1);
    expect(t.get('b')!.data[0]).toBe(-2);
  });

  it.each([
    ['a file shorter than 8 bytes', new Uint8Array(3), /fewer than the 8-byte header length/],
    ['a header longer than the file', file({}, new Uint8Array(0), 1000), /claims 1000 bytes/],
    ['a header that is not JSON', file('{"a": '), /not valid UTF-8 JSON/],
    ['a header that is a JSON array', file('[1,2]'), /not a JSON object/],
    ['an unknown dtype', file({ a: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unknown dtype "Q7"/],
    ['a negative dimension', file({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /malformed shape/],
    ['offsets past the data', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)), /outside the 4 data bytes/],
    ['a size that does not match the shape', file({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /F32\[3\] \(12 bytes\) but its data_offsets span 8/],
    ['overlapping tensors', file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /overlap/],
    ['bad metadata', file({ __metadata__: { a: 1 } }), /__metadata__ must map strings to strings/],
    ['a huge claimed header', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true); return b; })(), /claims/],
  ])('rejects %s', (_what, bytes, message) => {
    const r = rejection(bytes as Uint8Array);
    expect(r).toMatch(/^PEER0600: w.safetensors is not a valid safetensors file: /);
    expect(r).toMatch(message as RegExp);
  });
});
