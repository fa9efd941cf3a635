// `npm run vsix`: the VS Code extension (editors/vscode) as dist/peerc-peer.vsix. The client is
// bundled with esbuild into one CommonJS file (VS Code loads extensions with require), so the
// package needs no node_modules; @vscode/vsce packages it (fetched by npx, pinned: not a
// dependency of peerc, as it pulls in a native keyring and Azure clients).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const ext = join(root, 'editors', 'vscode');
await build({
  entryPoints: [join(ext, 'extension.ts')], outfile: join(ext, 'dist', 'extension.js'),
  bundle: true, platform: 'node', format: 'cjs', target: 'node18', external: ['vscode'], minify: true, logLevel: 'warning',
});
if (process.argv.includes('--bundle-only')) process.exit(0);
mkdirSync(join(root, 'dist'), { recursive: true });
const out = join(root, 'dist', 'peerc-peer.vsix');
execFileSync('npx', ['--yes', '@vscode/vsce@3.9.2', 'package', '--no-dependencies', '--out', out], { cwd: ext, stdio: 'inherit' });
console.log(`wrote ${out}: code --install-extension ${out}`);
