// Formatting as the CLI, the language server and the tests use it: source text to its canonical
// layout (grammar/format.ts), or the syntax errors that stop it, as coded diagnostics.
import { formatProgram } from '../grammar/format.js';
import { parseSource } from '../grammar/parse.js';
import type { Diagnostic } from './diagnostics/diagnostic.js';
import { syntaxDiagnostic } from './frontend.js';

export function formatSource(text: string, file: string): { text: string } | { diagnostics: Diagnostic[] } {
  const parsed = parseSource(text, file);
  if (!parsed.program) return { diagnostics: parsed.problems.slice(0, 100).map(syntaxDiagnostic) };
  return { text: formatProgram(parsed.program, text) };
}
