import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { join } from 'node:path';
import { compileSource, decodeSource } from '../src/frontend.js';
import { renderAll } from '../src/diagnostics/render.js';
import type { IRModule } from '../src/ir/graph.js';
import { entryFunction } from '../src/interp/interpreter.js';
import { normalAt, uniformAt } from '../src/interp/rng.js';
import { Tensor } from '../src/interp/tensor.js';

/** Compiles and renders every diagnostic exactly as the CLI prints it. */
export function diagnose(text: string, file = 'test.peer'): string {
  const r = compileSource(text, file);
  return renderAll(r.diagnostics, r.sources);
}

export function diagnoseBytes(bytes: Uint8Array, file: string): string {
  const d = decodeSource(bytes, file);
  if ('error' in d) return renderAll([d.error], new Map());
  return diagnose(d.text, file);
}

export function compileOk(text: string, file = 'test.peer', entry?: string): IRModule {
  const r = compileSource(text, file, { entry });
  if (!r.module) throw new Error(renderAll(r.diagnostics, r.sources));
  return r.module;
}

/** Small random inputs for an entry: symbolic dims are 3 (tokens) or 5, index inputs in range. */
export function sampleInputs(m: IRModule, seed = 0): Map<string, Tensor> {
  const fn = entryFunction(m);
  const sizes = new Map<string, number>();
  const out = new Map<string, Tensor>();
  for (const id of fn.inputs) {
    const n = fn.graph.node(id);
    const type = n.types[0]!;
    const shape = type.shape.map((d) => d.evaluate((s) => sizes.get(s) ?? (sizes.set(s, 3 + sizes.size * 2), sizes.get(s)))!);
    const size = shape.reduce((a, b) => a * b, 1);
    const limit = indexLimit(m, n.attrs.name as string);
    const data = Float64Array.from({ length: size }, (_, i) => (type.dtype === 'index' ? Math.floor(uniformAt(seed + 11, i, 0) * limit) : normalAt(seed + 11, i)));
    out.set(n.attrs.name as string, new Tensor(type.dtype, shape, data));
  }
  return out;
}

/** Rows of the smallest table an index input is gathered from (the examples embed with E). */
function indexLimit(m: IRModule, _input: string): number {
  const e = m.params.find((p) => p.name === 'E');
  return e ? e.shape[0]! : 2;
}


/** The examples at small sizes (N = 32^2 experts) so every backend runs them in seconds. */
export function smallExample(file: string): string {
  return readFileSync(join(import.meta.dirname, '..', 'examples', file), 'utf8')
    .replace(/const N = \d+\^2/, 'const N = 32^2')
    .replace(/const n = \d+ /, 'const n = 16 ');
}


/** Runs the built CLI as a user would; never a stack trace or an internal error. */
export function runPeerc(args: string[], timeout = 600_000): { status: number; stdout: string; stderr: string } {
  const root = join(import.meta.dirname, '..');
  const r = spawnSync(process.execPath, [join(root, 'dist', 'peerc.js'), ...args], { cwd: root, encoding: 'utf8', timeout });
  const all = r.stdout + r.stderr;
  expect(all, 'no stack traces').not.toMatch(/\n\s+at .*:\d+:\d+\)?\n/);
  expect(all).not.toMatch(/internal error/);
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The largest difference of `got` from `want`, relative to want's scale (at least 1): float32 results vs float64 references. */
export function scaledError(want: ArrayLike<number>, got: ArrayLike<number>): number {
  let err = 0, scale = 1;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(want[i]! - got[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return err / scale;
}

/** The .peer files of examples/. */
export const EXAMPLE_FILES: readonly string[] = readdirSync(join(import.meta.dirname, '..', 'examples')).filter((f) => f.endsWith('.peer'));

/**
 * What python3 prints for `code` (a version), or undefined where it fails, after a line saying
 * which `tests` are skipped and how to enable them (`missing`).
 */
export function pythonProbe(code: string, tests: string, missing: string): string | undefined {
  const probe = spawnSync('python3', ['-c', code], { encoding: 'utf8' });
  if (probe.status === 0) return probe.stdout.trim();
  console.log(`${tests} skipped: ${missing}`);
  return undefined;
}

/**
 * Two product-key memories (lines 18 and 19) reading one @sparse pool of sqrtN^2 rows, with an
 * optional train block after them.
 */
export function sharedPoolProgram(sqrtN: number, train = ''): string {
  return `const K = 64
const Vocab = 16
const d = 16
const N = ${sqrtN}^2
const h = 2
const k = 4
const dk = 16

param E: [K, d] = normal(0, 1)
param Wq: [2, h, dk, d] = normal(0, 1/sqrt(d))
param C1: [2, h, sqrt(N), dk/2] = normal(0, 1/sqrt(dk/2))
param C2: [2, h, sqrt(N), dk/2] = normal(0, 1/sqrt(dk/2))
param Vals: [N, d] = normal(0, 0.02) @sparse
param Wout: [d, Vocab] = normal(0, 1/sqrt(d))

model recall(keys: index[B]) -> [B, Vocab] {
  x = embedding(E, keys)
  x = x + pkm(x, Wq[0], C1[0], C2[0], Vals, k)
  x = x + pkm(x, Wq[1], C1[1], C2[1], Vals, k)
  return matmul(x, Wout)
}
${train}`;
}
