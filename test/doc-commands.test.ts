// The commands the README and docs/ show run as written: every line of a fenced sh block that
// starts with peerc, npx peerc, node dist/peerc.js or npm is run, in order per file, in a folder
// of its own that sees the repository's examples, docs and build. A line is skipped only by a
// rule below that says why; a failing command fails the test with its output.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** Lines not run, each with the reason; everything else that starts with a peerc or npm command runs. */
const NOT_RUN: readonly { match: RegExp; why: string }[] = [
  { match: /^npm ci$/, why: 'the install itself: CI ran it before this suite' },
  { match: /^npm test$/, why: 'the test suite itself' },
  { match: /path\/to\/|\bmodel\.peer\b|\bw\.safetensors\b|--data \.\.\./, why: 'a placeholder for the reader\'s own file' },
  { match: /runs\/lm-torch/, why: 'continues the torchrun run of the line before (test/export-torch-train.test.ts runs train.py)' },
  { match: /^(npm run playground|peerc playground --port)/, why: 'serves until stopped (test/playground.test.ts serves and drives the page)' },
  { match: /^peerc lsp/, why: 'serves its editor until closed (test/lsp.test.ts drives it over stdio, test/editors.test.ts from Neovim)' },
  { match: /^npm run vsix$/, why: 'packages the VS Code extension with @vscode/vsce (test/vscode-extension.test.ts runs it)' },
  { match: /^code --install-extension/, why: 'needs VS Code' },
];

interface DocCommand {
  file: string;
  line: string;
}

/** Every command line of the fenced sh blocks of a markdown file, `a && b` split into two. */
function docCommands(file: string): DocCommand[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out: DocCommand[] = [];
  for (const block of text.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g))
    for (const raw of block[1]!.split('\n')) {
      const code = raw.replace(/\s+#.*$/, '').trim();
      for (const part of code.split('&&').map((p) => p.trim()))
        if (/^(peerc|npx peerc|node dist\/peerc\.js|npm)\b/.test(part)) out.push({ file, line: part });
    }
  return out;
}

/** The argv a line runs: peerc is the built CLI; `npm run X` is package.json's script without its build (the suite built once). */
function argvOf(line: string): string[] {
  const words = [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  if (words[0] === 'npx') words.shift();
  if (words[0] === 'peerc') return [process.execPath, join(root, 'dist', 'peerc.js'), ...words.slice(1)];
  if (words[0] === 'node' && words[1] === 'dist/peerc.js') return [process.execPath, join(root, 'dist', 'peerc.js'), ...words.slice(2)];
  if (words[0] === 'npm' && words[1] === 'run' && words[2] === 'build') return [];
  if (words[0] === 'npm' && words[1] === 'run') {
    const script = scripts[words[2]!];
    if (!script) throw new Error(`${line}: package.json has no script '${words[2]}'`);
    return argvOf(script.replace(/^npm run -s build && /, ''));
  }
  throw new Error(`${line}: not a command this test knows how to run; add a rule`);
}

const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

describe('the commands in README.md and docs/ run as written', () => {
  it('finds commands to check (the extraction itself works)', () => {
    const all = files.flatMap(docCommands);
    expect(all.some((c) => c.line.startsWith('npm run demo'))).toBe(true);
    expect(all.length).toBeGreaterThan(10);
  });
  for (const file of files) {
    const commands = docCommands(file);
    if (commands.length === 0) continue;
    it(`${file}: ${commands.length} commands`, () => {
      const cwd = mkdtempSync(join(tmpdir(), 'peerc-doc-commands-'));
      for (const shared of ['examples', 'docs', 'dist', 'node_modules', 'package.json']) symlinkSync(join(root, shared), join(cwd, shared));
      const skipped: string[] = [];
      for (const c of commands) {
        const rule = NOT_RUN.find((r) => r.match.test(c.line));
        if (rule) {
          skipped.push(`${c.line}  (${rule.why})`);
          continue;
        }
        const argv = argvOf(c.line);
        if (argv.length === 0) continue;
        const r = spawnSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8', timeout: 600_000, env: { ...process.env, PEERC_THREADS: '2' } });
        expect(r.status, `${file}: ${c.line}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`).toBe(0);
      }
      if (skipped.length) console.log(`${file}: not run:\n  ${skipped.join('\n  ')}`);
    }, 1_200_000);
  }
});
