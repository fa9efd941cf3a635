// Checker diagnostics as the editor shows them: a range in the edited text, the code, and the
// report exactly as the CLI renders it.
import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';
import { renderDiagnostic } from '../../src/diagnostics/render.js';
import type { PageDiagnostic } from './protocol.js';

export function pageDiagnostic(d: Diagnostic, file: string, sources: Map<string, string>): PageDiagnostic {
  const here = d.span !== null && d.span.file === file;
  const text = sources.get(file) ?? '';
  const from = here ? Math.min(d.span!.offset, text.length) : null;
  const to = here ? Math.min(text.length, from! + Math.max(1, d.span!.length)) : null;
  return {
    code: d.code,
    message: d.message + d.notes.map((n) => `\nnote: ${n}`).join(''),
    from, to,
    line: d.span?.line ?? null,
    col: d.span?.col ?? null,
    rendered: renderDiagnostic(d, sources),
  };
}
