// What every IR op declares once: inputs, attributes, shape rule, reference semantics, and
// a gradient slot (filled in by the training work). Everything else (checker, verifier,
// printer, interpreter) is derived from these declarations.
import type { Dim, Shape } from '../../shapes/dim.js';
import type { DType, Tensor } from '../../interp/tensor.js';

export interface TensorType {
  dtype: DType;
  shape: Shape;
  /** For index tensors: every value is known to be below this (exclusive). */
  bound?: Dim;
}

export type AttrValue = number | string | boolean | readonly Dim[];
export type Attrs = Readonly<Record<string, AttrValue>>;
export type AttrKind = 'int' | 'float' | 'string' | 'bool' | 'dims';

export interface EvalContext {
  /** Training mode: batchnorm uses batch statistics and reports running-stat updates. */
  training: boolean;
  /** Values of the symbolic dims of the entry point, bound from the inputs' shapes. */
  dimValue(d: Dim): number;
  /** Collects new values for buffers (batchnorm running statistics) when training. */
  updateBuffer(name: string, value: Tensor): void;
  /** Names of the parameter behind each input of the current node, when it is one. */
  inputParamNames: (string | undefined)[];
  /** The run's seed and the training step: what dropout and Gumbel noise draw from. */
  noise?: { seed: number; step: number };
}

export interface OpDef {
  name: string;
  /** Input names, for printing and messages; a trailing '...' means variadic. */
  inputs: readonly string[];
  attrs: Readonly<Record<string, AttrKind>>;
  /** Result types from input types; throws a CompileError (without span) when ill-typed. */
  infer(inputs: readonly TensorType[], attrs: Attrs): TensorType[];
  /** Float64 reference semantics: the definition of the op's meaning. */
  evaluate?(inputs: readonly Tensor[], attrs: Attrs, ctx: EvalContext): Tensor[];
  /**
   * Reverse-mode gradient: given the gradients of the results (undefined where a result does
   * not reach the loss), builds the gradients of the inputs (undefined: none, e.g. indices).
   * Absent: the op has no gradient (the differentiator reports it if a loss depends on one).
   */
  grad?: GradRule;
  /**
   * For inputs used as indices: the exclusive upper bound their values must respect (e.g. a
   * gather's table rows). Runtimes check index inputs against it before running any kernel,
   * since an out-of-range index on a GPU reads garbage instead of failing.
   */
  indexRange?(inputs: readonly TensorType[], attrs: Attrs): (Dim | undefined)[];
  /**
   * Where the op can appear, when not everywhere: 'leaf' (inputs, parameters, constants, calls:
   * no kernel of their own), 'backward' (made only by gradients and the training fusions, so the
   * forward-only exports have no form for it and say so with PEER0900).
   */
  stage?: 'leaf' | 'backward';
  /** No gradient flows through it (stop_gradient): what reaches a parameter only through it does not train it. */
  stopsGradient?: boolean;
}

/** A value in the graph being built (mirrors ValueRef in ../graph.ts). */
export interface GradValue {
  readonly node: number;
  readonly result: number;
}

/** What a gradient rule may use to build nodes (implemented in src/autodiff). */
export interface GradBuilder {
  op(name: string, inputs: readonly GradValue[], attrs?: Attrs): GradValue;
  ops(name: string, inputs: readonly GradValue[], attrs?: Attrs): GradValue[];
  type(v: GradValue): TensorType;
  scalar(v: number): GradValue;
  indexConst(v: number): GradValue;
  /** An op whose result type the rule knows better than the shape rule (e.g. a tighter index bound). */
  opTyped(name: string, inputs: readonly GradValue[], attrs: Attrs, type: TensorType): GradValue;
  /** The op that computed a value of the graph being built (to exploit, e.g., a gradient that is a scatter). */
  producer(v: GradValue): { op: string; inputs: readonly GradValue[]; attrs: Attrs };
  /** Sums a gradient of a broadcast result down to the shape of the operand that was broadcast. */
  unbroadcast(g: GradValue, shape: Shape): GradValue;
  /** Repeats g (shape without `axis`) along `axis` to `shape`. */
  expandAlong(g: GradValue, axis: number, shape: Shape): GradValue;
  /** Training mode (batchnorm differentiates through batch statistics). */
  training: boolean;
}

export interface GradNode {
  inputs: readonly GradValue[];
  outputs: readonly GradValue[];
  attrs: Attrs;
}

export type GradRule = (b: GradBuilder, node: GradNode, dys: readonly (GradValue | undefined)[]) => (GradValue | undefined)[];

/** The TypeScript type of an attribute of each kind. */
type AttrType<K extends AttrKind> = K extends 'int' | 'float' ? number : K extends 'string' ? string : K extends 'bool' ? boolean : readonly Dim[];
/** An op's attributes as its declaration types them. */
export type AttrValues<A extends Readonly<Record<string, AttrKind>>> = { readonly [N in keyof A]: AttrType<A[N]> };

/** An op whose attribute kinds are known to the type checker (every op made by defineOp). */
export interface TypedOpDef<A extends Readonly<Record<string, AttrKind>>> extends OpDef {
  attrs: A;
}

export function defineOp<const A extends Readonly<Record<string, AttrKind>>>(def: OpDef & { attrs: A }): TypedOpDef<A> {
  return { ...def };
}

/**
 * A node's attributes typed by its op's declaration, so a use site reads `attrsOf(topk, n).k`
 * as a number instead of casting; the node must be of that op (checked).
 */
export function attrsOf<A extends Readonly<Record<string, AttrKind>>>(op: TypedOpDef<A>, node: { readonly op: string; readonly attrs: Attrs }): AttrValues<A> {
  if (node.op !== op.name) throw new Error(`attributes of '${op.name}' asked of a '${node.op}' node`);
  return node.attrs as AttrValues<A>;
}
