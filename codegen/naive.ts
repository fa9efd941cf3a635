// Naive lowering: one gpu.js kernel per IR op, every intermediate materialised. It is the
// baseline a user would write by hand, and it must agree with the reference interpreter.
import type { Node } from '../src/ir/graph.js';
import type { Dim } from '../src/shapes/dim.js';
import { parseEinsum } from '../src/ir/ops/einsum.js';
import { MASKED } from '../src/ir/ops/leaves.js';
import type { ElementwiseExpr } from '../src/ir/ops/elementwise-fused.js';
import { UNARY_JS } from '../src/ir/ops/unary.js';
import { ArgAccess, decompose, flatIndex, lit, sizeOf } from './kernel.js';

export interface RenderInput {
  node: Node;
  inShapes: number[][];
  outShapes: number[][];
  acc: ArgAccess;
  dimValue: (d: Dim) => number;
  /** BatchNorm uses batch statistics. */
  training?: boolean;
}

export interface Rendered {
  body: string;
  loopMax: number;
  grid?: [number, number];
  views?: Map<number, [number, number]>;
  /** Parameters this kernel wants stored with permuted axes (argument index -> permutation). */
  layouts?: Map<number, number[]>;
}

type Renderer = (r: RenderInput) => Rendered;

const X = 'this.thread.x';

/** Reads input i at the output coordinates o0..o{n-1}, with NumPy broadcasting. */
function broadcastRead(r: RenderInput, i: number): string {
  const out = r.outShapes[0]!;
  const sh = r.inShapes[i]!;
  const off = out.length - sh.length;
  const coords = sh.map((d, j) => (d === 1 ? '0' : `o${j + off}`));
  return r.acc.read(i, flatIndex(coords, sh));
}

function elementwise(expr: (args: string[]) => string): Renderer {
  return (r) => ({
    body: `${decompose(X, r.outShapes[0]!, 'o')}\nreturn ${expr(r.inShapes.map((_, i) => broadcastRead(r, i)))};`,
    loopMax: 1,
  });
}

/** Every unary scalar function as JavaScript: the unary table's (src/ir/ops/unary.ts), the cast, and identity. */
export const ACTIVATIONS: Record<string, (v: string) => string> = {
  ...UNARY_JS,
  to_f32: (v) => `${v}`,
  identity: (v) => `${v}`,
};

/** The k-th (0-based `slot`) entry of a lane in descending order, ties to the lower index. */
export function selectionLoop(read: (i: string) => string, n: number, k: number, slot: string, v: string, i: string): string {
  return [
    `let ${v}_pv = 3.4e38; let ${v}_pi = -1.0; let ${v} = 0.0; let ${i} = -1.0;`,
    `for (let p = 0; p < ${k}; p++) {`,
    `  if (p <= ${slot}) {`,
    `    let bv = -3.4e38; let bi = -1.0;`,
    `    for (let c = 0; c < ${n}; c++) {`,
    `      let cv = ${read('c')};`,
    `      if ((cv < ${v}_pv || (cv == ${v}_pv && c > ${v}_pi)) && (bi < 0.0 || cv > bv || (cv == bv && c < bi))) { bv = cv; bi = c; }`,
    `    }`,
    `    ${v}_pv = bv; ${v}_pi = bi; ${v} = bv; ${i} = bi;`,
    `  }`,
    `}`,
  ].join('\n');
}

const binary = (op: string) => elementwise(([a, b]) => `(${a}) ${op} (${b})`);
const BINARY_INFIX: Record<string, string> = { add: '+', sub: '-', mul: '*', div: '/' };
const COMPARISONS: Record<string, string> = { greater: '>', greater_equal: '>=', less: '<', less_equal: '<=', equal: '==' };
const BINARY_CALL: Record<string, string> = { pow: 'Math.pow', maximum: 'Math.max', minimum: 'Math.min' };

function laneOp(r: RenderInput, axis: number, loops: (read: (j: string) => string, n: number, self: string) => string): Rendered {
  const sh = r.inShapes[0]!;
  const coords = sh.map((_, j) => (j === axis ? 'j' : `o${j}`));
  const self = r.acc.read(0, flatIndex(sh.map((_, j) => `o${j}`), sh));
  const read = (j: string) => r.acc.read(0, flatIndex(coords.map((c) => (c === 'j' ? j : c)), sh));
  return { body: `${decompose(X, sh, 'o')}\n${loops(read, sh[axis]!, self)}`, loopMax: sh[axis]! };
}

