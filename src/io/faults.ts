// Fault injection for the file layer, so tests can make a disk fill up, a write come up short or
// the process die at a chosen moment, the way they happen on shared machines. Off unless the
// environment variable PEERC_FAULTS is set (comma-separated):
//   enospc-after=BYTES   writes fail with ENOSPC once BYTES bytes have been written by this process
//   short-after=BYTES    a write that crosses BYTES writes only up to it, and later writes write 0
//   enospc-on=NAME#N     the Nth write (or append) to a file named NAME fails with ENOSPC part way
//   short-on=NAME#N      the Nth write (or append) to a file named NAME comes up short part way
//   kill-at=POINT[:N]    SIGKILL at the Nth (default 1st) time the named point is reached:
//                        'write' (after a chunk of a file), 'fsync', 'rename', 'append', 'lock'
export interface FaultPlan {
  onFile?: { kind: 'enospc' | 'short'; name: string; nth: number };
  enospcAfter?: number;
  shortAfter?: number;
  killAt?: { point: string; nth: number };
}

function parse(spec: string | undefined): FaultPlan {
  const plan: FaultPlan = {};
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [key, value = ''] = part.split('=');
    if (key === 'enospc-after') plan.enospcAfter = Number(value);
    else if (key === 'short-after') plan.shortAfter = Number(value);
    else if (key === 'enospc-on' || key === 'short-on') {
      const [name, nth] = value.split('#');
      plan.onFile = { kind: key === 'enospc-on' ? 'enospc' : 'short', name: name!, nth: nth ? Number(nth) : 1 };
    } else if (key === 'kill-at') {
      const [point, nth] = value.split(':');
      plan.killAt = { point: point!, nth: nth ? Number(nth) : 1 };
    }
  }
  return plan;
}

const plan: FaultPlan = parse(typeof process !== 'undefined' ? process.env?.PEERC_FAULTS : undefined);
let written = 0;
const reached = new Map<string, number>();

const perFile = new Map<string, number>();
/** A write to this file is about to start: the bytes it may write before it fails, or undefined for no limit. */
export function fileBudget(path: string, firstPartBytes: number): { budget: number; kind: 'enospc' | 'short' } | undefined {
  const f = plan.onFile;
  if (!f) return undefined;
  const name = path.split(/[\\/]/).pop();
  if (name !== f.name) return undefined;
  const n = (perFile.get(name) ?? 0) + 1;
  perFile.set(name, n);
  return n === f.nth ? { budget: Math.min(4096, Math.floor(firstPartBytes / 2)), kind: f.kind } : undefined;
}

/** How many of `want` bytes the next write may write (throws ENOSPC where the plan says so). */
export function allowedBytes(want: number, file?: { budget: number; kind: 'enospc' | 'short'; used: number }): number {
  if (file) {
    const left = file.budget - file.used;
    if (want > left) {
      if (file.kind === 'enospc' && left <= 0) throw injectedEnospc();
      return Math.max(0, left);
    }
  }
  if (plan.enospcAfter !== undefined && written + want > plan.enospcAfter) throw injectedEnospc();
  if (plan.shortAfter !== undefined && written + want > plan.shortAfter) return Math.max(0, plan.shortAfter - written);
  return want;
}

export function countWritten(n: number): void {
  written += n;
}

/** A named moment in a write; the plan may kill the process here. */
export function faultPoint(point: string): void {
  if (!plan.killAt || plan.killAt.point !== point) return;
  const n = (reached.get(point) ?? 0) + 1;
  reached.set(point, n);
  if (n === plan.killAt.nth) process.kill(process.pid, 'SIGKILL');
}

function injectedEnospc(): NodeJS.ErrnoException {
  const err = new Error('ENOSPC: no space left on device, write (injected)') as NodeJS.ErrnoException;
  err.code = 'ENOSPC';
  err.syscall = 'write';
  return err;
}
