import type { Span } from '../../grammar/ast.js';
import { MESSAGES, type Code, type MessageArgs } from './messages.js';

export interface Diagnostic {
  code: Code;
  severity: 'error' | 'warning';
  message: string;
  span: Span | null;
  notes: string[];
}

export function diagnostic<C extends Code>(code: C, span: Span | null, args: MessageArgs<C>, notes: string[] = []): Diagnostic {
  const text = MESSAGES[code].text as (a: MessageArgs<C>) => string;
  return { code, severity: 'error', message: text(args), span, notes };
}

/** Marks peerc's coded errors across copies of the runtime (a bundle's own and the package's). */
const CODED = Symbol.for('peerc.CompileError');

/** Thrown inside the compiler for one located error; caught where the checker can recover. */
export class CompileError extends Error {
  /** `instanceof` holds for errors from any copy of peerc (an emitted bundle carries its own runtime). */
  static override [Symbol.hasInstance](x: unknown): boolean {
    if (this !== CompileError) return Function.prototype[Symbol.hasInstance].call(this, x); // subclasses: the usual test
    return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[CODED] === true;
  }

  constructor(readonly diagnostic: Diagnostic) {
    super(`${diagnostic.code}: ${diagnostic.message}${diagnostic.notes.length ? ` (${diagnostic.notes.join('; ')})` : ''}`);
    Object.defineProperty(this, CODED, { value: true });
  }

  /** The error's code in the message table (PEERnnnn), for programs that handle errors. */
  get code(): string {
    return this.diagnostic.code;
  }
}

export function fail<C extends Code>(code: C, span: Span | null, args: MessageArgs<C>, notes: string[] = []): never {
  throw new CompileError(diagnostic(code, span, args, notes));
}
