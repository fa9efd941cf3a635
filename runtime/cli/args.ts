// A small, strict argument parser: unknown flags and missing values are usage errors.
import { UsageError } from '../../src/io/usage-error.js';

export interface FlagSpec {
  /** 'repeated': a string flag that may be given several times (values joined by newlines). */
  [flag: string]: 'string' | 'number' | 'integer' | 'boolean' | 'repeated';
}

/** `--help` or `-h` among a command's arguments: print that command's help. */
export class HelpRequested extends Error {
  constructor(readonly command: string) {
    super(`help for ${command}`);
  }
}

export interface Parsed {
  positional: string[];
  flags: Map<string, string | number | boolean>;
}

export function parseArgs(argv: string[], spec: FlagSpec, command: string): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | number | boolean>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') throw new HelpRequested(command);
    const short = /^-[a-z]$/.test(a);
    if ((!a.startsWith('--') || a === '--') && !short) {
      positional.push(a);
      continue;
    }
    const eq = short ? -1 : a.indexOf('=');
    const name = short ? a.slice(1) : eq < 0 ? a.slice(2) : a.slice(2, eq);
    const kind = spec[name];
    if (!kind) throw new UsageError(`'peerc ${command}' has no option --${name}${Object.keys(spec).length ? ` (options: ${Object.keys(spec).map((f) => `--${f}`).join(', ')})` : ''}`);
    if (kind === 'boolean') {
      flags.set(name, true);
      continue;
    }
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    if (kind === 'number' || kind === 'integer') {
      const n = Number(value);
      if (!Number.isFinite(n) || value.trim() === '') throw new UsageError(`--${name} needs a number, not '${value}'`);
      if (kind === 'integer' && !Number.isSafeInteger(n)) throw new UsageError(`--${name} needs a whole number, not '${value}'`);
      flags.set(name, n);
    } else if (kind === 'repeated' && flags.has(name)) flags.set(name, `${flags.get(name) as string}\n${value}`);
    else flags.set(name, value);
  }
  return { positional, flags };
}

export { recordedOverrides, setOverrides } from '../train/settings.js';