function reduction(r: RenderInput, init: string, step: (acc: string, v: string) => string, finish: (acc: string, n: number) => string): Rendered {
  const sh = r.inShapes[0]!;
  const axis = r.node.attrs.axis as number;
  const out = r.outShapes[0]!;
  const outNames = out.map((_, j) => `o${j}`);
  const coords = sh.map((_, j) => (j === axis ? 'j' : outNames[j < axis ? j : j - 1]!));
  return {
    body: `${decompose(X, out, 'o')}\nlet acc = ${init};\nfor (let j = 0; j < ${sh[axis]}; j++) { acc = ${step('acc', r.acc.read(0, flatIndex(coords, sh)))}; }\nreturn ${finish('acc', sh[axis]!)};`,
    loopMax: sh[axis]!,
  };
}

function norm(r: RenderInput, center: boolean, params: (c: string) => { g: string; b: string }): Rendered {
  return laneOp(r, r.inShapes[0]!.length - 1, (read, n, self) => {
    const c = `o${r.inShapes[0]!.length - 1}`;
    const { g, b } = params(c);
    const eps = lit(r.node.attrs.eps as number);
    return [
      `let mean = 0.0;`,
      center ? `for (let j = 0; j < ${n}; j++) { mean += ${read('j')}; }\nmean = mean / ${lit(n)};` : '',
      `let sq = 0.0;`,
      `for (let j = 0; j < ${n}; j++) { let dv = ${read('j')} - mean; sq += dv * dv; }`,
      `return (${self} - mean) / Math.sqrt(sq / ${lit(n)} + ${eps}) * ${g} + ${b};`,
    ].join('\n');
  });
}

const BASE_RENDERERS: Record<string, Renderer> = {
  const: (r) => ({ body: `return ${lit(r.node.attrs.value as number)};`, loopMax: 1 }),
  add: binary('+'),
  sub: binary('-'),
  mul: binary('*'),
  div: binary('/'),
  pow: elementwise(([a, b]) => `Math.pow(${a}, ${b})`),
  maximum: elementwise(([a, b]) => `Math.max(${a}, ${b})`),
  minimum: elementwise(([a, b]) => `Math.min(${a}, ${b})`),
  floordiv: elementwise(([a, b]) => `Math.floor((${a}) / (${b}) + 0.000001)`),
  mod: elementwise(([a, b]) => `(${a}) - Math.floor((${a}) / (${b}) + 0.000001) * (${b})`),
  ...Object.fromEntries(Object.entries(ACTIVATIONS).map(([k, f]) => [k, elementwise(([a]) => f(a!))])),
  ...Object.fromEntries(Object.entries(COMPARISONS).map(([k, op]) => [k, elementwise(([a, b]) => `((${a}) ${op} (${b}) ? 1.0 : 0.0)`)])),
  select: elementwise(([c, a, b]) => `((${c}) != 0.0 ? (${a}) : (${b}))`),
  cumsum(r) {
    const axis = r.node.attrs.axis as number;
    const reverse = r.node.attrs.reverse as boolean;
    return laneOp(r, axis, (read, n) => {
      const o = `o${axis}`;
      return reverse
        ? `let acc = 0.0;\nfor (let j = 0; j < ${n}; j++) { if (j >= ${o}) { acc += ${read('j')}; } }\nreturn acc;`
        : `let acc = 0.0;\nfor (let j = 0; j < ${n}; j++) { if (j > ${o}) { break; } acc += ${read('j')}; }\nreturn acc;`;
    });
  },
  concat(r) {
    const axis = r.node.attrs.axis as number;
    const out = r.outShapes[0]!;
    const [sa, sb] = [r.inShapes[0]!, r.inShapes[1]!];
    const la = sa[axis]!;
    const coords = (shift: string) => out.map((_, j) => (j === axis ? `(o${j}${shift})` : `o${j}`));
    return {
      body: `${decompose(X, out, 'o')}\nif (o${axis} < ${la}) { return ${r.acc.read(0, flatIndex(coords(''), sa))}; }\nreturn ${r.acc.read(1, flatIndex(coords(` - ${la}`), sb))};`,
      loopMax: 1,
    };
  },
  einsum(r) {
    return renderEinsum(r, parseEinsum(r.node.attrs.spec as string, r.inShapes.length));
  },
  einsum_bn(r) {
    // The einsum's own output shape, then the BatchNorm epilogue on channel (flat index mod C).
    const spec = parseEinsum(r.node.attrs.spec as string, 2);
    const outShape = einsumShape(spec, r.inShapes);
    const c = r.outShapes[0]![r.outShapes[0]!.length - 1]!;
    const base = renderEinsum({ ...r, outShapes: [outShape] }, spec);
    const eps = lit(r.node.attrs.eps as number);
    // The output cell's flat index: 1-D launch, or y * cols + x on a 2-D grid.
    const flat = base.grid ? `(this.thread.y * ${base.grid[0]} + this.thread.x)` : X;
    const epilogue = (acc: string) =>
      `let cf = ${flat};\nlet ch = cf - Math.floor(cf / ${c}) * ${c};\nif (ch < 0) { ch = ch + ${c}; }\nif (ch >= ${c}) { ch = ch - ${c}; }\nreturn (${acc} - ${r.acc.read(4, 'ch')}) / Math.sqrt(${r.acc.read(5, 'ch')} + ${eps}) * ${r.acc.read(2, 'ch')} + ${r.acc.read(3, 'ch')};`;
    return { ...base, body: base.body.replace(/return acc;$/, epilogue('acc')) };
  },
};

