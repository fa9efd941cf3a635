// The editor's highlighting is derived from the grammar's tokens: on every example and the
// prelude it cuts the text into exactly the lexer's tokens, and classes them by token kind.
import { StringStream } from '@codemirror/language';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { peerLexer } from '../grammar/tokens.js';
import { PRELUDE_SOURCE } from '../src/frontend.js';
import { peerStreamParser, type State } from '../runtime/playground/highlight.js';

const root = join(import.meta.dirname, '..');

function highlighted(text: string): { line: number; from: number; to: number; style: string | null }[] {
  const state = peerStreamParser.startState!(2) as State;
  const out: { line: number; from: number; to: number; style: string | null }[] = [];
  text.split('\n').forEach((line, i) => {
    const stream = new StringStream(line, 2, 2);
    while (!stream.eol()) {
      stream.start = stream.pos;
      const style = peerStreamParser.token(stream, state);
      if (stream.pos === stream.start) throw new Error(`the highlighter made no progress at ${i + 1}:${stream.pos + 1}`);
      if (style !== null) out.push({ line: i + 1, from: stream.start, to: stream.pos, style });
    }
  });
  return out;
}

const sources: [string, string][] = [
  ['<prelude>', PRELUDE_SOURCE],
  ...readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.peer')).map((f) => [f, readFileSync(join(root, 'examples', f), 'utf8')] as [string, string]),
];

describe('the playground highlighter', () => {
  it.each(sources)('cuts %s into the lexer\'s tokens', (_name, text) => {
    const lexed = peerLexer.tokenize(text);
    expect(lexed.errors).toEqual([]);
    const want = lexed.tokens.map((t) => ({ line: t.startLine!, from: t.startColumn! - 1, to: t.endColumn! }));
    const got = highlighted(text).filter((t) => t.style !== 'comment').map(({ line, from, to }) => ({ line, from, to }));
    expect(got).toEqual(want);
  });

  it('classes keywords, types, numbers, attributes and names by the token they are', () => {
    const styles = highlighted('param Vals: [N, d] = normal(0, 0.02) @sparse # experts\nconst constant = 1e-3').map((t) => `${t.style}`);
    expect(styles).toEqual(['keyword', 'variableName', 'punctuation', 'bracket', 'variableName', 'punctuation', 'variableName', 'bracket', 'operator', 'variableName', 'bracket', 'number', 'punctuation', 'number', 'bracket', 'meta', 'meta', 'comment', 'keyword', 'variableName', 'operator', 'number']);
    expect(highlighted('x: f32[T] index')[2]!.style).toBe('typeName');
    expect(highlighted('\u0001 $')).toEqual([{ line: 1, from: 0, to: 1, style: 'invalid' }, { line: 1, from: 2, to: 3, style: 'invalid' }]);
  });
});
