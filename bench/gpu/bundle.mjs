// The CLI for the GPU pack (bench/gpu/pack.sh): dist/peerc.js without its build-time tools.
// esbuild (native) and ts-morph (TypeScript) serve `peerc compile` and the emitters only; here
// they are modules that say so if used, so the pack holds just gpu.js, acorn and Dawn.
//   node bench/gpu/bundle.mjs OUT.mjs
import { build } from 'esbuild';

const stub = {
  name: 'not-in-pack',
  setup(b) {
    b.onResolve({ filter: /^(esbuild|ts-morph)$/ }, (a) => ({ path: a.path, namespace: 'not-in-pack' }));
    b.onLoad({ filter: /.*/, namespace: 'not-in-pack' }, (a) => {
      const names = a.path === 'esbuild' ? ['build'] : ['Project', 'Scope', 'StructureKind', 'VariableDeclarationKind'];
      const fail = `() => { throw new Error("${a.path} is not in the GPU pack: run this command from a peerc checkout"); }`;
      return { contents: names.map((n) => `export const ${n} = new Proxy(${fail}, { get: ${fail}, apply: ${fail}, construct: ${fail} });`).join('\n'), loader: 'js' };
    });
  },
};

await build({
  entryPoints: ['runtime/cli/main.ts'],
  outfile: process.argv[2],
  bundle: true, platform: 'node', format: 'esm', target: 'node20', loader: { '.peer': 'text' }, logLevel: 'warning',
  banner: { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' },
  external: ['gpu.js', 'onnxruntime-node', 'webgpu'],
  plugins: [stub],
});
