// The CLI as users run it: exit statuses, located errors, never a stack trace.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPeerc } from './helpers.js';
import { encodeSafetensors, readSafetensors } from '../src/io/safetensors.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'peerc.js');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-cli-'));

const peerc = (...args: string[]) => runPeerc(args);

function write(name: string, content: string | Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
}

const f32 = (name: string, shape: number[], values: number[]) => ({ name, dtype: 'F32' as const, shape, element: (i: number) => values[i]! });
const i64 = (name: string, shape: number[], values: number[]) => ({ name, dtype: 'I64' as const, shape, element: (i: number) => values[i]! });

describe('usage', () => {
  it('no arguments: usage, exit 2', () => {
    const r = peerc();
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('usage: peerc COMMAND');
  });
  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['check'], /takes one \.peer file/],
    [['check', 'examples/dense_ffw.peer', '--fast'], /has no option --fast/],
    [['ir', 'examples/dense_ffw.peer', '--dump-after', 'magic'], /unknown pass 'magic'; passes are: check, inline, unstack, einsum-pairs, fold-constants, cse, dce, fuse, fuse-dce/],
    [['run', 'examples/dense_ffw.peer', '--seed', '1'], /needs --inputs/],
    [['run', 'examples/dense_ffw.peer', '--seed', 'x', '--inputs', 'a', '--out', 'b'], /--seed needs a number/],
    [['run', 'examples/dense_ffw.peer', '--backend', 'gpujs-webgpu', '--seed', '1', '--inputs', 'test/errors/PEER0101.peer', '--out', 'b'], /backend 'gpujs-webgpu' is not available: gpu.js's webgpu runs only in a browser/],
    [['run', 'examples/dense_ffw.peer', '--backend', 'tpu', '--seed', '1', '--inputs', 'a', '--out', 'b'], /unknown backend 'tpu'/],
  ])('%j', (args, message) => {
    const r = peerc(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });
});

describe('a path that cannot be read is exit 1 (PEER0800), as the README says', () => {
  it.each([
    [['check', 'no/such/file.peer'], /error PEER0800: cannot read no\/such\/file.peer: no such file/],
    [['check', 'examples'], /error PEER0800: cannot read examples: it is a folder, not a file/],
    [['run', 'examples/dense_ffw.peer', '--seed', '1', '--inputs', 'no/such/inputs.safetensors', '--out', '/tmp/peerc-never.safetensors'], /error PEER0800: cannot read no\/such\/inputs\.safetensors: no such file/],
  ])('%j', (args, message) => {
    const r = peerc(...(args as string[]));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message as RegExp);
  });
});

describe('hostile programs exit 1 with located errors', () => {
  it.each([
    ['binary garbage', Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) % 256)],
    ['invalid UTF-8', Uint8Array.from([0x63, 0x6f, 0x6e, 0x73, 0x74, 0x20, 0xc3, 0x28])],
    ['10,000-deep nesting', 'const a = ' + '('.repeat(10_000) + '1' + ')'.repeat(10_000)],
    ['a huge literal', 'const a = 1' + '0'.repeat(5000)],
    ['a 10 MB expression', 'const a = ' + '1+'.repeat(5_000_000) + '1'],
    ['NUL bytes', 'const a = 1\u0000\u0000'],
  ])('%s', (_what, content) => {
    const r = peerc('check', write('hostile.peer', content as string));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/hostile\.peer:\d+:\d+: error PEER\d{4}: /);
  });
  it('an empty file is a valid program without a model', () => {
    const r = peerc('check', write('empty.peer', ''));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('no model');
  });
  it('a 10 MB comment is fine', () => {
    expect(peerc('check', write('comment.peer', '# ' + 'x'.repeat(10_000_000) + '\n')).status).toBe(0);
  });
  it('prints every error with file:line:col, the line and a caret', () => {
    const r = peerc('check', 'test/errors/PEER0302.peer');
    expect(r.stderr).toBe(readFileSync(join(root, 'test/errors/PEER0302.expected'), 'utf8'));
  });
});

