// The front door of the compiler: source text -> checked IR module, or diagnostics.
import type { Program, Span } from '../grammar/ast.js';
import { parseSource, type SyntaxProblem } from '../grammar/parse.js';
import { checkProgram, type CheckOptions, type SourceUnit } from './check/elaborate.js';
import { diagnostic, type Diagnostic } from './diagnostics/diagnostic.js';
import type { IRModule } from './ir/graph.js';
import PRELUDE from './prelude.peer';

export const PRELUDE_FILE = '<prelude>';
export const PRELUDE_SOURCE: string = PRELUDE;
export const MAX_SOURCE_BYTES = 16_000_000;

export interface CompileResult {
  module: IRModule | null;
  diagnostics: Diagnostic[];
  /** Source text per file name, for rendering diagnostics. */
  sources: Map<string, string>;
  /** The file's AST as parsed (null with syntax errors), for tools that also walk it (the language server). */
  program?: Program | null;
}

export function syntaxDiagnostic(p: SyntaxProblem): Diagnostic {
  switch (p.kind) {
    case 'char':
      return diagnostic('PEER0100', p.span, { text: p.text });
    case 'syntax':
      return diagnostic('PEER0101', p.span, { expected: p.expected, found: p.found });
    case 'deep':
      return diagnostic('PEER0102', p.span, { limit: p.limit });
    case 'literal':
      return diagnostic('PEER0103', p.span, { text: p.text });
    case 'string':
      return diagnostic('PEER0104', p.span, {});
    case 'tokens':
      return diagnostic('PEER0105', p.span, { count: p.count, limit: p.limit });
  }
}

/** Decodes a file's bytes; invalid UTF-8 is an error with the offending byte's position. */
export function decodeSource(bytes: Uint8Array, file: string): { text: string } | { error: Diagnostic } {
  if (bytes.length > MAX_SOURCE_BYTES) return { error: diagnostic('PEER0002', null, { bytes: bytes.length, limit: MAX_SOURCE_BYTES }) };
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '') };
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const before = Buffer.from(bytes.subarray(0, offset)).toString('utf8');
    const line = before.split('\n').length;
    const col = before.length - before.lastIndexOf('\n');
    const span: Span = { file, offset, line, col, length: 1 };
    return { error: diagnostic('PEER0001', span, { offset }) };
  }
}

function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : (c & 0xe0) === 0xc0 && c >= 0xc2 ? 2 : (c & 0xf0) === 0xe0 ? 3 : (c & 0xf8) === 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    for (let j = 1; j < n; j++) if ((b[i + j]! & 0xc0) !== 0x80) return i;
    i += n;
  }
  return b.length;
}

export interface CompileOptions {
  entry?: string;
  /** Leave the prelude out (for tests of the bare language). */
  noPrelude?: boolean;
  /** `--set NAME=VALUE`: the value (a constant expression) replaces the program's `const NAME`. */
  set?: readonly (readonly [string, string])[];
  /** Every value the checker binds or reads by name, at its span (editor hover; see CheckOptions). */
  observe?: CheckOptions['observe'];
}

/** The name of the virtual source an override is checked in: errors point at the flag. */
export const setFlagFile = (name: string, value: string) => `--set ${name}=${value}`;

/**
 * Replaces the values of overridden consts in a parsed program. Each override is parsed as
 * `const NAME = VALUE` in a source of its own, so its errors (and errors its value causes, like
 * an inexact sqrt) are reported as they would be in the file, against the flag.
 */
function applyOverrides(program: Program, set: readonly (readonly [string, string])[], sources: Map<string, string>, diagnostics: Diagnostic[]): Program {
  const decls = [...program.decls];
  for (const [name, value] of set) {
    const file = setFlagFile(name, value);
    const text = `const ${name} = ${value}`;
    sources.set(file, text);
    const parsed = parseSource(text, file);
    const decl = parsed.program?.decls[0];
    if (!parsed.program || parsed.program.decls.length !== 1 || decl?.kind !== 'const') {
      diagnostics.push(...(parsed.problems.length ? parsed.problems.map(syntaxDiagnostic) : [diagnostic('PEER0101', { file, offset: 0, line: 1, col: 1, length: text.length }, { expected: 'NAME=VALUE with VALUE a constant expression', found: text })]));
      continue;
    }
    const i = decls.findIndex((d) => d.kind === 'const' && d.name === name);
    if (i < 0) {
      const consts = decls.flatMap((d) => (d.kind === 'const' ? [d.name] : []));
      diagnostics.push(diagnostic('PEER0200', decl.nameSpan, { name, hint: ` (--set names a const of the program${consts.length ? `: ${consts.join(', ')}` : '; it has none'})` }));
      continue;
    }
    decls[i] = { ...(decls[i] as Extract<typeof decls[number], { kind: 'const' }>), value: decl.value };
  }
  return { ...program, decls };
}

/** The prelude's AST, parsed once (ASTs are never changed after parsing): an editor checks per keystroke. */
let preludeProgram: ReturnType<typeof parseSource>['program'] | undefined;
function prelude(): NonNullable<ReturnType<typeof parseSource>['program']> {
  if (!preludeProgram) {
    const parsed = parseSource(PRELUDE_SOURCE, PRELUDE_FILE);
    if (!parsed.program) throw new Error(`the prelude does not parse: ${JSON.stringify(parsed.problems[0])}`);
    preludeProgram = parsed.program;
  }
  return preludeProgram;
}

export function compileSource(text: string, file: string, options: CompileOptions = {}): CompileResult {
  const sources = new Map<string, string>([[file, text]]);
  const units: SourceUnit[] = [];
  const diagnostics: Diagnostic[] = [];
  if (!options.noPrelude) {
    sources.set(PRELUDE_FILE, PRELUDE_SOURCE);
    units.push({ program: prelude(), text: PRELUDE_SOURCE, isPrelude: true });
  }
  const parsed = parseSource(text, file);
  diagnostics.push(...parsed.problems.slice(0, 100).map(syntaxDiagnostic));
  if (parsed.problems.length > 100) diagnostics.push(diagnostic('PEER0003', null, { shown: 100 }));
  if (!parsed.program) return { module: null, diagnostics, sources, program: null };
  const program = options.set?.length ? applyOverrides(parsed.program, options.set, sources, diagnostics) : parsed.program;
  if (diagnostics.length) return { module: null, diagnostics, sources, program: parsed.program };
  units.push({ program, text, isPrelude: false });
  const checked = checkProgram(units, { entry: options.entry, observe: options.observe });
  // With overrides, every error says which values the program was checked with.
  const note = options.set?.length ? `checked with ${options.set.map(([n, v]) => `--set ${n}=${v}`).join(' ')}` : undefined;
  const found = note ? checked.diagnostics.map((d) => (d.severity === 'error' ? { ...d, notes: [...(d.notes ?? []), note] } : d)) : checked.diagnostics;
  return { module: checked.module, diagnostics: [...diagnostics, ...found], sources, program: parsed.program };
}
