// SIGINT (Ctrl-C), SIGTERM (timeout, schedulers, containers) and SIGHUP (a closed terminal) all
// ask a run to stop: the first is noted and the run saves at the end of its step and exits with
// the conventional status (130, 143, 129); a second one of any kind exits at once.
import { constants } from 'node:os';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export const exitCodeOf = (s: NodeJS.Signals) => 128 + (constants.signals[s] ?? 0);

export class StopSignals {
  signal: NodeJS.Signals | undefined;
  private readonly handler = (s: NodeJS.Signals) => {
    if (this.signal) process.exit(exitCodeOf(s));
    this.signal = s;
  };

  constructor() {
    for (const s of STOP_SIGNALS) process.on(s, this.handler);
  }

  get stopped(): boolean {
    return this.signal !== undefined;
  }

  get exitCode(): number {
    return this.signal ? exitCodeOf(this.signal) : 0;
  }

  dispose(): void {
    for (const s of STOP_SIGNALS) process.off(s, this.handler);
  }
}
