// Parser goldens: the AST of every example (and the prelude) in S-expression form.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSource } from '../grammar/parse.js';
import { printProgram } from '../grammar/print.js';
import { PRELUDE_SOURCE } from '../src/frontend.js';

const examples = join(import.meta.dirname, '..', 'examples');
const golden = join(import.meta.dirname, 'golden');

describe('parser goldens', () => {
  const files = readdirSync(examples).filter((f) => f.endsWith('.peer'));
  for (const f of files)
    it(f, async () => {
      const r = parseSource(readFileSync(join(examples, f), 'utf8'), f);
      expect(r.problems).toEqual([]);
      await expect(printProgram(r.program!)).toMatchFileSnapshot(join(golden, f.replace('.peer', '.ast')));
    });
  it('the prelude', async () => {
    const r = parseSource(PRELUDE_SOURCE, 'prelude');
    expect(r.problems).toEqual([]);
    await expect(printProgram(r.program!)).toMatchFileSnapshot(join(golden, 'prelude.ast'));
  });
});

describe('precedence and forms', () => {
  const expr = (src: string) => printProgram(parseSource(`const a = ${src}`, 't').program!).replace(/^@1:1 \(const a (.*)\)\n$/, '$1');
  it.each([
    ['1 + 2 * 3', '(+ 1 (* 2 3))'],
    ['(1 + 2) * 3', '(* (+ 1 2) 3)'],
    ['-2^2', '(neg (^ 2 2))'],
    ['2^3^2', '(^ 2 (^ 3 2))'],
    ['a - b - c', '(- (- a b) c)'],
    ['a * n + b', '(+ (* a n) b)'],
    ['x[..., 0:dk/2, None]', '(index x ... 0:(/ dk 2) None)'],
    ['x[:, 1]', '(index x : 1)'],
    ['f(x, axis=-1)', '(f x axis=(neg 1))'],
    ['[T, h*k]', '[T (* h k)]'],
    ['1e-3 + .5', '(+ 0.001 0.5)'],
  ])('%s', (src, want) => expect(expr(src)).toBe(want));

  it('a call must open its parenthesis on the callee line', () => {
    const src = 'layer f(x: [T]) -> [T] {\n  y = x\n  (a, b) = topk(y, 1)\n  return a\n}\n';
    const r = parseSource(src, 't');
    expect(r.problems).toEqual([]);
    expect(printProgram(r.program!)).toContain('(= (a b) (topk y 1))');
  });

  it('reports several syntax errors in one run', () => {
    const r = parseSource('const = 1\nparam : [2]\nlayer f( -> [T] {}\n', 't');
    expect(r.problems.length).toBeGreaterThanOrEqual(3);
    expect(new Set(r.problems.map((p) => p.span.line))).toEqual(new Set([1, 2, 3]));
  });
});
