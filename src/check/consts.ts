// Compile-time arithmetic. Integers stay exact (as symbolic dims); '/' and sqrt give integers
// only when exact, otherwise a real number that remembers why, so a later use as a dimension
// says "dk/2 = 63.5 is not an integer" or "N = 1000 is not a perfect square".
import type { Span } from '../../grammar/ast.js';
import { fail } from '../diagnostics/diagnostic.js';
import { Dim } from '../shapes/dim.js';
import { check, describeValue, needsConcrete, type Value } from './values.js';

const LIMIT = 2 ** 53;

function int(dim: Dim, text: string, span: Span): Value {
  if (dim.isConst && Math.abs(dim.value!) >= LIMIT) fail('PEER0405', span, { expr: text });
  return { kind: 'int', dim };
}

function real(v: Value): number | undefined {
  if (v.kind === 'float') return v.value;
  if (v.kind === 'int') return v.dim.value;
  return undefined;
}

export function constBinary(op: string, a: Value, b: Value, text: string, span: Span): Value {
  check(a);
  check(b);
  if (a.kind === 'int' && b.kind === 'int') {
    const x = a.dim, y = b.dim;
    switch (op) {
      case '+': return int(x.add(y), text, span);
      case '-': return int(x.sub(y), text, span);
      case '*': return int(x.mul(y), text, span);
      case '/': {
        if (y.value === 0) fail('PEER0406', span, { expr: text });
        const q = x.divBy(y);
        if (q) return int(q, text, span);
        if (x.isConst && y.isConst) return { kind: 'float', value: x.value! / y.value! };
        return fail('PEER0400', span, { expr: text, value: `${x} / ${y}`, detail: ' (symbolic dimensions must divide exactly)' });
      }
      case '%': {
        if (y.value === 0) fail('PEER0406', span, { expr: text });
        if (x.isConst && y.isConst) return int(Dim.of(((x.value! % y.value!) + y.value!) % y.value!), text, span);
        return fail('PEER0204', span, { what: `'%' at compile time`, expected: 'constant integers', found: `${x} % ${y}` });
      }
      case '^': {
        if (x.isConst && y.isConst && y.value! >= 0) {
          const p = x.value! ** y.value!;
          if (Math.abs(p) >= LIMIT) fail('PEER0405', span, { expr: text });
          return int(Dim.of(p), text, span);
        }
        if (x.isConst && y.isConst) return { kind: 'float', value: x.value! ** y.value! };
        return fail('PEER0204', span, { what: `'^' at compile time`, expected: 'constant integers', found: `${x} ^ ${y}` });
      }
    }
  }
  const x = real(a), y = real(b);
  if (x === undefined || y === undefined)
    return fail('PEER0204', span, { what: `'${op}' on constants`, expected: 'numbers', found: `${describeValue(a)} and ${describeValue(b)}` });
  const r = op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : op === '/' ? x / y : op === '%' ? x % y : x ** y;
  if (op === '/' && y === 0) fail('PEER0406', span, { expr: text });
  if (!Number.isFinite(r)) fail('PEER0405', span, { expr: text });
  return { kind: 'float', value: r };
}

export function constNeg(a: Value): Value {
  check(a);
  if (a.kind === 'int') return { kind: 'int', dim: a.dim.neg() };
  if (a.kind === 'float') return { kind: 'float', value: -a.value };
  return a;
}

export function constSqrt(a: Value, text: string, span: Span): Value {
  check(a);
  if (a.kind === 'int' && a.dim.isConst) {
    const n = a.dim.value!;
    if (n < 0) return fail('PEER0407', span, { detail: `${text}: square root of the negative number ${n}` });
    const r = Math.round(Math.sqrt(n));
    if (r * r === n) return { kind: 'int', dim: Dim.of(r) };
    return { kind: 'float', value: Math.sqrt(n), notInt: { sqrtOf: n } };
  }
  if (a.kind === 'float') return { kind: 'float', value: Math.sqrt(a.value) };
  if (a.kind === 'int') needsConcrete(a, 'sqrt', span);
  return fail('PEER0204', span, { what: 'sqrt', expected: 'a constant number or a tensor', found: describeValue(a) });
}
