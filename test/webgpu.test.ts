// peerc's own WebGPU backend (WGSL generated from the IR): every example, both lowerings,
// against the float64 interpreter, in Chromium (SwiftShader's WebGPU) and, where Dawn finds a
// Vulkan driver (a GPU's, or Mesa's lavapipe from bookworm-backports), in Node. Each part says
// when it is skipped and why.
import { build } from 'esbuild';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { wgslOfPlan } from '../codegen/wgsl/translate.js';
import { gpuDevice } from '../runtime/backends/webgpu/device.js';
import type { PageCase, PageResult } from './webgpu/page.js';
import { runCases } from './webgpu/page.js';

const CHROMIUM = '/usr/bin/chromium';
const root = join(import.meta.dirname, '..');
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.peer')).sort();
const small = (f: string) => readFileSync(join(root, 'examples', f), 'utf8').replace(/const N = \d+\^2/, 'const N = 32^2').replace(/const n = \d+ /, 'const n = 16 ');
/** Product-key retrieval returning the expert ids (arity 2 and 3), so ids are compared exactly. */
const retrieval = (arity: 2 | 3, n = 8, k = 4) => `const d = 12
const n = ${n}
const h = 2
const k = ${k}
const dk = 6
param Wq: [h, dk, d] = normal(0, 1/sqrt(d))
${Array.from({ length: arity }, (_, i) => `param C${i + 1}: [n, dk/${arity}] = normal(0, 1)`).join('\n')}
param U: [n^${arity}, d] = normal(0, 1/sqrt(d)) @sparse
param V: [n^${arity}, d] = normal(0, 1/sqrt(h*k)) @sparse
model ids${arity}(x: [T, d]) -> ([T, d], index[T, h, k]) {
  q = einsum("td,hcd->thc", x, Wq)
  (v1, a) = topk(einsum("thc,nc->thn", q[..., 0:dk/${arity}], C1), k)
  (v2, b) = topk(einsum("thc,nc->thn", q[..., dk/${arity}:2*dk/${arity}], C2), k)
${arity === 2 ? `  (s, w) = topk(reshape(v1[..., None] + v2[..., None, :], [T, h, k*k]), k)
  idx = take_along(reshape(a[..., None] * n + b[..., None, :], [T, h, k*k]), w)` : `  (v3, c) = topk(einsum("thc,nc->thn", q[..., 2*dk/3:dk], C3), k)
  (v12, w12) = topk(reshape(v1[..., None] + v2[..., None, :], [T, h, k*k]), k)
  i12 = take_along(reshape(a[..., None] * n + b[..., None, :], [T, h, k*k]), w12)
  (s, w) = topk(reshape(v12[..., None] + v3[..., None, :], [T, h, k*k]), k)
  idx = take_along(reshape(i12[..., None] * n + c[..., None, :], [T, h, k*k]), w)`}
  return experts_gelu(x, U, V, idx, softmax(s)), idx
}
`;
const cases: PageCase[] = [...examples.map((file) => ({ file, text: small(file) })), { file: 'ids2.peer', text: retrieval(2) }, { file: 'ids3.peer', text: retrieval(3) }, { file: 'ids2-k32.peer', text: retrieval(2, 64, 32) }];

function expectAgreement(results: PageResult[], where: string): void {
  expect(results.length).toBe(cases.length * 2);
  for (const r of results) {
    expect(r.error, `${where}: ${r.file} ${r.lowering}`).toBeUndefined();
    expect(r.worst!, `${where}: ${r.file} ${r.lowering}`).toBeLessThan(1e-4);
    expect(r.idMismatches, `${where}: ${r.file} ${r.lowering} expert ids`).toBe(0);
  }
}

describe('the WGSL translation of generated kernels', () => {
  it('prints f32 arithmetic, u32 indexing, row views and vector returns', () => {
    const k = wgslOfPlan({
      label: 'demo',
      args: [{ kind: 'value', ref: { node: 0, result: 0 }, shape: [8] }, { kind: 'param', name: 'T', shape: [4, 2] }],
      source: 'let i = this.thread.x;\nlet b = i > 2;\nif (b) { return [a0[i], Math.max(1, 2, 3), i % 2, -1]; }\nreturn [this.constants.p1[i], Math.round(0.5), 0, 0];',
      outputLength: 4, results: [16], loopMax: 0, earlierStages: 0, vec4: true, views: new Map([[1, [2, 4]]]),
    });
    expect(k.outputFloats).toBe(16);
    expect(k.source).toContain('var v_b: f32 = select(0.0, 1.0, (v_i > 2.0));');
    expect(k.source).toContain('if (v_b != 0.0)');
    expect(k.source).toContain('a0[u32(v_i)]');
    expect(k.source).toContain('max(max(1.0, 2.0), 3.0)');
    expect(k.source).toContain('floor(0.5 + 0.5)');
    expect(k.source).toContain('out[cell * 4u + 3u]');
  });

  it('names what it cannot translate', () => {
    expect(() => wgslOfPlan({ label: 'bits', args: [], source: 'return 1 << 2;', outputLength: 1, results: [1], loopMax: 0, earlierStages: 0 })).toThrow(/kernel 'bits': operator << .* has no WGSL translation/);
  });
});

