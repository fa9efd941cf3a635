// `peerc export --onnx` in onnxruntime-web in a real Chromium: every example runs on the wasm
// execution provider and agrees with the float64 interpreter within float32 tolerance, with
// identical expert indices; so does the WebGPU provider where the browser has an adapter
// (SwiftShader here). Contractions are exported as MatMul: as Einsum, the WebGPU provider was off
// by up to 4e2 of the output scale on these examples. Skipped where /usr/bin/chromium or
// onnxruntime-web is missing.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { entryFunction, interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { toFloat32 } from '../runtime/executor.js';
import { emitOnnx } from '../codegen/onnx/export.js';
import { compileOk, EXAMPLE_FILES, sampleInputs, scaledError, smallExample } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const root = join(import.meta.dirname, '..');
const ortDist = join(root, 'node_modules', 'onnxruntime-web', 'dist');
const dir = mkdtempSync(join(tmpdir(), 'peerc-ort-web-'));
let server: Server | undefined;
afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function serve(): Promise<number> {
  const types: Record<string, string> = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const [base, rel] = path.startsWith('/ort/') ? [ortDist, path.slice(5)] : [dir, path.slice(1) || 'index.html'];
    const file = normalize(join(base, rel));
    if (!file.startsWith(base) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as { port: number }).port)));
}

const examples = EXAMPLE_FILES;
if (!existsSync(CHROMIUM)) console.log(`onnxruntime-web tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
else if (!existsSync(ortDist)) console.log('onnxruntime-web tests skipped: the opt-in extra is not installed (npm run extras -- ort-web)');

describe.skipIf(!existsSync(CHROMIUM) || !existsSync(ortDist))('ONNX export in onnxruntime-web (Chromium)', () => {
  it('every example agrees with the float64 interpreter on the wasm and webgpu providers', async () => {
    const cases = examples.map((file) => {
      const m = compileOk(smallExample(file), file);
      const weights = seededWeights(m, 2);
      const inputs = sampleInputs(m, 1);
      const ref = interpret(m, inputs, weights).outputs;
      const name = file.replace('.peer', '');
      const f32 = new Map([...weights].map(([n, t]) => [n, toFloat32(t)]));
      const out = emitOnnx(optimize(m, { lowering: 'fused' }), { get: (n) => f32.get(n)! }, `${name}.onnx`, 'peerc test');
      writeFileSync(join(dir, `${name}.onnx`), out.model);
      if (out.external) writeFileSync(join(dir, `${name}.onnx.data`), Buffer.concat(out.external.chunks));
      const fn = entryFunction(m);
      const feeds = fn.inputs.map((id) => {
        const n = fn.graph.node(id).attrs.name as string;
        const t = inputs.get(n)!;
        return { name: n, dtype: t.dtype, shape: t.shape, data: Array.from(t.data) };
      });
      return { file, name, external: out.external ? `${name}.onnx.data` : null, feeds, ref };
    });
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(cases.map(({ name, external, feeds }) => ({ name, external, feeds }))));
    writeFileSync(join(dir, 'index.html'), `<!doctype html><script type="module">
      import * as ort from '/ort/ort.all.min.mjs';
      ort.env.wasm.wasmPaths = '/ort/';
      const cases = await (await fetch('cases.json')).json();
      const results = {};
      for (const provider of ['wasm', 'webgpu']) {
        results[provider] = {};
        for (const c of cases) {
          try {
            const options = { executionProviders: [provider], ...(c.external ? { externalData: [{ path: c.external, data: c.external }] } : {}) };
            const session = await ort.InferenceSession.create(c.name + '.onnx', options);
            const feeds = {};
            for (const f of c.feeds) feeds[f.name] = f.dtype === 'index' ? new ort.Tensor('int64', BigInt64Array.from(f.data.map(BigInt)), f.shape) : new ort.Tensor('float32', Float32Array.from(f.data), f.shape);
            const out = await session.run(feeds);
            results[provider][c.name] = session.outputNames.map((o) => ({ dims: out[o].dims, data: Array.from(out[o].data, Number) }));
            await session.release();
          } catch (e) { results[provider][c.name] = { error: String(e && e.message || e) }; }
        }
      }
      window.__results = results;
    </script>`);
    const port = await serve();
    const profile = mkdtempSync(join(tmpdir(), 'peerc-chromium-ort-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--enable-unsafe-webgpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
    });
    try {
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${port}/index.html`);
      await page.waitForFunction(() => (window as unknown as { __results?: unknown }).__results !== undefined, undefined, { timeout: 400_000, polling: 1000 });
      const results = (await page.evaluate(() => (window as unknown as { __results: unknown }).__results)) as Record<string, Record<string, { dims: number[]; data: number[] }[] | { error: string }>>;
      const webgpu: string[] = [];
      for (const c of cases) {
        const got = results.wasm![c.name]!;
        expect('error' in got ? got.error : undefined, c.file).toBeUndefined();
        c.ref.forEach((want, i) => {
          const o = (got as { dims: number[]; data: number[] }[])[i]!;
          expect(o.dims, c.file).toEqual(want.shape);
          if (want.dtype === 'index') expect(o.data, c.file).toEqual(Array.from(want.data));
          else expect(scaledError(want.data, o.data), `${c.file} output ${i}`).toBeLessThan(2e-5);
        });
        const g = results.webgpu![c.name]!;
        if ('error' in g) {
          webgpu.push(`${c.name}: unavailable (${g.error.slice(0, 80)})`);
          continue;
        }
        const errors = c.ref.map((w, i) => {
          expect(g[i]!.dims, `${c.file} on webgpu`).toEqual(w.shape);
          if (w.dtype === 'index') expect(g[i]!.data, `${c.file} on webgpu`).toEqual(Array.from(w.data));
          return w.dtype === 'index' ? 0 : scaledError(w.data, g[i]!.data);
        });
        expect(Math.max(...errors), `${c.file} on webgpu`).toBeLessThan(2e-5);
        webgpu.push(`${c.name} ${Math.max(...errors).toExponential(1)}`);
      }
      console.log(`onnxruntime-web: wasm provider, all ${cases.length} examples agree; webgpu provider, max error per example: ${webgpu.join('; ')}`);
    } finally {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }, 600_000);
});
