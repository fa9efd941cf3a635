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

/** Thrown inside the compiler for one located error; caught where the checker can recover. */
export class CompileError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(`${diagnostic.code}: ${diagnostic.message}${diagnostic.notes.length ? ` (${diagnostic.notes.join('; ')})` : ''}`);
  }

  /** The error's code in the message table (PEERnnnn), for programs that handle errors. */
  get code(): string {
    return this.diagnostic.code;
  }
}

export function fail<C extends Code>(code: C, span: Span | null, args: MessageArgs<C>, notes: string[] = []): never {
  throw new CompileError(diagnostic(code, span, args, notes));
}
