// Standard output that may close under us: `peerc ... | head` closes the pipe early, a closed
// terminal (SIGHUP) takes the tty away. Most commands then stop quietly (their reader is gone);
// `peerc train` keeps training and only stops printing: a run never ends because nobody reads
// its progress, and never exits 0 with nothing done.
let closed = false;
let keepRunning = false;

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  closed = true;
  if (!keepRunning && e.code === 'EPIPE') process.exit(0);
});

/** For long runs: a closed stdout stops the output, not the process. */
export function keepRunningWithoutStdout(): void {
  keepRunning = true;
}

export function stdoutOpen(): boolean {
  return !closed && !process.stdout.destroyed;
}

/** Writes to stdout unless it has closed. */
export function print(s: string): void {
  if (!stdoutOpen()) return;
  try {
    process.stdout.write(s);
  } catch {
    closed = true;
  }
}
