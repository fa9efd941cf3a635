// A generated gpu.js kernel plan (codegen/kernel.ts: one output cell per thread) as a WGSL
// compute shader, so every op the renderers know runs on peerc's WebGPU backend before it has a
// kernel of its own. The source is parsed (acorn) and printed again as WGSL: every number is an
// f32 (as gpu.js types them), array reads index with u32, `return v` stores the cell. Flat
// indices computed in f32 are exact below 2^24, the same limit as gpu.js's (FLAT_INDEX_LIMIT);
// 2-D views ([row][col] reads of tables) index in u32, so whole tables are read exactly.
import { parse } from 'acorn';
import type { Node as JsNode } from 'acorn';
import { FLAT_INDEX_LIMIT, type KernelPlan } from '../kernel.js';

export const WORKGROUP = 64;

/** A binding: a plan argument (or one chunk of rows of it), or an earlier stage's output. */
export type WgslInput = { kind: 'arg'; index: number; chunk?: { first: number; rows: number; width: number } } | { kind: 'stage'; index: number };

/** The shader of a plan and how to launch it. */
export interface WgslKernel {
  source: string;
  /** Threads launched (cells of a flat launch; x * y of a 2-D grid). */
  threads: number;
  /** Floats the output buffer holds (4 per thread for vector returns). */
  outputFloats: number;
  /** Storage bindings after the output, in order: the plan's arguments, then earlier stages. */
  inputs: WgslInput[];
}

const MATH: Record<string, string> = {
  floor: 'floor', ceil: 'ceil', sqrt: 'sqrt', exp: 'exp', log: 'log', abs: 'abs', max: 'max', min: 'min', pow: 'pow', tanh: 'tanh',
  sin: 'sin', cos: 'cos', tan: 'tan', atan: 'atan', atan2: 'atan2', asin: 'asin', acos: 'acos', sign: 'sign', trunc: 'trunc',
  log2: 'log2', exp2: 'exp2', sinh: 'sinh', cosh: 'cosh', asinh: 'asinh', acosh: 'acosh', atanh: 'atanh',
};
const COMPARE = new Set(['<', '<=', '>', '>=', '==', '===', '!=', '!==']);

interface Expr {
  code: string;
  bool: boolean;
}

