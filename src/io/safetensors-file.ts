// Writing safetensors files (Node only; the format itself is in safetensors.ts).
import { statSync } from 'node:fs';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';
import { chunks, headerBytes, type TensorToWrite } from './safetensors.js';
import { writeFileDurably } from './durable.js';

/**
 * Writes atomically and durably (src/io/durable.ts), streaming large tensors in chunks; missing
 * parent folders are created. Failures are PEER0800/PEER0801 errors naming `path`.
 */
export function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* not there yet: the usual case */
  }
  if (isDir) throw new CompileError(diagnostic('PEER0800', null, { action: 'write', path, reason: 'it is a folder; give a file name such as out.safetensors' }));
  writeFileDurably(path, (function* () {
    yield headerBytes(tensors, metadata);
    for (const t of tensors) yield* chunks(t);
  })());
}
