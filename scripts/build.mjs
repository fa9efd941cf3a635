// Bundles the CLI into dist/peerc.js with esbuild (.peer files become strings).
import { build } from 'esbuild';

await build({
  entryPoints: ['runtime/cli/main.ts'],
  outfile: 'dist/peerc.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  loader: { '.peer': 'text' },
  banner: { js: '#!/usr/bin/env node\nimport { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' },
  sourcemap: false,
  logLevel: 'warning',
  // gpu.js loads optional native backends (gl, webgpu) at run time: keep it a dependency.
  external: ['gpu.js', 'esbuild', 'ts-morph'],
});
