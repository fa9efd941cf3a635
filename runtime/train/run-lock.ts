// One trainer per run folder: `RUN_DIR/.peerc-lock` names the process that holds it (pid, host,
// start time, command). It is created whole or not at all (written to a temporary file, then
// hard-linked into place, which fails if a lock exists), so a reader never sees half a lock.
// A lock whose process is gone (same host) is taken over with a note; one held by a live
// process, or by another host, is a coded error naming that process.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { processAlive } from '../../src/io/durable.js';
import { faultPoint } from '../../src/io/faults.js';
import { fileError, isFileSystemError } from '../../src/io/files.js';

export const LOCK_FILE = '.peerc-lock';

interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface RunLock {
  /** Set when a stale lock was taken over: what to tell the user. */
  note?: string;
  release(): void;
}

function readLock(path: string): LockInfo | undefined {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
    if (typeof j.pid === 'number' && typeof j.host === 'string') return { pid: j.pid, host: j.host, started: String(j.started ?? '?'), command: String(j.command ?? '?') };
  } catch {
    /* unreadable or damaged: treated as stale */
  }
  return undefined;
}

/** Takes the lock of `dir` (which must exist) for this process. */
export function lockRunFolder(dir: string, command: string): RunLock {
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command };
  const tmp = join(dir, `${LOCK_FILE}.peerc-tmp-${process.pid}`);
  try {
    writeFileSync(tmp, JSON.stringify(me) + '\n');
  } catch (e) {
    if (isFileSystemError(e)) throw fileError('lock the run folder', dir, e as NodeJS.ErrnoException);
    throw e;
  }
  let note: string | undefined;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) {
          if (isFileSystemError(e)) throw fileError('lock the run folder', dir, e as NodeJS.ErrnoException);
          throw e;
        }
      }
      const other = readLock(path);
      if (other && (other.host !== me.host || processAlive(other.pid))) {
        const where = other.host === me.host ? '' : ` on ${other.host} (another machine: peerc cannot tell whether it still runs; if it does not, delete ${path})`;
        throw new CompileError(diagnostic('PEER0709', null, { dir, owner: `process ${other.pid}${where}, started ${other.started}: ${other.command}` }));
      }
      note = other ? `took over the lock of process ${other.pid} (started ${other.started}), which is no longer running` : `replaced a damaged lock file ${path}`;
      try {
        unlinkSync(path);
      } catch {
        /* another process took it over first: the next link attempt tells */
      }
    }
  } finally {
    try { unlinkSync(tmp); } catch { /* gone */ }
  }
  faultPoint('lock');
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock: never one a later process took over.
    if (readLock(path)?.pid === process.pid) try { unlinkSync(path); } catch { /* gone */ }
  };
  process.on('exit', release);
  return { note, release };
}
