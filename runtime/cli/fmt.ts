// `peerc fmt`: files and folders (every .peer file under them) rewritten in the canonical layout,
// `--check` to fail (exit 1) where a file is not formatted without touching it (for CI), and
// `--stdin` to format standard input to standard output (for editors). Syntax errors are
// reported with codes, file:line:col and a caret, as every command reports them.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSource } from '../../src/frontend.js';
import { formatSource } from '../../src/format.js';
import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';
import { readFileChecked } from '../../src/io/tensors.js';
import { UsageError } from '../../src/io/usage-error.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { ProgramErrors } from './errors.js';

function peerFiles(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    return [path]; // readFileChecked says what is wrong with it
  }
  if (!st.isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && e.name !== 'node_modules')
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? peerFiles(join(path, e.name)) : e.name.endsWith('.peer') ? [join(path, e.name)] : []));
}

export function runFormat(paths: string[], o: { check: boolean; stdin: boolean }): number {
  if (o.stdin) {
    if (paths.length) throw new UsageError("'peerc fmt --stdin' reads standard input; give it no files");
    const text = readFileSync(0, 'utf8');
    const r = formatSource(text, '<stdin>');
    if ('diagnostics' in r) throw new ProgramErrors(r.diagnostics, new Map([['<stdin>', text]]));
    process.stdout.write(r.text);
    return 0;
  }
  if (!paths.length) throw new UsageError("'peerc fmt' needs .peer files or folders (or --stdin)");
  const files = paths.flatMap(peerFiles);
  if (!files.length) throw new UsageError(`no .peer files in ${paths.join(', ')}`);
  const errors: Diagnostic[] = [];
  const sources = new Map<string, string>();
  const changed: string[] = [];
  for (const file of files) {
    const decoded = decodeSource(readFileChecked(file), file);
    if ('error' in decoded) {
      errors.push(decoded.error);
      continue;
    }
    const r = formatSource(decoded.text, file);
    if ('diagnostics' in r) {
      sources.set(file, decoded.text);
      errors.push(...r.diagnostics);
      continue;
    }
    if (r.text === decoded.text) continue;
    changed.push(file);
    if (o.check) process.stdout.write(`${file}: not formatted (peerc fmt ${file})\n`);
    else writeFileDurably(file, r.text);
  }
  if (errors.length) throw new ProgramErrors(errors, sources);
  const n = files.length;
  if (o.check) {
    if (!changed.length) process.stdout.write(`${n} file${n === 1 ? '' : 's'} formatted\n`);
    return changed.length ? 1 : 0;
  }
  process.stdout.write(`${changed.length ? `formatted ${changed.join(', ')}` : 'nothing to change'} (${n} file${n === 1 ? '' : 's'})\n`);
  return 0;
}
