// Writing safetensors files (Node only; the format itself is in safetensors.ts).
import { closeSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { chunks, headerBytes, type TensorToWrite } from './safetensors.js';

/** Writes atomically (temporary file, then rename), streaming large tensors in chunks. */
export function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = {}): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, headerBytes(tensors, metadata));
    for (const t of tensors) for (const c of chunks(t)) writeSync(fd, c);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* never created */ }
    throw e;
  }
}
