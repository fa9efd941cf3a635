// fast-check fuzzing of the front end: random token soups and mutations of every example
// never crash, every diagnostic has a valid span, and each input finishes quickly.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileSource } from '../src/frontend.js';
import { renderAll } from '../src/diagnostics/render.js';

const examples = readdirSync(join(import.meta.dirname, '..', 'examples'))
  .filter((f) => f.endsWith('.peer'))
  .map((f) => readFileSync(join(import.meta.dirname, '..', 'examples', f), 'utf8'));

const TOKENS = [
  'const', 'param', 'buffer', 'layer', 'model', 'train', 'return', 'int', 'f32', 'index', 'None', 'x', 'T', 'd', 'k', 'N',
  'topk', 'einsum', 'gather', 'softmax', 'reshape', 'sqrt', 'peer', 'product_topk', '"td,hd->th"', '0', '1', '2', '16',
  '1024', '0.5', '1e-3', '(', ')', '[', ']', '{', '}', ',', ':', '=', '->', '...', '+', '-', '*', '/', '%', '^', '@',
  ';', '\n', ' ', '#c\n', '@sparse', 'normal(0, 1)', '[T, d]', 'x: [T, d]',
];

function checkInvariants(text: string): void {
  const t0 = performance.now();
  const r = compileSource(text, 'fuzz.peer');
  const ms = performance.now() - t0;
  expect(ms).toBeLessThan(3000);
  for (const d of r.diagnostics) {
    expect(d.code).toMatch(/^PEER\d{4}$/);
    if (!d.span) continue;
    if (d.span.file !== 'fuzz.peer') continue;
    expect(d.span.line).toBeGreaterThanOrEqual(1);
    expect(d.span.col).toBeGreaterThanOrEqual(1);
    expect(d.span.length).toBeGreaterThanOrEqual(1);
    expect(d.span.offset).toBeLessThanOrEqual(text.length);
    expect(d.span.line).toBeLessThanOrEqual(text.split('\n').length);
  }
  renderAll(r.diagnostics, r.sources);
  if (r.diagnostics.length === 0) expect(r.module).not.toBeNull();
}

describe('fuzzing the front end', () => {
  it('random token soups', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom(...TOKENS), { maxLength: 80 }), (toks) => checkInvariants(toks.join(' '))), { numRuns: 300 });
  });

  it('random strings, including control characters and non-ASCII', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => checkInvariants(s)), { numRuns: 300 });
  });

  it('mutations of every example', () => {
    const mutation = fc.record({
      example: fc.nat({ max: examples.length - 1 }),
      edits: fc.array(
        fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), del: fc.nat({ max: 6 }), ins: fc.constantFrom('', ...TOKENS) }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(mutation, ({ example, edits }) => {
        let s = examples[example]!;
        for (const e of edits) {
          const at = Math.floor(e.at * s.length);
          s = s.slice(0, at) + e.ins + s.slice(at + e.del);
        }
        checkInvariants(s);
      }),
      { numRuns: 300 },
    );
  });

  it('hostile shapes of input', () => {
    for (const s of [
      '',
      '\n\n\n',
      '('.repeat(10_000) + ')'.repeat(10_000),
      'const a = ' + '-'.repeat(10_000) + '1',
      'const a = ' + '2^'.repeat(10_000) + '2',
      'const a = ' + '1+'.repeat(50_000) + '1',
      'const a = ' + '['.repeat(10_000),
      'layer f(x: [T]) -> [T] { return ' + 'relu('.repeat(5000) + 'x' + ')'.repeat(5000) + ' }',
      'const a = 9'.repeat(1000),
      '\u0000\u0001\u0002',
      '"'.repeat(1000),
    ])
      checkInvariants(s);
  });
});
