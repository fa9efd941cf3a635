// `peerc fmt`: every program in the repository formats to itself twice over, means the same (the
// AST without spans, and the IR, are unchanged) and keeps every comment; random programs (mutated
// examples, token soups that parse) keep their AST; the examples and bench programs stay
// formatted (the CI check); the CLI's --check, --stdin and errors behave as documented.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSource } from '../grammar/parse.js';
import { printProgram } from '../grammar/print.js';
import { sourceComments } from '../grammar/format.js';
import { formatSource } from '../src/format.js';
import { compileSource } from '../src/frontend.js';
import { printModule } from '../src/ir/print.js';
import { runPeerc } from './helpers.js';

const root = join(import.meta.dirname, '..');
const programs = [
  ...['examples', 'bench'].flatMap((dir) => readdirSync(join(root, dir)).filter((f) => f.endsWith('.peer')).map((f) => `${dir}/${f}`)),
  'src/prelude.peer',
  // The error-message corpus: programs the checker rejects still format (those that parse).
  ...readdirSync(join(root, 'test', 'errors')).filter((f) => f.endsWith('.peer')).map((f) => `test/errors/${f}`)
    .filter((f) => parseSource(readFileSync(join(root, f), 'utf8'), f).program !== null),
];

const fmt = (text: string, file = 'x.peer'): string => {
  const r = formatSource(text, file);
  if ('diagnostics' in r) throw new Error(`${file}: ${r.diagnostics[0]!.message}`);
  return r.text;
};
/** The AST as an S-expression without source positions: what the program says. */
const meaning = (text: string) => printProgram(parseSource(text, 'x.peer').program!).replace(/^@\d+:\d+ /gm, '');
const ir = (text: string, file: string) => {
  const r = compileSource(text, file, file === 'src/prelude.peer' ? { noPrelude: true } : {});
  return r.module ? printModule(r.module) : `errors: ${r.diagnostics.map((d) => d.code).join(' ')}`;
};

describe('peerc fmt on every program of the repository', () => {
  for (const file of programs)
    it(file, () => {
      const src = readFileSync(join(root, file), 'utf8');
      const once = fmt(src, file);
      expect(fmt(once, file), 'formatting twice changes nothing').toBe(once);
      expect(meaning(once)).toBe(meaning(src));
      expect(ir(once, file)).toBe(ir(src, file));
      expect(sourceComments(once).map((c) => c.text)).toEqual(sourceComments(src).map((c) => c.text));
    });

  it('the examples and bench programs are formatted (peerc fmt --check, as CI runs it)', () => {
    const r = runPeerc(['fmt', '--check', 'examples', 'bench']);
    expect(r.stdout).toMatch(/^\d+ files formatted\n$/);
    expect(r.status).toBe(0);
  });
});

describe('the canonical layout', () => {
  it('spacing, parentheses, literals as written, comments in every place, blank lines kept to one', () => {
    const src = `# header

const  d=256 # width
const m=4*d    # hidden
const lr = 3e-3


param W:[d,  m]=normal(0,1/sqrt(d))   @sparse @lr( 10 )
layer   f(x:[T,d],W:[d,m],  k:int)->([T,m], index[T, k]) { # trailing the header
  # leading a statement
  y=matmul(x,W)*(2+k) ; z = -(y-1)^2   # trailing z

  (a,b)=topk(y,k)
  return y[...,0:m/2] , b
  # closing the body
} # after the brace
train { steps = 3 ;
  lr = 1e-3 # inside train
}
# the end
`;
    expect(fmt(src)).toBe(`# header

const d = 256  # width
const m = 4*d  # hidden
const lr = 3e-3

param W: [d, m] = normal(0, 1/sqrt(d)) @sparse @lr(10)
layer f(x: [T, d], W: [d, m], k: int) -> ([T, m], index[T, k]) {  # trailing the header
  # leading a statement
  y = matmul(x, W) * (2 + k)
  z = -(y - 1)^2  # trailing z

  (a, b) = topk(y, k)
  return y[..., 0:m/2], b
  # closing the body
}  # after the brace
train {
  steps = 3
  lr = 1e-3  # inside train
}
# the end
`);
  });

  it('wraps a long layer header after commas under its parenthesis, and keeps what the parser keeps', () => {
    const src = 'layer peer(x: [T, d], Wq: [h, dk, d], bn_g: [c], bn_b: [c], bn_mean: [c], bn_var: [c], C1: [n, dk/2], C2: [n, dk/2], U: [N, d], V: [N, d], k: int) -> [T, d] {\n  return x\n}\n';
    const out = fmt(src);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^layer peer\(x: \[T, d\], .*,$/);
    expect(lines[1]).toMatch(/^ {11}\S/);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100);
    expect(meaning(out)).toBe(meaning(src));
    expect(fmt('const a = (1 - (2 - 3)) - -(-4) + 2^(3^2) + (2^3)^2 + (-2)^2 + -2^2\n')).toBe('const a = 1 - (2 - 3) - -(-4) + 2^3^2 + (2^3)^2 + (-2)^2 + -2^2\n');
  });
});