function einsumShape(spec: { inputs: string[]; output: string }, inShapes: number[][]): number[] {
  const size = new Map<string, number>();
  spec.inputs.forEach((s, i) => [...s].forEach((c, j) => size.set(c, inShapes[i]![j]!)));
  return [...spec.output].map((c) => size.get(c)!);
}

function renderEinsum(r: RenderInput, spec: { inputs: string[]; output: string }): Rendered {
  {
    const mm = matmulForm(r, spec);
    if (mm) return mm;
    const size = new Map<string, number>();
    spec.inputs.forEach((s, i) => [...s].forEach((c, j) => size.set(c, r.inShapes[i]![j]!)));
    const outLetters = [...spec.output];
    const sumLetters = [...size.keys()].filter((c) => !outLetters.includes(c));
    const v = (c: string) => (outLetters.includes(c) ? `o${outLetters.indexOf(c)}` : `s_${c}`);
    // A parameter holding the output's fastest letter is stored with that letter last, so the
    // SIMD lanes (adjacent output cells) read adjacent memory.
    const fastest = outLetters[outLetters.length - 1];
    const layouts = new Map<number, number[]>();
    const product = spec.inputs.map((s, i) => {
      let letters = [...s];
      let shape = r.inShapes[i]!;
      const at = fastest === undefined ? -1 : letters.indexOf(fastest);
      if (r.acc.isRowView(i)) {
        // A table beyond 2^24 cells: address it as [row][rest], never by one flat index.
        return r.acc.readRow(i, v(letters[0]!), flatIndex(letters.slice(1).map(v), shape.slice(1)), sizeOf(shape.slice(1)));
      }
      if (r.acc.isParam(i) && at >= 0 && at < letters.length - 1) {
        const perm = [...letters.keys()].filter((j) => j !== at).concat(at);
        layouts.set(i, perm);
        letters = perm.map((j) => letters[j]!);
        shape = perm.map((j) => shape[j]!);
      }
      return r.acc.read(i, flatIndex(letters.map(v), shape));
    }).join(' * ');
    let inner = `acc += ${product};`;
    for (const c of [...sumLetters].reverse()) inner = `for (let s_${c} = 0; s_${c} < ${size.get(c)}; s_${c}++) {\n${inner}\n}`;
    return {
      body: `${decompose(X, r.outShapes[0]!, 'o')}\nlet acc = 0.0;\n${inner}\nreturn acc;`,
      loopMax: Math.max(1, ...sumLetters.map((c) => size.get(c)!)),
      layouts,
    };
  }
}

