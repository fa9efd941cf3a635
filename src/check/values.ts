// Values the checker computes with: tensors in the IR being built, and compile-time numbers.
import type { Span } from '../../grammar/ast.js';
import { CompileError, diagnostic, fail } from '../diagnostics/diagnostic.js';
import type { ValueRef } from '../ir/graph.js';
import type { TensorType } from '../ir/ops/types.js';
import { Dim, shapeToString } from '../shapes/dim.js';

export type Value =
  | { kind: 'tensor'; ref: ValueRef; type: TensorType }
  | { kind: 'int'; dim: Dim }
  /** A real number; `notInt` remembers why an integer-looking expression is not one. */
  | { kind: 'float'; value: number; notInt?: { sqrtOf?: number } }
  | { kind: 'string'; value: string }
  | { kind: 'list'; items: Value[] }
  /** Poison: an error was already reported for this value; uses of it report nothing more. */
  | { kind: 'error' };

/** Raised when a value is poison, to abandon the statement without a second message. */
export class Poisoned extends Error {}

/**
 * A concrete integer was needed but the value is a symbolic dim. In the generic check of an
 * uncalled layer this only means "cannot check further"; elsewhere it is a user error.
 */
export class NeedsConcrete extends CompileError {}

function needsConcrete(v: Value, what: string, span: Span): never {
  throw new NeedsConcrete(diagnostic('PEER0204', span, { what, expected: 'a constant', found: `${describeValue(v)}, known only at run time` }));
}

export function describeValue(v: Value): string {
  switch (v.kind) {
    case 'tensor':
      return `${v.type.dtype === 'f32' ? 'an f32' : 'an index'} tensor ${shapeToString(v.type.shape)}`;
    case 'int':
      return `the integer ${v.dim}`;
    case 'float':
      return `the number ${v.value}`;
    case 'string':
      return `the string "${v.value}"`;
    case 'list':
      return `a list of ${v.items.length}`;
    case 'error':
      return 'an erroneous value';
  }
}

export { needsConcrete };

export function check(v: Value): Value {
  if (v.kind === 'error') throw new Poisoned();
  return v;
}

export function asTensor(v: Value, what: string, span: Span): Extract<Value, { kind: 'tensor' }> {
  check(v);
  if (v.kind !== 'tensor') fail('PEER0204', span, { what, expected: 'a tensor', found: describeValue(v) });
  return v;
}

export function asString(v: Value, what: string, span: Span): string {
  check(v);
  if (v.kind !== 'string') fail('PEER0204', span, { what, expected: 'a string', found: describeValue(v) });
  return v.value;
}

export function asNumber(v: Value, what: string, span: Span): number {
  check(v);
  if (v.kind === 'float') return v.value;
  if (v.kind === 'int' && v.dim.isConst) return v.dim.value!;
  if (v.kind === 'int') needsConcrete(v, what, span);
  return fail('PEER0204', span, { what, expected: 'a constant number', found: describeValue(v) });
}

/** A compile-time integer (maybe symbolic); non-integers get the precise reason. */
export function asDim(v: Value, what: string, span: Span, text: string): Dim {
  check(v);
  if (v.kind === 'int') return v.dim;
  if (v.kind === 'float') {
    if (v.notInt?.sqrtOf !== undefined) fail('PEER0401', span, { expr: text.replace(/^sqrt\((.*)\)$/, '$1'), value: v.notInt.sqrtOf });
    fail('PEER0400', span, { expr: text, value: String(v.value), detail: what ? ` (${what} needs a whole number)` : '' });
  }
  return fail('PEER0204', span, { what, expected: 'an integer', found: describeValue(v) });
}

/** A compile-time integer with a known value. */
export function asInt(v: Value, what: string, span: Span, text: string): number {
  const d = asDim(v, what, span, text);
  if (d.value === undefined) needsConcrete(v, what, span);
  return d.value!;
}