describe('info, ir, init and run', () => {
  it('info --json lists every parameter with shape and dtype', () => {
    const r = peerc('info', 'examples/peer_paper.peer', '--json');
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.entry.inputs).toEqual([{ name: 'x', dtype: 'f32', shape: ['T', '256'] }]);
    const u = info.parameters.find((p: { name: string }) => p.name === 'U');
    expect(u).toMatchObject({ dtype: 'f32', shape: [1048576, 256], sparse: true });
    expect(info.parameters.find((p: { name: string }) => p.name === 'bn_mean').role).toBe('buffer');
  });
  it('ir --dump-after inline shows the inlined entry', () => {
    const r = peerc('ir', 'examples/pkm.peer', '--dump-after', 'inline');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/func @memory<T>\(%0: f32\[T, 256\]\)/);
    expect(r.stdout).not.toMatch(/= call\(/);
  });
  it('run with --seed, and with the weights peerc init wrote, give the same result', () => {
    const inputs = write('in.safetensors', encodeSafetensors([f32('x', [2, 256], Array.from({ length: 512 }, (_, i) => Math.sin(i)))]));
    const out1 = join(tmp, 'o1.safetensors'), out2 = join(tmp, 'o2.safetensors'), w = join(tmp, 'w.safetensors');
    expect(peerc('run', 'examples/dense_ffw.peer', '--seed', '4', '--inputs', inputs, '--out', out1).stdout).toMatch(/wrote .*o1.safetensors: output \[2, 256\] \(T = 2\)/);
    expect(peerc('init', 'examples/dense_ffw.peer', '--seed', '4', '--out', w, '--f64').status).toBe(0);
    expect(peerc('run', 'examples/dense_ffw.peer', '--weights', w, '--inputs', inputs, '--out', out2).status).toBe(0);
    const a = readSafetensors(readFileSync(out1), 'o1').tensors.get('output')!;
    const b = readSafetensors(readFileSync(out2), 'o2').tensors.get('output')!;
    expect(a.dtype).toBe('F64');
    expect([...a.data]).toEqual([...b.data]);
    expect(a.data.some((v) => v !== 0)).toBe(true);
  });
  it('run on the kernel backends, fused and naive, agrees with the reference', () => {
    const inputs = write('in4.safetensors', encodeSafetensors([f32('x', [3, 256], Array.from({ length: 768 }, (_, i) => Math.cos(i * 0.3)))]));
    const ref = join(tmp, 'ref.safetensors');
    expect(peerc('run', 'test/golden/../../examples/pkm.peer', '--seed', '2', '--inputs', inputs, '--out', ref).status).toBe(0);
    const want = readSafetensors(readFileSync(ref), 'ref').tensors.get('output')!.data;
    for (const [backend, lowering] of [['cpu', 'fused'], ['webasm', 'naive'], ['auto', 'fused']]) {
      const out = join(tmp, `${backend}-${lowering}.safetensors`);
      const r = peerc('run', 'examples/pkm.peer', '--seed', '2', '--inputs', inputs, '--out', out, '--backend', backend!, '--lowering', lowering!);
      expect(r.stdout).toMatch(new RegExp(`backend ${backend === 'auto' ? 'wasm-simd' : backend}.*, ${lowering} lowering`));
      const got = readSafetensors(readFileSync(out), 'o').tensors.get('output')!;
      expect(got.dtype).toBe('F32');
      got.data.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
    }
  });
  it('bench reports fused, naive and the reference with the backend that ran', () => {
    const r = peerc('bench', 'examples/recall.peer', '--tokens', '8', '--runs', '2', '--backend', 'cpu', '--json');
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.backend).toBe('cpu');
    expect(report.fused.runsMs).toHaveLength(2);
    expect(report.naive.kernels.length).toBeGreaterThan(0);
    expect(report.reference_ms).toBeGreaterThan(0);
  });
  it('run in training mode writes the new BatchNorm running statistics', () => {
    const inputs = write('in2.safetensors', encodeSafetensors([f32('x', [3, 256], Array.from({ length: 768 }, (_, i) => Math.cos(i)))]));
    const out = join(tmp, 'o3.safetensors');
    expect(peerc('run', 'examples/peer_paper.peer', '--seed', '1', '--inputs', inputs, '--out', out, '--train-mode').status).toBe(0);
    const t = readSafetensors(readFileSync(out), 'o3').tensors;
    expect(t.get('buffer.bn_mean')!.shape).toEqual([1024]);
  });
  it.each([
    ['a missing input', [f32('y', [2, 256], new Array(512).fill(0))], /PEER0601: .* has no tensor 'x'/],
    ['a wrongly shaped input', [f32('x', [2, 255], new Array(510).fill(0))], /PEER0602: tensor 'x': expected \[T, 256\] = \[2, 256\] but found \[2, 255\]/],
    ['an integer input for an f32 argument', [i64('x', [1, 256], new Array(256).fill(0))], /PEER0602: tensor 'x': expected a float dtype/],
    ['a non-finite input', [f32('x', [1, 256], new Array(256).fill(Infinity))], /PEER0605: input 'x' contains NaN or infinity/],
  ])('run rejects %s', (_what, tensors, message) => {
    const inputs = write('bad-in.safetensors', encodeSafetensors(tensors as never));
    const r = peerc('run', 'examples/dense_ffw.peer', '--seed', '1', '--inputs', inputs, '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message as RegExp);
  });
  it('run reports an out-of-range token at the gather that reads it', () => {
    const inputs = write('tok.safetensors', encodeSafetensors([i64('tokens', [1, 2], [65, 300])]));
    const r = peerc('run', 'examples/byte_lm.peer', '--seed', '1', '--inputs', inputs, '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/examples\/byte_lm.peer:\d+:\d+: error PEER0603: gather from E: index 300 is out of range for 256 rows/);
  });
  it('run reports inconsistent symbolic dims across inputs', () => {
    const src = write('two.peer', 'model f(a: [T, 2], b: [T, 2]) -> [T, 2] { return a + b }\n');
    const inputs = write('two.safetensors', encodeSafetensors([f32('a', [1, 2], [1, 2]), f32('b', [2, 2], [1, 2, 3, 4])]));
    const r = peerc('run', src, '--seed', '1', '--inputs', inputs, '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PEER0604: dimension T is 1 in one input but 2 in input 'b'/);
  });
  it('run rejects weights of the wrong shape and malformed files', () => {
    const w = write('w-bad.safetensors', encodeSafetensors([f32('W1', [2, 2], [0, 0, 0, 0]), f32('W2', [128, 256], [])]));
    const inputs = write('in3.safetensors', encodeSafetensors([f32('x', [1, 256], new Array(256).fill(0))]));
    const r = peerc('run', 'examples/dense_ffw.peer', '--weights', w, '--inputs', inputs, '--out', join(tmp, 'x.safetensors'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PEER0602: tensor 'W1': expected a float tensor \[256, 128\] but found F32\[2, 2\]/);
    const r2 = peerc('run', 'examples/dense_ffw.peer', '--weights', write('junk.safetensors', 'not a safetensors file at all'), '--inputs', inputs, '--out', join(tmp, 'x.safetensors'));
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/PEER0600: .*junk.safetensors is not a valid safetensors file: the header claims/);
  });
});

describe('demo', () => {
  it('evaluates the paper layer and confirms retrieval against brute force', () => {
    const r = peerc('demo', '--tokens', '2');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/brute-force check over all 1,048,576 experts: 16 of 16 \(token, head\) pairs picked exactly the true top-16/);
  });
});