const MORE_RENDERERS: Record<string, Renderer> = {
  reduce_sum: (r) => reduction(r, '0.0', (a, v) => `${a} + ${v}`, (a) => a),
  reduce_mean: (r) => reduction(r, '0.0', (a, v) => `${a} + ${v}`, (a, n) => `${a} / ${lit(n)}`),
  reduce_max: (r) => reduction(r, '-3.4e38', (a, v) => `Math.max(${a}, ${v})`, (a) => a),
  reduce_min: (r) => reduction(r, '3.4e38', (a, v) => `Math.min(${a}, ${v})`, (a) => a),
  softmax: (r) =>
    laneOp(r, r.node.attrs.axis as number, (read, n, self) =>
      `let m = -3.4e38;\nfor (let j = 0; j < ${n}; j++) { m = Math.max(m, ${read('j')}); }\nlet s = 0.0;\nfor (let j = 0; j < ${n}; j++) { s += Math.exp(${read('j')} - m); }\nreturn Math.exp(${self} - m) / s;`),
  log_softmax: (r) =>
    laneOp(r, r.node.attrs.axis as number, (read, n, self) =>
      `let m = -3.4e38;\nfor (let j = 0; j < ${n}; j++) { m = Math.max(m, ${read('j')}); }\nlet s = 0.0;\nfor (let j = 0; j < ${n}; j++) { s += Math.exp(${read('j')} - m); }\nreturn ${self} - m - Math.log(s);`),
  slice(r) {
    const axis = r.node.attrs.axis as number;
    const start = r.node.attrs.start as number;
    const out = r.outShapes[0]!;
    const coords = out.map((_, j) => (j === axis ? `(o${j} + ${start})` : `o${j}`));
    return { body: `${decompose(X, out, 'o')}\nreturn ${r.acc.read(0, flatIndex(coords, r.inShapes[0]!))};`, loopMax: 1 };
  },
  expand_dims: (r) => ({ body: `return ${r.acc.read(0, X)};`, loopMax: 1 }),
  reshape: (r) => ({ body: `return ${r.acc.read(0, X)};`, loopMax: 1 }),
  iota: () => ({ body: `return ${X};`, loopMax: 1 }),
  causal_mask(r) {
    const n = r.outShapes[0]![0]!;
    return { body: `${decompose(X, [n, n], 'o')}\nreturn o1 <= o0 ? 0.0 : ${lit(MASKED)};`, loopMax: 1 };
  },
  topk(r) {
    const sh = r.inShapes[0]!;
    const n = sh[sh.length - 1]!;
    const k = r.node.attrs.k as number;
    const total = sizeOf(r.outShapes[0]!);
    const read = (c: string) => r.acc.read(0, `lane * ${n} + ${c}`);
    return {
      body: [
        `let cell = ${X}; let second = 0.0;`,
        `if (cell >= ${total}) { cell = cell - ${total}; second = 1.0; }`,
        decompose('cell', [total / k, k], 'o'),
        `let lane = o0;`,
        selectionLoop(read, n, k, 'o1', 'v', 'vi'),
        `return second > 0.5 ? vi : v;`,
      ].join('\n'),
      loopMax: Math.max(n, k),
    };
  },
  gather(r) {
    const table = r.inShapes[0]!;
    const rowSize = sizeOf(table.slice(1));
    const rows = sizeOf(r.inShapes[1]!);
    return {
      body: `${decompose(X, [rows, rowSize], 'o')}\nreturn ${r.acc.readRow(0, r.acc.read(1, 'o0'), 'o1', rowSize)};`,
      loopMax: 1,
    };
  },
  take_along(r) {
    const n = r.inShapes[0]![r.inShapes[0]!.length - 1]!;
    const m = r.inShapes[1]![r.inShapes[1]!.length - 1]!;
    const lanes = sizeOf(r.inShapes[1]!) / m;
    return { body: `${decompose(X, [lanes, m], 'o')}\nreturn ${r.acc.read(0, `o0 * ${n} + ${r.acc.read(1, X)}`)};`, loopMax: 1 };
  },
  broadcast_to: elementwise(([a]) => a!),
  dim_size: (r) => ({ body: `return ${lit(r.dimValue((r.node.attrs.n as readonly Dim[])[0]!))};`, loopMax: 1 }),
  pad(r) {
    const axis = r.node.attrs.axis as number;
    const start = r.node.attrs.start as number;
    const out = r.outShapes[0]!;
    const len = r.inShapes[0]![axis]!;
    const coords = out.map((_, j) => (j === axis ? `(o${j} - ${start})` : `o${j}`));
    return {
      body: `${decompose(X, out, 'o')}\nif (o${axis} < ${start} || o${axis} >= ${start + len}) { return 0.0; }\nreturn ${r.acc.read(0, flatIndex(coords, r.inShapes[0]!))};`,
      loopMax: 1,
    };
  },
  unravel(r) {
    const total = sizeOf(r.outShapes[0]!);
    const n = lit(r.dimValue((r.node.attrs.n as readonly Dim[])[0]!));
    return {
      body: `let cell = ${X}; let second = 0.0;\nif (cell >= ${total}) { cell = cell - ${total}; second = 1.0; }\nlet v = ${r.acc.read(0, 'cell')};\nlet q = Math.floor(v / ${n} + 0.000001);\nreturn second > 0.5 ? v - q * ${n} : q;`,
      loopMax: 1,
    };
  },
  // One let per tree node: activations repeat their argument, so nested text would grow exponentially.
  elementwise_fused(r) {
    const lines = [decompose(X, r.outShapes[0]!, 'o')];
    const reads = new Map<number, string>();
    let count = 0;
    const emit = (e: ElementwiseExpr): string => {
      if ('value' in e) return lit(e.value);
      if ('input' in e) {
        let name = reads.get(e.input);
        if (!name) {
          name = `t${count++}`;
          lines.push(`let ${name} = ${broadcastRead(r, e.input)};`);
          reads.set(e.input, name);
        }
        return name;
      }
      const args = e.args.map(emit);
      if (e.op === 'broadcast_to') return args[0]!;
      const infix = BINARY_INFIX[e.op];
      const value = infix ? `(${args[0]}) ${infix} (${args[1]})` : BINARY_CALL[e.op] ? `${BINARY_CALL[e.op]}(${args[0]}, ${args[1]})` : ACTIVATIONS[e.op]!(args[0]!);
      const name = `t${count++}`;
      lines.push(`let ${name} = ${value};`);
      return name;
    };
    lines.push(`return ${emit(JSON.parse(r.node.attrs.expr as string) as ElementwiseExpr)};`);
    return { body: lines.join('\n'), loopMax: 1 };
  },
  // Scatters are computed per output cell: each sums the positions whose index names it (no atomics).
  scatter_along(r) {
    const out = r.outShapes[0]!;
    const n = out[out.length - 1]!;
    const m = r.inShapes[0]![r.inShapes[0]!.length - 1]!;
    return {
      body: `${decompose(X, [sizeOf(out) / n, n], 'o')}\nlet acc = 0.0;\nfor (let j = 0; j < ${m}; j++) {\n  if (${r.acc.read(1, `o0 * ${m} + j`)} == o1) { acc += ${r.acc.read(0, `o0 * ${m} + j`)}; }\n}\nreturn acc;`,
      loopMax: m,
    };
  },
  scatter_rows(r) {
    const out = r.outShapes[0]!;
    const rowSize = sizeOf(out.slice(1));
    const m = sizeOf(r.inShapes[1]!);
    return {
      body: `${decompose(X, [out[0]!, rowSize], 'o')}\nlet acc = 0.0;\nfor (let j = 0; j < ${m}; j++) {\n  if (${r.acc.read(1, 'j')} == o0) { acc += ${r.acc.read(0, `j * ${rowSize} + o1`)}; }\n}\nreturn acc;`,
      loopMax: m,
    };
  },
  layernorm: (r) => norm(r, true, (c) => ({ g: r.acc.read(1, c), b: r.acc.read(2, c) })),
  rmsnorm: (r) => norm(r, false, (c) => ({ g: r.acc.read(1, c), b: '0.0' })),
};

