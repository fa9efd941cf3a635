// The IR: SSA graphs of primitive ops, hash-consed (building the same op on the same inputs
// twice returns the same node) and frozen once built. Passes build new graphs.
import type { Span } from '../../grammar/ast.js';
import { Dim } from '../shapes/dim.js';
import { opDef } from './ops/registry.js';
import type { AttrValue, Attrs, TensorType } from './ops/types.js';
import type { DType } from '../interp/tensor.js';

export interface ValueRef {
  readonly node: number;
  readonly result: number;
}

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly ValueRef[];
  readonly attrs: Attrs;
  readonly types: readonly TensorType[];
  readonly span?: Span;
  /**
   * The call in the entry function this node was inlined from (absent for the entry's own nodes):
   * reports per call site, e.g. the usage of a pool that several layers share.
   */
  readonly site?: Span;
}

export function attrKey(v: AttrValue): string {
  if (Array.isArray(v)) return `[${v.map((d) => d.toString()).join(',')}]`;
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

export function typeKey(t: TensorType): string {
  return `${t.dtype}${t.bound ? `<${t.bound}>` : ''}[${t.shape.map((d) => d.toString()).join(', ')}]`;
}

export class Graph {
  private readonly list: Node[] = [];
  private readonly byKey = new Map<string, number>();
  private frozen = false;
  /** The call site nodes added now get (rules rewriting a node add theirs under that node's site). */
  site: Span | undefined;

  get nodes(): readonly Node[] {
    return this.list;
  }
  node(id: number): Node {
    const n = this.list[id];
    if (!n) throw new Error(`no node %${id}`);
    return n;
  }
  typeOf(v: ValueRef): TensorType {
    return this.node(v.node).types[v.result]!;
  }

  /**
   * Adds (or finds) a node. Types are inferred by the op's shape rule, except for calls,
   * whose types come from the callee. Leaf inputs are never merged: two arguments of the same
   * type are different values.
   */
  add(op: string, inputs: readonly ValueRef[], attrs: Attrs = {}, span?: Span, types?: readonly TensorType[], site: Span | undefined = this.site): number {
    if (this.frozen) throw new Error('graph is frozen');
    const sorted = Object.keys(attrs).sort();
    const key = `${op}(${inputs.map((i) => `${i.node}#${i.result}`).join(',')}){${sorted.map((k) => `${k}=${attrKey(attrs[k]!)}`).join(',')}}`;
    const existing = this.byKey.get(key);
    if (existing !== undefined && op !== 'input') return existing;
    const resolved = types ?? opDef(op).infer(inputs.map((i) => this.typeOf(i)), attrs);
    const node: Node = Object.freeze({
      id: this.list.length, op, inputs: Object.freeze([...inputs]), attrs: Object.freeze({ ...attrs }),
      types: Object.freeze(resolved.map((t) => Object.freeze(t))), span, ...(site ? { site } : {}),
    });
    this.list.push(node);
    this.byKey.set(key, node.id);
    return node.id;
  }

  constant(value: number, dtype: DType, span?: Span): ValueRef {
    return { node: this.add('const', [], { value, dtype }, span), result: 0 };
  }

  freeze(): this {
    this.frozen = true;
    return this;
  }
}

export const ref = (node: number, result = 0): ValueRef => ({ node, result });

export interface IRFunction {
  readonly name: string;
  readonly graph: Graph;
  /** Node ids of the function's `input` nodes, in argument order. */
  readonly inputs: readonly number[];
  readonly outputs: readonly ValueRef[];
  /** The symbolic dims left open by the signature (bound from input shapes at run time). */
  readonly symbols: readonly string[];
}

export interface ParamInfo {
  readonly name: string;
  readonly role: 'param' | 'buffer';
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly init: InitSpec;
  readonly lrMultiplier: number;
  /** `@lr(m, to=t, over=S)`: the multiplier goes linearly from m to t over the first S steps, then stays t. */
  readonly lrDecay?: { readonly to: number; readonly over: number };
  readonly sparse: boolean;
  readonly weightDecay: boolean;
  /** `@optim(...)`: this parameter's own optimizer settings, over the run's. */
  readonly optim?: ParamOptim;
  readonly span?: Span;
}

/** The optimizers a parameter may have of its own (`@optim(kind, ...)`). */
export type ParamOptimizerKind = 'sgd' | 'adam' | 'adamw' | 'adagrad';

/**
 * A parameter's own optimization (`@optim(adagrad, lr=0.01, wd=0, clip=1, schedule="constant")`):
 * each field replaces the run's for this parameter only.
 */
export interface ParamOptim {
  readonly kind?: ParamOptimizerKind;
  /** An absolute base learning rate (warmup and the schedule apply to it unless `schedule` says constant). */
  readonly lr?: number;
  readonly schedule?: 'cosine' | 'constant';
  /** Decoupled weight decay for this parameter (any kind). */
  readonly weightDecay?: number;
  /** This parameter's own gradient-norm clip, after the run's global one. */
  readonly clip?: number;
}

export type InitSpec =
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'uniform'; low: number; high: number }
  /** Integers low .. high-1, uniformly (index buffers). */
  | { kind: 'randint'; low: number; high: number }
  | { kind: 'constant'; value: number };

export type TrainValue = number | string;

export interface IRModule {
  readonly functions: ReadonlyMap<string, IRFunction>;
  readonly entry: string;
  readonly params: readonly ParamInfo[];
  readonly train: ReadonlyMap<string, TrainValue>;
}

export const dimsAttr = (shape: readonly Dim[]): readonly Dim[] => Object.freeze([...shape]);

/** Ids of the nodes the function's outputs depend on. */
export function liveNodes(f: IRFunction): Set<number> {
  const live = new Set<number>();
  const stack = f.outputs.map((o) => o.node);
  while (stack.length) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    for (const r of f.graph.node(id).inputs) stack.push(r.node);
  }
  return live;
}

/**
 * `x[i]` on a stacked tensor: reshape(slice(x, axis 0, i, i+1)) to x's shape without its
 * leading axis. Returns x and i, or undefined for any other value.
 */
export function stackSlice(g: Graph, r: ValueRef): { stack: ValueRef; index: number } | undefined {
  const view = g.node(r.node);
  if (view.op !== 'reshape') return undefined;
  const sl = g.node(view.inputs[0]!.node);
  if (sl.op !== 'slice' || (sl.attrs.axis as number) !== 0 || (sl.attrs.end as number) - (sl.attrs.start as number) !== 1) return undefined;
  const whole = g.typeOf(sl.inputs[0]!).shape, part = view.types[0]!.shape;
  if (whole.length !== part.length + 1 || !part.every((d, j) => d.equals(whole[j + 1]!))) return undefined;
  return { stack: sl.inputs[0]!, index: sl.attrs.start as number };
}
