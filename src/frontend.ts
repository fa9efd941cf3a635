// The front door of the compiler: source text -> checked IR module, or diagnostics.
import type { Span } from '../grammar/ast.js';
import { parseSource, type SyntaxProblem } from '../grammar/parse.js';
import { checkProgram, type SourceUnit } from './check/elaborate.js';
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
}

export function compileSource(text: string, file: string, options: CompileOptions = {}): CompileResult {
  const sources = new Map<string, string>([[file, text]]);
  const units: SourceUnit[] = [];
  const diagnostics: Diagnostic[] = [];
  if (!options.noPrelude) {
    const prelude = parseSource(PRELUDE_SOURCE, PRELUDE_FILE);
    if (!prelude.program) throw new Error(`the prelude does not parse: ${JSON.stringify(prelude.problems[0])}`);
    sources.set(PRELUDE_FILE, PRELUDE_SOURCE);
    units.push({ program: prelude.program, text: PRELUDE_SOURCE, isPrelude: true });
  }
  const parsed = parseSource(text, file);
  diagnostics.push(...parsed.problems.slice(0, 100).map(syntaxDiagnostic));
  if (parsed.problems.length > 100) diagnostics.push(diagnostic('PEER0003', null, { shown: 100 }));
  if (!parsed.program) return { module: null, diagnostics, sources };
  units.push({ program: parsed.program, text, isPrelude: false });
  const checked = checkProgram(units, { entry: options.entry });
  return { module: checked.module, diagnostics: [...diagnostics, ...checked.diagnostics], sources };
}
