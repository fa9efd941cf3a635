// Fault injection for the file layer, so tests can make a disk fill up, a write come up short or
// the process die at a chosen moment, the way they happen on shared machines. Off unless the
// environment variable PEERC_FAULTS is set (comma-separated):
//   enospc-after=BYTES   writes fail with ENOSPC once BYTES bytes have been written by this process
//   short-after=BYTES    a write that crosses BYTES writes only up to it, and later writes write 0
//   kill-at=POINT[:N]    SIGKILL at the Nth (default 1st) time the named point is reached:
//                        'write' (after a chunk of a file), 'fsync', 'rename', 'append', 'lock'
export interface FaultPlan {
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
    else if (key === 'kill-at') {
      const [point, nth] = value.split(':');
      plan.killAt = { point: point!, nth: nth ? Number(nth) : 1 };
    }
  }
  return plan;
}

const plan: FaultPlan = parse(typeof process !== 'undefined' ? process.env?.PEERC_FAULTS : undefined);
let written = 0;
const reached = new Map<string, number>();

/** How many of `want` bytes the next write may write (throws ENOSPC where the plan says so). */
export function allowedBytes(want: number): number {
  if (plan.enospcAfter !== undefined && written + want > plan.enospcAfter) {
    const err = new Error('ENOSPC: no space left on device, write (injected)') as NodeJS.ErrnoException;
    err.code = 'ENOSPC';
    err.syscall = 'write';
    throw err;
  }
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