/** Number literal as WGSL f32 (always with a fraction or an exponent). */
export function f32(v: number): string {
  if (!Number.isFinite(v)) return v > 0 ? '3.4028234e38' : v < 0 ? '-3.4028234e38' : '0.0';
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

class Printer {
  constructor(
    /** Array names the kernel reads (aN, pN, stN) with the row width of their [row][col] reads. */
    private readonly arrays: Map<string, number | undefined>,
    private readonly store: (value: string) => string,
    private readonly label: string,
    /** Arrays bound as several buffers of rows (read through a read_NAME(row, col) function). */
    private readonly split: ReadonlySet<string>,
  ) {}

  private fail(node: JsNode, what: string): never {
    throw new Error(`kernel '${this.label}': ${what} (${node.type}) has no WGSL translation`);
  }

  num(e: Expr): string {
    return e.bool ? `select(0.0, 1.0, ${e.code})` : e.code;
  }
  cond(e: Expr): string {
    return e.bool ? e.code : `(${e.code} != 0.0)`;
  }

  /** The array an expression names (aN, stN, this.constants.pN), or undefined. */
  private arrayName(n: JsNode): string | undefined {
    const node = n as JsNode & { type: string; name?: string; object?: JsNode; property?: JsNode & { name?: string }; computed?: boolean };
    if (node.type === 'Identifier' && this.arrays.has(node.name!)) return node.name;
    if (node.type === 'MemberExpression' && !node.computed) {
      const obj = node.object as JsNode & { type: string; object?: JsNode; property?: { name?: string } };
      if (obj.type === 'MemberExpression' && obj.object?.type === 'ThisExpression' && obj.property?.name === 'constants') return node.property!.name;
    }
    return undefined;
  }

  expr(n: JsNode): Expr {
    // acorn's node types are a union; the fields read here are checked by `type`.
    const node = n as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    switch (node.type) {
      case 'Literal':
        if (typeof node.value === 'number') return { code: f32(node.value), bool: false };
        if (typeof node.value === 'boolean') return { code: String(node.value), bool: true };
        return this.fail(node, `literal ${node.raw}`);
      case 'Identifier':
        if (node.name === 'Infinity') return { code: f32(Infinity), bool: false };
        if (this.arrays.has(node.name)) return this.fail(node, `array ${node.name} read without an index`);
        return { code: `v_${node.name}`, bool: false };
      case 'MemberExpression': {
        if (!node.computed) {
          if (node.object.type === 'MemberExpression' && node.object.object.type === 'ThisExpression' && node.object.property.name === 'thread')
            return { code: `f32(t${node.property.name})`, bool: false };
          if (node.object.type === 'Identifier' && node.object.name === 'Math') {
            if (node.property.name === 'PI') return { code: f32(Math.PI), bool: false };
            if (node.property.name === 'E') return { code: f32(Math.E), bool: false };
          }
          return this.fail(node, 'member');
        }
        const direct = this.arrayName(node.object);
        if (direct && this.split.has(direct)) return this.fail(node, `a flat read of ${direct}, which is bound in parts`);
        if (direct) return { code: `${direct}[u32(${this.num(this.expr(node.property))})]`, bool: false };
        if (node.object.type === 'MemberExpression' && node.object.computed) {
          const name = this.arrayName(node.object.object);
          const width = name && this.arrays.get(name);
          const row = `u32(${this.num(this.expr(node.object.property))})`, col = `u32(${this.num(this.expr(node.property))})`;
          if (name && this.split.has(name)) return { code: `read_${name}(${row}, ${col})`, bool: false };
          if (name && width) return { code: `${name}[${row} * ${width}u + ${col}]`, bool: false };
        }
        return this.fail(node, 'array read');
      }
      case 'BinaryExpression': {
        const a = this.expr(node.left), b = this.expr(node.right);
        if (COMPARE.has(node.operator)) {
          const op = node.operator === '===' ? '==' : node.operator === '!==' ? '!=' : node.operator;
          return { code: `(${this.num(a)} ${op} ${this.num(b)})`, bool: true };
        }
        if (['+', '-', '*', '/', '%'].includes(node.operator)) return { code: `(${this.num(a)} ${node.operator} ${this.num(b)})`, bool: false };
        return this.fail(node, `operator ${node.operator}`);
      }
      case 'LogicalExpression':
        return { code: `(${this.cond(this.expr(node.left))} ${node.operator} ${this.cond(this.expr(node.right))})`, bool: true };
      case 'UnaryExpression':
        if (node.operator === '-') return { code: `(-${this.num(this.expr(node.argument))})`, bool: false };
        if (node.operator === '+') return { code: this.num(this.expr(node.argument)), bool: false };
        if (node.operator === '!') return { code: `(!${this.cond(this.expr(node.argument))})`, bool: true };
        return this.fail(node, `operator ${node.operator}`);
      case 'ConditionalExpression': {
        const t = this.expr(node.consequent), f = this.expr(node.alternate);
        if (t.bool && f.bool) return { code: `select(${f.code}, ${t.code}, ${this.cond(this.expr(node.test))})`, bool: true };
        return { code: `select(${this.num(f)}, ${this.num(t)}, ${this.cond(this.expr(node.test))})`, bool: false };
      }
      case 'CallExpression': {
        const c = node.callee;
        if (c.type === 'MemberExpression' && !c.computed && c.object.type === 'Identifier' && c.object.name === 'Math') {
          const args = node.arguments.map((a: JsNode) => this.num(this.expr(a)));
          if (c.property.name === 'round') return { code: `floor(${args[0]} + 0.5)`, bool: false };
          if ((c.property.name === 'max' || c.property.name === 'min') && args.length > 2)
            return { code: args.slice(1).reduce((acc: string, x: string) => `${c.property.name}(${acc}, ${x})`, args[0]), bool: false };
          const fn = MATH[c.property.name];
          if (fn) return { code: `${fn}(${args.join(', ')})`, bool: false };
        }
        return this.fail(node, 'call');
      }
      default:
        return this.fail(node, 'expression');
    }
  }

  private assign(node: any): string { // eslint-disable-line @typescript-eslint/no-explicit-any
    if (node.type === 'UpdateExpression') return `v_${node.argument.name} ${node.operator === '++' ? '+=' : '-='} 1.0`;
    if (node.type === 'AssignmentExpression' && node.left.type === 'Identifier' && ['=', '+=', '-=', '*=', '/='].includes(node.operator))
      return `v_${node.left.name} ${node.operator} ${this.num(this.expr(node.right))}`;
    return this.fail(node, 'assignment');
  }

  stmt(n: JsNode, indent: string): string {
    const node = n as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    switch (node.type) {
      case 'BlockStatement':
        return `${indent}{\n${node.body.map((s: JsNode) => this.stmt(s, indent + '  ')).join('')}${indent}}\n`;
      case 'VariableDeclaration':
        return node.declarations.map((d: any) => `${indent}var v_${d.id.name}: f32 = ${d.init ? this.num(this.expr(d.init)) : '0.0'};\n`).join(''); // eslint-disable-line @typescript-eslint/no-explicit-any
      case 'ExpressionStatement':
        return `${indent}${this.assign(node.expression)};\n`;
      case 'IfStatement':
        return `${indent}if ${this.paren(this.cond(this.expr(node.test)))} {\n${this.body(node.consequent, indent)}${indent}}${node.alternate ? ` else {\n${this.body(node.alternate, indent)}${indent}}` : ''}\n`;
      case 'ForStatement': {
        const init = node.init.type === 'VariableDeclaration' ? this.stmt(node.init, '').trim().replace(/;$/, '') : this.assign(node.init);
        return `${indent}for (${init}; ${this.cond(this.expr(node.test))}; ${this.assign(node.update)}) {\n${this.body(node.body, indent)}${indent}}\n`;
      }
      case 'WhileStatement':
        return `${indent}while ${this.paren(this.cond(this.expr(node.test)))} {\n${this.body(node.body, indent)}${indent}}\n`;
      case 'BreakStatement':
        return `${indent}break;\n`;
      case 'ContinueStatement':
        return `${indent}continue;\n`;
      case 'EmptyStatement':
        return '';
      case 'ReturnStatement': {
        const arg = node.argument;
        if (arg?.type === 'ArrayExpression') return `${indent}${this.store(`array<f32, 4>(${arg.elements.map((e: JsNode) => this.num(this.expr(e))).join(', ')})`)}\n`;
        return `${indent}${this.store(this.num(this.expr(arg)))}\n`;
      }
      default:
        return this.fail(node, 'statement');
    }
  }

  private paren(c: string): string {
    return c.startsWith('(') && c.endsWith(')') ? c : `(${c})`;
  }

  private body(n: JsNode, indent: string): string {
    const node = n as JsNode & { type: string; body?: JsNode[] };
    return node.type === 'BlockStatement' ? node.body!.map((s) => this.stmt(s, indent + '  ')).join('') : this.stmt(n, indent + '  ');
  }
}

/** A JavaScript expression over plain variables (x becomes v_x) as a WGSL f32 expression. */
export function wgslOfExpression(js: string, label: string): string {
  const program = parse(`(${js})`, { ecmaVersion: 2020 }) as unknown as { body: [{ expression: JsNode }] };
  const printer = new Printer(new Map(), () => '', label, new Set());
  return printer.num(printer.expr(program.body[0].expression));
}

/**
 * The WGSL compute shader of `plan` (throws, naming the construct, where the source has no
 * translation). `chunkRows`: parameters read by row (argument index -> rows per buffer) bound
 * as several buffers, for tables larger than one binding may be.
 */
export function wgslOfPlan(plan: KernelPlan, chunkRows: ReadonlyMap<number, number> = new Map()): WgslKernel {
  const threads = plan.grid ? plan.grid[0] * plan.grid[1] : plan.outputLength;
  const per = plan.vec4 ? 4 : 1;
  const arrays = new Map<string, number | undefined>();
  const inputs: WgslInput[] = [];
  const declarations: string[] = [];
  const readers: string[] = [];
  const split = new Set<string>();
  const bind = (name: string) => declarations.push(`@group(0) @binding(${declarations.length + 1}) var<storage, read> ${name}: array<f32>;`);
  plan.args.forEach((a, i) => {
    const cells = a.shape.reduce((x, y) => x * y, 1);
    const view = plan.views?.get(i);
    const width = view ? view[0] : a.kind === 'param' && cells >= FLAT_INDEX_LIMIT ? cells / a.shape[0]! : undefined;
    const name = a.kind === 'value' ? `a${i}` : `p${i}`;
    arrays.set(name, width);
    const per = chunkRows.get(i);
    if (per === undefined || !width) {
      bind(name);
      inputs.push({ kind: 'arg', index: i });
      return;
    }
    const rows = cells / width, parts = Math.ceil(rows / per);
    split.add(name);
    const lines: string[] = [];
    for (let c = 0; c < parts; c++) {
      bind(`${name}_${c}`);
      inputs.push({ kind: 'arg', index: i, chunk: { first: c * per, rows: Math.min(per, rows - c * per), width } });
      lines.push(c < parts - 1 ? `  if (r < ${(c + 1) * per}u) { return ${name}_${c}[(r - ${c * per}u) * ${width}u + c]; }` : `  return ${name}_${c}[(r - ${c * per}u) * ${width}u + c];`);
    }
    readers.push(`fn read_${name}(r: u32, c: u32) -> f32 {\n${lines.join('\n')}\n}`);
  });
  for (let s = 0; s < plan.earlierStages; s++) {
    arrays.set(`st${s}`, undefined);
    bind(`st${s}`);
    inputs.push({ kind: 'stage', index: s });
  }
  const store = (value: string) =>
    per === 4 ? `{ let r = ${value}; out[cell * 4u] = r[0]; out[cell * 4u + 1u] = r[1]; out[cell * 4u + 2u] = r[2]; out[cell * 4u + 3u] = r[3]; return; }` : `out[cell] = ${value}; return;`;
  const program = parse(`(function() {\n${plan.source}\n})`, { ecmaVersion: 2020 }) as unknown as { body: [{ expression: { body: JsNode } }] };
  const printer = new Printer(arrays, store, plan.label, split);
  const body = printer.stmt(program.body[0].expression.body, '  ');
  const width = plan.grid ? plan.grid[0] : threads;
  const source = `// ${plan.label}: ${threads} threads
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${declarations.join('\n')}
${readers.join('\n')}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let cell = (wg.y * nwg.x + wg.x) * ${WORKGROUP}u + li;
  if (cell >= ${threads}u) { return; }
  let tx = cell % ${width}u;
  let ty = cell / ${width}u;
${body}}
`;
  return { source, threads, outputFloats: threads * per, inputs };
}