let server: Server | undefined;
const dir = mkdtempSync(join(root, '.tmp-webgpu-'));
afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!existsSync(CHROMIUM))('peerc webgpu in Chromium (SwiftShader)', () => {
  it('runs every example, naive and fused, as the float64 interpreter does', async () => {
    await build({ entryPoints: [join(root, 'test/webgpu/page.ts')], bundle: true, format: 'esm', platform: 'browser', outfile: join(dir, 'page.mjs'), external: ['gl', 'webgpu', 'node:*'], loader: { '.peer': 'text' }, logLevel: 'error' });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="page.mjs"></script>');
    server = createServer((req, res) => {
      const file = join(dir, (req.url ?? '/').slice(1) || 'index.html');
      if (!file.startsWith(dir) || !existsSync(file)) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': file.endsWith('.mjs') ? 'text/javascript' : 'text/html' }).end(readFileSync(file));
    });
    const port = await new Promise<number>((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)));
    const profile = mkdtempSync(join(tmpdir(), 'peerc-chromium-'));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking', '--no-first-run', '--enable-unsafe-webgpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'] });
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/index.html`);
      await page.waitForFunction(() => (window as unknown as { runCases?: unknown }).runCases !== undefined);
      const adapter = await page.evaluate(async () => !!(await (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu?.requestAdapter()));
      if (!adapter) {
        console.log('webgpu in this Chromium: no adapter; skipped');
        return;
      }
      const results = await page.evaluate((c) => (window as unknown as { runCases: (c: PageCase[]) => Promise<PageResult[]> }).runCases(c), cases);
      console.log(`chromium webgpu: ${results[0]?.detail}; ${results.map((r) => `${r.file} ${r.lowering} ${r.worst?.toExponential(1)}`).join(', ')}`);
      expectAgreement(results, 'chromium');
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 600_000);
});

describe('peerc webgpu in Node (Dawn)', () => {
  it('runs every example, naive and fused, as the float64 interpreter does, where Dawn has an adapter', async () => {
    const why = await gpuDevice().then(() => null, (e: Error) => e.message);
    if (why) {
      console.log(`webgpu in Node skipped: ${why}`);
      expect(why).toMatch(/backend 'webgpu' is not available: /);
      return;
    }
    const results = await runCases(cases);
    console.log(`node webgpu: ${results[0]?.detail}`);
    expectAgreement(results, 'node');
  }, 600_000);

  it('runs product_retrieve and expert_act with subgroup operations where the adapter has them, and without where told not to, with the same results', async () => {
    const handle = await gpuDevice().catch(() => undefined);
    if (!handle) return void console.log('webgpu in Node skipped: no adapter');
    const picked = [{ file: 'ids2.peer', text: retrieval(2) }, { file: 'ids3.peer', text: retrieval(3) }, { file: 'ids2-k32.peer', text: retrieval(2, 64, 32) }, ...cases.filter((c) => /peer_paper|memory_layers|recall/.test(c.file))];
    const plain = await runCases(picked, { subgroups: false, lowerings: ['fused'] });
    for (const r of plain) {
      expect(r.error, r.file).toBeUndefined();
      expect(r.detail).not.toMatch(/subgroups/);
    }
    if (!handle.subgroups) return void console.log(`the adapter (${handle.adapter}) has no subgroups: only the kernels without them ran`);
    const sub = await runCases(picked, { lowerings: ['fused'] });
    for (const [i, r] of sub.entries()) {
      expect(r.error, r.file).toBeUndefined();
      expect(r.detail).toMatch(/, subgroups\)$/);
      expect(r.worst!, r.file).toBeLessThan(1e-4);
      expect(r.idMismatches, r.file).toBe(0);
      expect(Math.abs(r.worst! - plain[i]!.worst!), r.file).toBeLessThan(1e-4);
    }
  }, 600_000);

  it('binds a table larger than one binding as several buffers of whole rows, and says so', async () => {
    const why = await gpuDevice().then(() => null, (e: Error) => e.message);
    if (why) return void console.log(`webgpu in Node skipped: ${why}`);
    // 2^24 cells (64 MiB): read by row; at most 24 MiB per binding makes three buffers.
    const text = `const d = 256
param E: [65536, d] = normal(0, 1)
param W: [d, d] = normal(0, 1/sqrt(d))
model look(x: [T, d], i: index[T]) -> [T, d] {
  return einsum("td,de->te", x, W) + gather(E, i)
}
`;
    const [r] = await runCases([{ file: 'split.peer', text }], { maxBindingBytes: 24 * 2 ** 20, lowerings: ['fused'] });
    expect(r!.error).toBeUndefined();
    expect(r!.worst!).toBeLessThan(1e-5);
    expect(r!.notes!.join('\n')).toMatch(/E in 3 buffers \(one binding holds at most 24 MiB here\)/);
    // The expert kernels read U and V from buffers of whole rows too (64 rows of 48 bytes, 42 per buffer).
    const [e] = await runCases([{ file: 'ids2.peer', text: retrieval(2) }], { maxBindingBytes: 2048, lowerings: ['fused'] });
    expect(e!.error).toBeUndefined();
    expect(e!.worst!).toBeLessThan(1e-4);
    expect(e!.idMismatches).toBe(0);
    expect(e!.notes!.join('\n')).toMatch(/expert_act: U in 2 buffers/);
    expect(e!.notes!.join('\n')).toMatch(/expert_out: V in 2 buffers/);
    // A value no binding can hold is PEER0606 naming the op (checked for every step before the first runs).
    const outer = `model outer(x: [T, 8]) -> [T, 8, 8, 8] {
  z = einsum("ta,tb->tab", x, x)
  return einsum("tab,tc->tabc", z, x)
}
`;
    const [o] = await runCases([{ file: 'outer.peer', text: outer }], { maxBindingBytes: 4096, lowerings: ['fused'] });
    expect(o!.error).toMatch(/does not fit backend webgpu: .*output needs 8 KiB in one buffer; one binding holds at most 4 KiB here/);
  }, 300_000);
});