/**
 * An einsum that is a matrix product, out[rows..., cols...] = sum_K X[rows..., K...] Y[K..., cols...]
 * up to the order of letters within each operand: rendered like gpu.js's fastest matmul, on a
 * 2-D grid with 2-D views. Operands not already laid out [rows, K] and [K, cols] are permuted
 * (parameters once, values per call) so adjacent threads read adjacent memory.
 */
function matmulForm(r: RenderInput, spec: { inputs: string[]; output: string }): Rendered | undefined {
  if (spec.inputs.length !== 2 || r.acc.isRowView(0) || r.acc.isRowView(1)) return undefined;
  const m = matmulLayout(spec, r.inShapes);
  if (!m) return undefined;
  const { x, y, rows, cols, inner } = m;
  const layouts = new Map<number, number[]>();
  if (!m.permX.every((p, i) => p === i)) layouts.set(x, m.permX);
  if (!m.permY.every((p, i) => p === i)) layouts.set(y, m.permY);
  return {
    body: `let acc = 0.0;\nfor (let s = 0; s < ${inner}; s++) {\n  acc += ${r.acc.name(x)}[this.thread.y][s] * ${r.acc.name(y)}[s][this.thread.x];\n}\nreturn acc;`,
    loopMax: inner,
    grid: [cols, rows],
    views: new Map([[x, [inner, rows]], [y, [cols, inner]]]),
    layouts: layouts.size ? layouts : undefined,
  };
}

