// Writing safetensors files (Node only; the format itself is in safetensors.ts).
import { closeSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';
import { chunks, headerBytes, type TensorToWrite } from './safetensors.js';
import { ensureDir, onFile } from './files.js';

/**
 * Writes atomically (temporary file, then rename), streaming large tensors in chunks; missing
 * parent folders are created. File-system failures are PEER0800 errors naming `path`.
 */
export function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): void {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    /* not there yet: the usual case */
  }
  if (isDir) throw new CompileError(diagnostic('PEER0800', null, { action: 'write', path, reason: 'it is a folder; give a file name such as out.safetensors' }));
  ensureDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = onFile('write', path, () => openSync(tmp, 'w'));
  try {
    onFile('write', path, () => {
      writeSync(fd, headerBytes(tensors, metadata));
      for (const t of tensors) for (const c of chunks(t)) writeSync(fd, c);
      closeSync(fd);
      renameSync(tmp, path);
    });
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* never created */ }
    throw e;
  }
}
