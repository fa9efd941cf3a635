// Reading metrics.jsonl from disk (Node): readers tolerate a torn last line; a resumed run cuts it
// off before appending, so the file goes on at a whole line.
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync } from 'node:fs';
import { onFile } from '../../src/io/files.js';
import { parseMetrics, type MetricsLine, type ParsedMetrics } from './metrics.js';

export function readMetricsFile<R extends MetricsLine = MetricsLine>(path: string): ParsedMetrics<R> {
  if (!existsSync(path)) return { rows: [], warnings: [] };
  return parseMetrics<R>(onFile('read', path, () => readFileSync(path, 'utf8')), path);
}

/** Cuts a torn last line (no newline) off the file; returns a warning when it did. */
export function cutTornTail(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  return onFile('repair', path, () => {
    const fd = openSync(path, 'r+');
    try {
      const size = fstatSync(fd).size;
      if (size === 0) return undefined;
      // Find the last newline, reading backwards in blocks.
      const block = Buffer.alloc(Math.min(size, 1 << 16));
      let end = size;
      let keep = 0;
      for (;;) {
        const from = Math.max(0, end - block.length);
        const n = readSync(fd, block, 0, end - from, from);
        const at = block.subarray(0, n).lastIndexOf(0x0a);
        if (at >= 0) {
          keep = from + at + 1;
          break;
        }
        if (from === 0) break;
        end = from;
      }
      if (keep === size) return undefined;
      ftruncateSync(fd, keep);
      return `the last line of ${path} was incomplete (the run was stopped while writing it): cut off (${size - keep} bytes)`;
    } finally {
      closeSync(fd);
    }
  });
}
