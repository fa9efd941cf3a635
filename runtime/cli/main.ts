// peerc: the command-line driver. Exit status 0 ok, 1 errors in the program or its data,
// 2 bad usage. No input produces a stack trace.
// First: engine flags must be set before any WebAssembly module is compiled.
import './engine-flags.js';
import { readFileSync, writeSync } from 'node:fs';
import { PRELUDE_FILE, PRELUDE_SOURCE } from '../../src/frontend.js';
import { CompileError } from '../../src/diagnostics/diagnostic.js';
import { ProgramErrors } from './errors.js';
import { BackendUnavailable } from '../backends/info.js';
import { KernelFallback } from '../executor.js';
import { PEERC_VERSION } from './version.js';
import { renderAll, renderDiagnostic } from '../../src/diagnostics/render.js';
import { UsageError } from '../../src/io/tensors.js';
import { COMMANDS, usage } from './commands.js';
import { HelpRequested } from './args.js';
import { HELP } from './help.js';
import { StoppedBeforeStart } from './train.js';
import { fileError, isFileSystemError } from '../../src/io/files.js';
// Output piped into a reader that stops early (| head) is not an error (see output.ts).
import './output.js';


function out(fd: number, s: string): void {
  try {
    writeSync(fd, s);
  } catch {
    /* the terminal or pipe is gone: nothing more can be said */
  }
}

/** The source a run-time error points into, so it prints with its line and caret. */
function sourcesFor(file: string | undefined): Map<string, string> {
  if (file === undefined) return new Map();
  if (file === PRELUDE_FILE) return new Map([[file, PRELUDE_SOURCE]]);
  try {
    return new Map([[file, readFileSync(file, 'utf8')]]);
  } catch {
    return new Map();
  }
}

function helpFor(command: string): number {
  const cmd = COMMANDS[command];
  if (!cmd) throw new UsageError(`unknown command '${command}'\n\n${usage()}`);
  out(1, `usage: peerc ${cmd.summary.split('\n')[0]!.replace(/\s{3,}.*$/, '')}\n\n${HELP[command] ?? ''}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'help' && rest[0] !== undefined) return helpFor(rest[0]);
    if (!command || command === 'help' || command === '--help' || command === '-h') {
      out(1, usage());
      return command ? 0 : 2;
    }
    if (command === '--version') {
      out(1, `peerc ${PEERC_VERSION}\n`);
      return 0;
    }
    const cmd = COMMANDS[command];
    if (!cmd) throw new UsageError(`unknown command '${command}'\n\n${usage()}`);
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof HelpRequested) return helpFor(e.command);
    if (e instanceof StoppedBeforeStart) {
      out(2, 'peerc: stopped by a signal before training started; nothing was trained or written\n');
      return e.exitCode;
    }
    if (e instanceof BackendUnavailable) {
      out(2, `peerc: ${e.message}\n`);
      return 2;
    }
    if (e instanceof KernelFallback) {
      out(2, `peerc: error: ${e.message}\n`);
      return 1;
    }
    if (e instanceof UsageError) {
      out(2, `peerc: ${e.message}\n`);
      return 2;
    }
    if (e instanceof ProgramErrors) {
      out(2, renderAll(e.diagnostics, e.sources));
      return 1;
    }
    if (e instanceof CompileError) {
      out(2, renderDiagnostic(e.diagnostic, sourcesFor(e.diagnostic.span?.file)) + '\n');
      return 1;
    }
    if (e instanceof RangeError && /call stack/.test(e.message)) {
      out(2, 'peerc: error: the program is too deeply nested to process\n');
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'EPIPE') return 0;
    if (isFileSystemError(err)) {
      out(2, renderDiagnostic(fileError('use', err.path ?? 'a file', err).diagnostic, new Map()) + '\n');
      return 1;
    }
    out(2, `peerc: internal error: ${err?.message ?? String(e)}\n(this is a bug in peerc; please report it with the input that caused it)\n`);
    return 3;
  }
}


main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
