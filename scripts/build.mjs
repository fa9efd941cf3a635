// Builds what the package ships: the CLI (dist/peerc.js, .peer files as strings), the runtime
// API that emitted modules import as 'peerc/runtime' (dist/runtime.js), and its declarations
// (dist/types, from tsc) so `import ... from 'peerc/runtime'` is fully typed outside this repo.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync } from 'node:fs';

const banner = { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' };
// gpu.js loads optional native backends (gl, webgpu) at run time: keep it a dependency.
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', loader: { '.peer': 'text' }, logLevel: 'warning', sourcemap: false };

await build({
  ...common,
  entryPoints: ['runtime/cli/main.ts'],
  outfile: 'dist/peerc.js',
  banner: { js: '#!/usr/bin/env node\n' + banner.js },
  external: ['gpu.js', 'esbuild', 'ts-morph', 'onnxruntime-node'],
});
await build({ ...common, entryPoints: ['runtime/api.ts'], outfile: 'dist/runtime.js', banner, external: ['gpu.js'] });

// The playground (runtime/playground): the page, its compiler and kernel workers, and the
// emitter as a chunk loaded only when a module is downloaded. Examples come from examples/.
const examplesPlugin = {
  name: 'peer-examples',
  setup(b) {
    b.onResolve({ filter: /^virtual:peer-examples$/ }, () => ({ path: 'examples', namespace: 'peer-examples' }));
    b.onLoad({ filter: /.*/, namespace: 'peer-examples' }, () => {
      const files = readdirSync('examples').filter((f) => f.endsWith('.peer')).sort();
      const map = Object.fromEntries(files.map((f) => [f.replace(/\.peer$/, ''), readFileSync(`examples/${f}`, 'utf8')]));
      return { contents: `export default ${JSON.stringify(map)};`, loader: 'js', watchFiles: files.map((f) => `examples/${f}`) };
    });
  },
};
rmSync('dist/playground', { recursive: true, force: true });
await build({
  entryPoints: ['runtime/playground/app.ts', 'runtime/playground/compiler-worker.ts', 'runtime/playground/kernel-worker.ts', 'runtime/playground/lsp-worker.ts'],
  outdir: 'dist/playground', entryNames: '[name]', chunkNames: 'chunks/[name]-[hash]',
  bundle: true, splitting: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true,
  // The runtime checks that each kernel's class is its backend's (no silent fallback): keep class names.
  keepNames: true,
  loader: { '.peer': 'text' }, external: ['gl', 'webgpu'], plugins: [examplesPlugin], logLevel: 'warning',
});
cpSync('runtime/playground/static', 'dist/playground', { recursive: true });

rmSync('dist/types', { recursive: true, force: true });
const tsc = 'node_modules/typescript/bin/tsc'; // typescript's package exports do not list its bin
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.types.json'], { stdio: 'inherit' });
