// One end-to-end test with a real editor: Neovim's built-in LSP client (nvim --headless) opens a
// .peer file with an error, receives the diagnostic, asks for hover and definition, and formats
// and saves the file, all through `peerc lsp`. Skipped, with that message, where nvim is absent
// (apt-get install neovim; .ci/run installs it best effort).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const nvim = spawnSync('nvim', ['--version'], { encoding: 'utf8' });
const version = nvim.status === 0 ? nvim.stdout.split('\n')[0] : undefined;
if (!version) console.log('Neovim end-to-end test skipped: nvim not found (apt-get install neovim)');

describe.skipIf(!version)(`${version}: peerc lsp in a real editor`, () => {
  it('diagnostic, hover, definition and formatting through Neovim\'s LSP client', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peerc-nvim-'));
    const file = join(dir, 'layer.peer');
    writeFileSync(file, 'const d = 8\nparam W: [d,d] = normal(0, 1)\nmodel f(x: [T, d]) -> [T, d] {\n  y = matmul(x, W)\n  return relu(yy)\n}\n');
    const out = join(dir, 'result.json');
    const r = spawnSync('nvim', ['--headless', '--clean', '-c', `luafile ${join(root, 'test', 'editors', 'neovim-lsp.lua')}`], {
      encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, PEERC_FILE: file, PEERC_CLI: join(root, 'dist', 'peerc.js'), PEERC_OUT: out, PEERC_HOVER_LINE: '3', PEERC_HOVER_COL: '16' },
    });
    expect(r.error, String(r.error)).toBeUndefined();
    const result = JSON.parse(readFileSync(out, 'utf8')) as { ok: boolean; error: string | null; diagnostics: { line: number; col: number; code: string; message: string }[]; hover: string; definition: { range: { start: { line: number } } } | { range: { start: { line: number } } }[] };
    expect(result.error).toBeNull();
    expect(result.ok).toBe(true);
    const unknown = result.diagnostics.find((d) => d.code === 'PEER0200')!;
    expect(unknown).toMatchObject({ line: 4, col: 14 });
    expect(unknown.message).toMatch(/did you mean 'y'/);
    // Hover and definition at W's use in matmul(x, W): the parameter's declaration, line 2.
    expect(result.hover).toContain('param W: [d,d] = normal(0, 1)');
    const def = Array.isArray(result.definition) ? result.definition[0]! : result.definition;
    expect(def.range.start.line).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe('const d = 8\nparam W: [d, d] = normal(0, 1)\nmodel f(x: [T, d]) -> [T, d] {\n  y = matmul(x, W)\n  return relu(yy)\n}\n');
  }, 180_000);
});
