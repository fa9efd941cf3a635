// File-system errors are the user's (a missing folder, a read-only place, a file where a
// folder should be): they become coded errors naming the path, never "internal error".
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CompileError, diagnostic } from '../diagnostics/diagnostic.js';

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'a folder on the way does not exist',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted here',
  EROFS: 'the file system is read-only',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file is in the way',
  ENOSPC: 'no space is left on the device',
  EDQUOT: 'the disk quota is exhausted',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many files are open',
  EBUSY: 'the file is busy',
  EINVAL: 'the path is not valid here',
};

/** Is this a Node file-system error (errno code and a syscall)? */
export function isFileSystemError(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException | undefined;
  return typeof err?.code === 'string' && /^E[A-Z]+$/.test(err.code) && typeof err.syscall === 'string';
}

/** The coded error (PEER0800) for a failed file-system call on `path`. */
export function fileError(action: string, path: string, e: NodeJS.ErrnoException): CompileError {
  const reason = REASONS[e.code ?? ''] ?? `${e.code ?? 'error'} (${e.syscall ?? 'file system'})`;
  return new CompileError(diagnostic('PEER0800', null, { action, path, reason }));
}

/** Runs a file-system call, turning its errors into PEER0800 errors that name `path`. */
export function onFile<T>(action: string, path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isFileSystemError(e)) throw fileError(action, path, e as NodeJS.ErrnoException);
    throw e;
  }
}

/**
 * Creates a folder and its missing parents, one level at a time: Node's recursive mkdir
 * loops forever on some virtual file systems (/proc), and its errors name the wrong path.
 */
export function ensureDir(path: string): void {
  const missing: string[] = [];
  let cur = resolve(path);
  for (;;) {
    let st;
    try {
      st = statSync(cur);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw fileError('create the folder', path, e as NodeJS.ErrnoException);
      missing.unshift(cur);
      const up = dirname(cur);
      if (up === cur) break;
      cur = up;
      continue;
    }
    if (!st.isDirectory()) throw new CompileError(diagnostic('PEER0800', null, { action: 'create the folder', path, reason: `${cur} is a file, not a folder` }));
    break;
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Its parent exists (made or checked above): ENOENT here is a file system that refuses folders (/proc).
      if (err.code === 'ENOENT') throw new CompileError(diagnostic('PEER0800', null, { action: 'create the folder', path, reason: `the file system of ${dirname(dir)} does not allow new folders` }));
      throw fileError('create the folder', path, err);
    }
  }
}