export interface MatmulLayout {
  /** The operand giving the rows (X) and the one giving the columns (Y). */
  x: number;
  y: number;
  /** Axis permutations that lay X out as [rows, inner] and Y as [inner, cols]. */
  permX: number[];
  permY: number[];
  rows: number;
  cols: number;
  inner: number;
}

/**
 * A two-operand einsum as a matrix product out[rows..., cols...] = X[rows..., K...] Y[K..., cols...]
 * (up to the order of letters within each operand), or undefined when it is not one (batch
 * letters, or a letter summed within one operand).
 */
export function matmulLayout(spec: { inputs: readonly string[]; output: string }, inShapes: readonly (readonly number[])[]): MatmulLayout | undefined {
  if (spec.inputs.length !== 2) return undefined;
  const out = spec.output;
  const [s0, s1] = spec.inputs as [string, string];
  const both = [...s0].filter((c) => s1.includes(c));
  // A letter in both operands and the output is a batch letter; one summed in a single operand is a reduction.
  if (both.some((c) => out.includes(c)) || [...s0, ...s1].some((c) => !both.includes(c) && !out.includes(c))) return undefined;
  if (both.length === 0 || out.length === 0) return undefined;
  // The operand owning the output's first letter provides the rows (or the other one, if it owns none).
  const x = s1.includes(out[0]!) ? 1 : 0;
  const y = 1 - x;
  const [sx, sy] = [spec.inputs[x]!, spec.inputs[y]!];
  let split = 0;
  while (split < out.length && sx.includes(out[split]!)) split++;
  const lead = out.slice(0, split), tail = out.slice(split);
  if (tail.length === 0 || [...tail].some((c) => !sy.includes(c))) return undefined;
  const contracted = [...sx].filter((c) => both.includes(c)).join('');
  const sizeOfLetter = (c: string) => (sx.includes(c) ? inShapes[x]![sx.indexOf(c)]! : inShapes[y]![sy.indexOf(c)]!);
  const prod = (letters: string) => [...letters].reduce((acc, c) => acc * sizeOfLetter(c), 1);
  return {
    x, y,
    permX: [...lead, ...contracted].map((c) => sx.indexOf(c)),
    permY: [...contracted, ...tail].map((c) => sy.indexOf(c)),
    rows: prod(lead), cols: prod(tail), inner: prod(contracted),
  };
}

export const NAIVE_RENDERERS: Record<string, Renderer> = { ...BASE_RENDERERS, ...MORE_RENDERERS };

/** BatchNorm: evaluation mode reads running statistics; training mode recomputes batch statistics. */
export function renderBatchnorm(r: RenderInput, training: boolean): Rendered {
  const sh = r.inShapes[0]!;
  const c = sh[sh.length - 1]!;
  const rows = sizeOf(sh) / c;
  const eps = lit(r.node.attrs.eps as number);
  const head = `${decompose(X, [rows, c], 'o')}\nlet xv = ${r.acc.read(0, X)};`;
  const affine = (mean: string, variance: string) => `return (xv - ${mean}) / Math.sqrt(${variance} + ${eps}) * ${r.acc.read(1, 'o1')} + ${r.acc.read(2, 'o1')};`;
  if (!training) return { body: `${head}\n${affine(r.acc.read(3, 'o1'), r.acc.read(4, 'o1'))}`, loopMax: 1 };
  return {
    body: [
      head,
      `let mean = 0.0;`,
      `for (let j = 0; j < ${rows}; j++) { mean += ${r.acc.read(0, `j * ${c} + o1`)}; }`,
      `mean = mean / ${lit(rows)};`,
      `let sq = 0.0;`,
      `for (let j = 0; j < ${rows}; j++) { let dv = ${r.acc.read(0, `j * ${c} + o1`)} - mean; sq += dv * dv; }`,
      affine('mean', `(sq / ${lit(rows)})`),
    ].join('\n'),
    loopMax: rows,
  };
}
