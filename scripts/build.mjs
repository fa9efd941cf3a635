// Builds what the package ships: the CLI (dist/peerc.js, .peer files as strings), the runtime
// API that emitted modules import as 'peerc/runtime' (dist/runtime.js), and its declarations
// (dist/types, from tsc) so `import ... from 'peerc/runtime'` is fully typed outside this repo.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';

const banner = { js: 'import { createRequire as __cr } from "module"; const require = __cr(import.meta.url);' };
// gpu.js loads optional native backends (gl, webgpu) at run time: keep it a dependency.
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', loader: { '.peer': 'text' }, logLevel: 'warning', sourcemap: false };

await build({
  ...common,
  entryPoints: ['runtime/cli/main.ts'],
  outfile: 'dist/peerc.js',
  banner: { js: '#!/usr/bin/env node\n' + banner.js },
  external: ['gpu.js', 'esbuild', 'ts-morph'],
});
await build({ ...common, entryPoints: ['runtime/api.ts'], outfile: 'dist/runtime.js', banner, external: ['gpu.js'] });

rmSync('dist/types', { recursive: true, force: true });
const tsc = 'node_modules/typescript/bin/tsc'; // typescript's package exports do not list its bin
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.types.json'], { stdio: 'inherit' });
