// metrics.jsonl: one JSON object a line, appended as the run goes and never rewritten. A
// `{ split: 'resume', step: S }` line says the run continued from its checkpoint at step S, so
// the lines before it with a later step belong to a stretch the checkpoint never saw and are
// dropped. A last line without its newline is a write cut short by a kill: dropped, with a
// warning. Without Node built-ins (the playground reads the same format).
export interface MetricsLine {
  step: number;
  split: string;
  [key: string]: unknown;
}

export interface ParsedMetrics<R> {
  rows: R[];
  warnings: string[];
}

export function parseMetrics<R extends MetricsLine = MetricsLine>(text: string, file = 'metrics.jsonl'): ParsedMetrics<R> {
  const warnings: string[] = [];
  const lines = text.split('\n');
  const tail = lines.pop()!;
  if (tail.trim()) warnings.push(`the last line of ${file} is incomplete (the run was stopped while writing it); it is ignored`);
  let rows: R[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      row = undefined;
    }
    const r = row as MetricsLine | undefined;
    if (typeof r !== 'object' || r === null || Array.isArray(r) || typeof r.step !== 'number' || typeof r.split !== 'string') {
      warnings.push(`line ${i + 1} of ${file} is not a metrics record; it is ignored`);
      return;
    }
    if (r.split === 'resume') rows = rows.filter((p) => (p as MetricsLine).step <= r.step);
    rows.push(r as R);
  });
  return { rows, warnings };
}
