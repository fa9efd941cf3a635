// The one way peerc writes a file: a temporary file in the same folder, every byte count
// checked, fsync, rename over the old file, fsync of the folder. A failure leaves the old file
// as it was, removes the temporary file and says which file, why, and how much space is left.
// Temporary files of processes killed mid-write are removed the next time a file is written in
// that folder. Appends (metrics lines) check their byte counts the same way.
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readdirSync, renameSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';
import { allowedBytes, countWritten, faultPoint, fileBudget } from './faults.js';

type FileFault = { budget: number; kind: 'enospc' | 'short'; used: number };
const faultFor = (path: string, bytes: number): FileFault | undefined => {
  const f = fileBudget(path, bytes);
  return f && { ...f, used: 0 };
};
import { ensureDir, isFileSystemError, fileError } from './files.js';

const TMP = /\.peerc-tmp-(\d+)$|\.safetensors\.tmp-(\d+)$/;
const encoder = new TextEncoder();

/** Is process `pid` running on this machine? (EPERM: it runs, as another user.) */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Free bytes for an unprivileged user on the device of `dir`, or undefined where unknown. */
export function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Removes temporary files that processes no longer running left in `dir`; returns their names. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TMP.exec(name);
    if (!m) continue;
    const pid = Number(m[1] ?? m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}

/** Why a write failed, as a coded error naming the file and the space left. */
function writeFailed(path: string, e: unknown, existed: boolean): CompileError {
  const err = e as NodeJS.ErrnoException;
  const free = freeBytes(dirname(resolve(path)));
  const reason = err.code === 'ENOSPC' || err.code === 'SHORT'
    ? `${err.code === 'SHORT' ? 'the device accepted only part of the data' : 'no space is left on the device'}${free !== undefined ? ` (${formatBytes(free)} free)` : ''}`
    : isFileSystemError(err) ? fileError('write', path, err).diagnostic.message.replace(/^cannot write .*?: /, '') : err.message;
  return new CompileError(diagnostic('PEER0801', null, { path, reason, kept: existed ? `the previous ${basename(path)} is unchanged` : 'no file was written' }));
}

/** Writes all of `bytes` at the file's position, or throws: a short write is an error, never ignored. */
export function writeAll(fd: number, bytes: Uint8Array, fault?: FileFault): void {
  let off = 0;
  while (off < bytes.length) {
    const want = allowedBytes(bytes.length - off, fault);
    const n = want > 0 ? writeSync(fd, bytes, off, want) : 0;
    countWritten(n);
    if (fault) fault.used += n;
    if (n <= 0) {
      const err = new Error(`short write: ${off} of ${bytes.length} bytes written`) as NodeJS.ErrnoException;
      err.code = 'SHORT';
      throw err;
    }
    off += n;
  }
}

function syncFolder(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* some file systems cannot sync a folder; the rename itself is still atomic */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export type Content = string | Uint8Array | Iterable<Uint8Array | string>;

function* partsOf(content: Content): Generator<Uint8Array> {
  if (typeof content === 'string') yield encoder.encode(content);
  else if (content instanceof Uint8Array) yield content;
  else for (const c of content) yield typeof c === 'string' ? encoder.encode(c) : c;
}

/**
 * Replaces `path` with `content` atomically and durably (see the top of this file). Missing
 * folders are created. Failures are PEER0800 (the path cannot be used) or PEER0801 (the write
 * failed; the old file is intact).
 */
export function writeFileDurably(path: string, content: Content): void {
  let existed = false;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new CompileError(diagnostic('PEER0800', null, { action: 'write', path, reason: 'it is a folder; give a file name' }));
    existed = true;
  } catch (e) {
    if (e instanceof CompileError) throw e;
  }
  const dir = dirname(resolve(path));
  ensureDir(dir);
  removeStaleTemps(dir);
  const tmp = join(dir, `.${basename(path)}.peerc-tmp-${process.pid}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    if (isFileSystemError(e)) throw fileError('write', path, e as NodeJS.ErrnoException);
    throw e;
  }
  try {
    let fault: FileFault | undefined, first = true;
    for (const part of partsOf(content)) {
      if (first) (fault = faultFor(path, part.length)), (first = false);
      writeAll(fd, part, fault);
      faultPoint('write');
    }
    fsyncSync(fd);
    faultPoint('fsync');
    closeSync(fd);
    fd = -1;
    faultPoint('rename');
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* never created */ }
    if (e instanceof CompileError) throw e;
    if (isFileSystemError(e) && !['ENOSPC', 'EDQUOT', 'EIO', 'EFBIG'].includes((e as NodeJS.ErrnoException).code!)) throw fileError('write', path, e as NodeJS.ErrnoException);
    throw writeFailed(path, e, existed);
  }
  syncFolder(dir);
}

/**
 * An append-only file of lines (metrics.jsonl): each line is written whole or the append is an
 * error; `sync` makes what was appended durable (before a checkpoint that refers to it).
 */
export class LineLog {
  private fd: number;
  constructor(readonly path: string) {
    ensureDir(dirname(resolve(path)));
    try {
      this.fd = openSync(path, 'a');
    } catch (e) {
      if (isFileSystemError(e)) throw fileError('write', path, e as NodeJS.ErrnoException);
      throw e;
    }
  }

  append(line: string): void {
    const start = fstatSync(this.fd).size;
    try {
      const bytes = encoder.encode(line.endsWith('\n') ? line : line + '\n');
      writeAll(this.fd, bytes, faultFor(this.path, bytes.length));
      faultPoint('append');
    } catch (e) {
      // Take back a torn line so the file still ends at a whole line.
      try { ftruncateSync(this.fd, start); } catch { /* the reader cuts torn tails too */ }
      throw writeFailed(this.path, e, true);
    }
  }

  sync(): void {
    try {
      fsyncSync(this.fd);
    } catch {
      /* best effort: the appends themselves succeeded */
    }
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* closed already */
    }
  }
}