describe('fuzzing: whatever parses keeps its meaning and formats idempotently', () => {
  const sources = programs.map((f) => readFileSync(join(root, f), 'utf8'));
  const TOKENS = ['const', 'x', 'T', '(', ')', '[', ']', ',', '=', '+', '-', '*', '/', '%', '^', '1', '2.5', '1e-3', '#c\n', '\n', ' ', 'None', '...', ':', '@sparse', 'return', '{', '}'];
  const check = (s: string) => {
    const parsed = parseSource(s, 'x.peer');
    if (!parsed.program) return;
    const once = fmt(s);
    expect(meaning(once)).toBe(meaning(s));
    expect(fmt(once)).toBe(once);
    expect(sourceComments(once).length).toBe(sourceComments(s).length);
  };
  it('mutations of every program', () => {
    const mutation = fc.record({
      program: fc.nat({ max: sources.length - 1 }),
      edits: fc.array(fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), del: fc.nat({ max: 4 }), ins: fc.constantFrom('', ...TOKENS) }), { minLength: 1, maxLength: 3 }),
    });
    fc.assert(fc.property(mutation, ({ program, edits }) => {
      let s = sources[program]!;
      for (const e of edits) {
        const at = Math.floor(e.at * s.length);
        s = s.slice(0, at) + e.ins + s.slice(at + e.del);
      }
      check(s);
    }), { numRuns: 300 });
  });
  it('constant expressions of every shape', () => {
    const expr: fc.Arbitrary<string> = fc.letrec((tie) => ({
      e: fc.oneof({ depthSize: 'small', withCrossShrink: true },
        fc.constantFrom('1', 'x', '2.5', 'f(x)', 'y[0]'),
        fc.tuple(tie('e') as fc.Arbitrary<string>, fc.constantFrom('+', '-', '*', '/', '%', '^'), tie('e') as fc.Arbitrary<string>).map(([a, op, b]) => `${a} ${op} ${b}`),
        (tie('e') as fc.Arbitrary<string>).map((a) => `(${a})`),
        (tie('e') as fc.Arbitrary<string>).map((a) => `-${a}`)),
    })).e;
    fc.assert(fc.property(expr, (e) => check(`const a = ${e}\nlayer g(x: [T]) -> [T] {\n  return ${e}\n}\n`)), { numRuns: 300 });
  });
});

describe('peerc fmt as a user runs it', () => {
  it('rewrites files and folders, --check changes nothing and exits 1, --stdin, errors with codes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-fmt-'));
    writeFileSync(join(dir, 'a.peer'), 'const  a=1\n');
    writeFileSync(join(dir, 'b.peer'), 'const b = 2\n');
    const check = runPeerc(['fmt', '--check', dir]);
    expect(check.status).toBe(1);
    expect(check.stdout).toContain(`${join(dir, 'a.peer')}: not formatted`);
    expect(check.stdout).not.toContain('b.peer');
    expect(readFileSync(join(dir, 'a.peer'), 'utf8')).toBe('const  a=1\n');
    const write = runPeerc(['fmt', dir]);
    expect(write.status).toBe(0);
    expect(write.stdout).toMatch(/formatted .*a\.peer \(2 files\)/);
    expect(readFileSync(join(dir, 'a.peer'), 'utf8')).toBe('const a = 1\n');
    expect(runPeerc(['fmt', '--check', dir]).status).toBe(0);
    writeFileSync(join(dir, 'bad.peer'), 'const a = (\n');
    const bad = runPeerc(['fmt', join(dir, 'bad.peer')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/bad\.peer:2:1: error PEER0101: expected an expression/);
    expect(readFileSync(join(dir, 'bad.peer'), 'utf8')).toBe('const a = (\n');
    expect(runPeerc(['fmt']).status).toBe(2);
    const stdin = spawnSync(process.execPath, [join(root, 'dist', 'peerc.js'), 'fmt', '--stdin'], { input: 'model f(x:[T])->[T]{return x*2}\n', encoding: 'utf8' });
    expect(stdin.status).toBe(0);
    expect(stdin.stdout).toBe('model f(x: [T]) -> [T] {\n  return x * 2\n}\n');
  });
});
