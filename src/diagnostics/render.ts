// Renders diagnostics the way compilers users know do: file:line:col, the line, a caret.
import type { Diagnostic } from './diagnostic.js';

export function renderDiagnostic(d: Diagnostic, sources: Map<string, string>): string {
  const head = `${d.severity} ${d.code}: ${d.message}`;
  const out: string[] = [];
  if (!d.span) {
    out.push(head);
  } else {
    const { file, line, col } = d.span;
    out.push(`${file}:${line}:${col}: ${head}`);
    const text = sources.get(file);
    const lineText = text === undefined ? undefined : sourceLine(text, line);
    if (lineText !== undefined) {
      // Long lines are shown as a window around the column, marked with '…' where cut.
      const start = col > 120 ? col - 1 - 60 : 0;
      const end = Math.min(lineText.length, start + 200);
      const shown = (start > 0 ? '…' : '') + lineText.slice(start, end) + (end < lineText.length ? '…' : '');
      const caretAt = col - 1 - start + (start > 0 ? 1 : 0);
      const gutter = String(line).length;
      const width = Math.max(1, Math.min(d.span.length, shown.length - caretAt, 200));
      out.push(`${' '.repeat(gutter)} |`);
      out.push(`${line} | ${shown.replace(/[\t\r\x00-\x1f]/g, ' ')}`);
      out.push(`${' '.repeat(gutter)} | ${' '.repeat(caretAt)}${'^'.repeat(width)}`);
    }
  }
  for (const n of d.notes) out.push(`  = note: ${n}`);
  return out.join('\n');
}

function sourceLine(text: string, line: number): string | undefined {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) return undefined;
    start = nl + 1;
  }
  const end = text.indexOf('\n', start);
  return text.slice(start, end < 0 ? text.length : end).replace(/\r$/, '');
}

export function renderAll(ds: Diagnostic[], sources: Map<string, string>): string {
  const errors = ds.filter((d) => d.severity === 'error').length;
  const body = ds.map((d) => renderDiagnostic(d, sources)).join('\n\n');
  return `${body}\n\n${errors} error${errors === 1 ? '' : 's'}\n`;
}
