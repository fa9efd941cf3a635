// The browser bundle of a compiled program in a real Chromium (SwiftShader for WebGL2):
// every gpu.js backend the page offers agrees with the reference interpreter. Skipped where
// /usr/bin/chromium is not installed (apt-get install chromium).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { compileToDir } from '../runtime/cli/compile.js';
import { compileOk, sampleInputs, smallExample } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(root, '.tmp-browser-'));
let server: Server | undefined;
afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function serve(): Promise<number> {
  const types: Record<string, string> = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript' };
  server = createServer((req, res) => {
    const file = join(dir, (req.url ?? '/').split('?')[0]!.replace(/^\/+/, '') || 'index.html');
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    // Cross-origin isolation, so SharedArrayBuffer (webasm worker threads) is available.
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)));
}

describe.skipIf(!existsSync(CHROMIUM))('the browser bundle in Chromium', () => {
  it('runs and trains on cpu, webasm, webasm-threads, wasm-simd, webgl2 (and gpu.js webgpu and peerc webgpu where it has an adapter), agreeing with the reference', async () => {
    const m = compileOk(smallExample('pkm.peer'), 'pkm.peer');
    const browserBundle = (await compileToDir(m, 'examples/pkm.peer', dir, 'fused', { text: smallExample('pkm.peer'), set: '' })).find((f) => f.endsWith('.browser.mjs'))!;
    const inputs = sampleInputs(m, 6);
    const ref = interpret(m, inputs, seededWeights(m, 3)).outputs[0]!;
    const x = inputs.get('x')!;
    const backends = ['cpu', 'webasm', 'webasm-threads', 'wasm-simd', 'webgl2', 'gpujs-webgpu', 'webgpu'];
    writeFileSync(join(dir, 'index.html'), `<!doctype html><script type="module">
      import { Memory, MemoryTraining } from './${browserBundle!.split('/').pop()}';
      const results = {};
      const training = {};
      for (const backend of ${JSON.stringify(backends)}) {
        try {
          const model = Memory.fromSeed(3, { backend, ...(backend === 'wasm-simd' ? { threads: 2 } : {}) });
          const r = await model.forward({ x: { shape: ${JSON.stringify(x.shape)}, data: ${JSON.stringify([...x.data])} } });
          results[backend] = { ran: model.backend, detail: model.backendDetail, data: Array.from(r.output.data) };
          model.destroy();
        } catch (e) { results[backend] = { error: String(e && e.message || e) }; }
        try {
          const t = MemoryTraining.fromSeed(3, { backend, ...(backend === 'wasm-simd' ? { threads: 2 } : {}), optimizer: { kind: 'adam', lr: 0.01, schedule: 'constant' } });
          const batch = { x: { shape: ${JSON.stringify(x.shape)}, data: ${JSON.stringify([...x.data])} } };
          const targets = { shape: [${x.shape[0]}], data: Array.from({ length: ${x.shape[0]} }, (_, i) => (i * 5) % ${x.shape[1]}) };
          const losses = [];
          for (let i = 0; i < 6; i++) losses.push((await t.step(batch, targets)).loss);
          training[backend] = { losses };
          await t.destroy();
        } catch (e) { training[backend] = { error: String(e && e.message || e) }; }
      }
      window.__training = training;
      window.__results = results;
    </script>`);
    const port = await serve();
    const profile = mkdtempSync(join(tmpdir(), 'peerc-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-unsafe-webgpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/index.html`);
      await page.waitForFunction(() => (window as unknown as { __results?: unknown }).__results !== undefined, undefined, { timeout: 120_000 });
      const results = (await page.evaluate(() => (window as unknown as { __results: unknown }).__results)) as Record<string, { ran?: string; detail?: string; data?: number[]; error?: string }>;
      for (const backend of ['cpu', 'webasm', 'webasm-threads', 'wasm-simd', 'webgl2']) {
        const r = results[backend]!;
        expect(r.error, backend).toBeUndefined();
        expect(r.ran).toBe(backend);
        r.data!.forEach((v, i) => expect(Math.abs(v - ref.data[i]!), `${backend} [${i}]`).toBeLessThan(1e-4 * (1 + Math.abs(ref.data[i]!))));
      }
      // The page is cross-origin isolated: wasm-simd runs on a pool of Web Workers.
      expect(results['wasm-simd']!.detail).toMatch(/^wasm-simd, 2 threads, (plain SIMD128|relaxed SIMD)$/);
      console.log(`browser wasm-simd: ${results['wasm-simd']!.detail}`);
      // WebGPU needs an adapter; SwiftShader-only Chromium may have none. When it runs, both its
      // backends (gpu.js's and peerc's own WGSL) must agree.
      const gpu = results.webgpu!;
      for (const b of ['gpujs-webgpu', 'webgpu']) {
        const r = results[b]!;
        if (!r.error) r.data!.forEach((v, i) => expect(Math.abs(v - ref.data[i]!), `${b} [${i}]`).toBeLessThan(1e-4 * (1 + Math.abs(ref.data[i]!))));
        else console.log(`${b} in this Chromium: ${r.error}`);
      }
      console.log(`browser backends: ${Object.entries(results).map(([b, r]) => `${b}=${r.error ? 'unavailable' : r.ran}`).join(', ')}`);
      // Training in the page: every backend's first loss agrees with cpu's, and six steps lower it.
      const training = (await page.evaluate(() => (window as unknown as { __training: unknown }).__training)) as Record<string, { losses?: number[]; error?: string }>;
      const base = training.cpu!.losses!;
      for (const backend of [...['cpu', 'webasm', 'webasm-threads', 'wasm-simd', 'webgl2'], ...(gpu.error ? [] : ['gpujs-webgpu', 'webgpu'])]) {
        const t = training[backend]!;
        expect(t.error, `training on ${backend}`).toBeUndefined();
        expect(Math.abs(t.losses![0]! - base[0]!)).toBeLessThan(1e-4 * Math.abs(base[0]!));
        expect(t.losses!.at(-1)!).toBeLessThan(t.losses![0]!);
      }
      console.log(`browser training: ${Object.entries(training).map(([b, t]) => `${b}=${t.error ? 'unavailable' : `${t.losses![0]!.toFixed(3)}->${t.losses!.at(-1)!.toFixed(3)}`}`).join(', ')}`);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 300_000);
});
