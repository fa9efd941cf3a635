// The few protobuf messages of an ONNX model, encoded by hand (field numbers from onnx.proto):
// a dependency-free writer of varints and length-delimited fields, like the wasm module builder.

type Bytes = number[] | Uint8Array;

/** Appends without spreading into arguments (a weight's bytes pass the engine's argument limit). */
function append(out: number[], more: ArrayLike<number>): number[] {
  for (let i = 0; i < more.length; i++) out.push(more[i]!);
  return out;
}

export function varint(v: number | bigint): number[] {
  // Negative int64s take ten bytes of two's complement.
  let n = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const key = (field: number, wire: number) => varint((field << 3) | wire);

export const pb = {
  int: (field: number, v: number | bigint) => [...key(field, 0), ...varint(v)],
  float: (field: number, v: number) => [...key(field, 5), ...new Uint8Array(Float32Array.of(v).buffer)],
  bytes: (field: number, b: Bytes) => append([...key(field, 2), ...varint(b.length)], b),
  string: (field: number, s: string) => pb.bytes(field, utf8(s)),
  msg: (field: number, body: number[]) => pb.bytes(field, body),
};

export const DTYPE = { float: 1, int64: 7, bool: 9 } as const;

/** TensorShapeProto.Dimension: a size or a symbol. */
export type DimSpec = number | string;

export function valueInfo(name: string, elemType: number, shape: DimSpec[]): number[] {
  const dims = shape.flatMap((d) => pb.msg(1, typeof d === 'number' ? pb.int(1, d) : pb.string(2, d)));
  const tensorType = [...pb.int(1, elemType), ...pb.msg(2, dims)];
  return [...pb.string(1, name), ...pb.msg(2, pb.msg(1, tensorType))];
}

export interface TensorData {
  name: string;
  dims: number[];
  dataType: number;
  /** Raw little-endian bytes inside the model, or where they are in the external data file. */
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

export function tensor(t: TensorData): number[] {
  const out = [...t.dims.flatMap((d) => pb.int(1, d)), ...pb.int(2, t.dataType), ...pb.string(8, t.name)];
  if (t.raw) append(out, pb.bytes(9, t.raw));
  if (t.external) {
    for (const [k, v] of [['location', t.external.location], ['offset', String(t.external.offset)], ['length', String(t.external.length)]] as const)
      out.push(...pb.msg(13, [...pb.string(1, k), ...pb.string(2, v)]));
    out.push(...pb.int(14, 1)); // data_location = EXTERNAL
  }
  return out;
}

export type AttrValue = { i: number } | { f: number } | { ints: number[] } | { s: string };

export function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, AttrValue> = {}): number[] {
  const a = Object.entries(attrs).flatMap(([k, v]) => {
    const body = [...pb.string(1, k)];
    if ('i' in v) body.push(...pb.int(3, v.i), ...pb.int(20, 2));
    else if ('f' in v) body.push(...pb.float(2, v.f), ...pb.int(20, 1));
    else if ('ints' in v) body.push(...v.ints.flatMap((x) => pb.int(8, x)), ...pb.int(20, 7));
    else body.push(...pb.string(4, v.s), ...pb.int(20, 3));
    return pb.msg(5, body);
  });
  return [...inputs.flatMap((i) => pb.string(1, i)), ...outputs.flatMap((o) => pb.string(2, o)), ...pb.string(3, name), ...pb.string(4, op), ...a];
}

export function model(graph: { nodes: number[][]; name: string; initializers: number[][]; inputs: number[][]; outputs: number[][] }, opset: number, producer: string): Uint8Array {
  const g: number[] = [];
  for (const n of graph.nodes) append(g, pb.msg(1, n));
  append(g, pb.string(2, graph.name));
  for (const t of graph.initializers) append(g, pb.msg(5, t));
  for (const v of graph.inputs) append(g, pb.msg(11, v));
  for (const v of graph.outputs) append(g, pb.msg(12, v));
  const out = [...pb.int(1, 8), ...pb.string(2, producer)];
  append(out, pb.msg(7, g));
  append(out, pb.msg(8, [...pb.string(1, ''), ...pb.int(2, opset)]));
  return Uint8Array.from(out);
}
