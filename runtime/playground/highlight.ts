// .peer syntax highlighting for CodeMirror, derived from the grammar's own token list
// (grammar/tokens.ts): the same patterns in the same order as the lexer, so the editor never
// disagrees with the parser about what a token is. Every token fits on one line.
import { StreamLanguage, type StreamParser, type StringStream } from '@codemirror/language';
import { allTokens } from '../../grammar/tokens.js';

/** A token's highlighting class (CodeMirror's legacy token names) from its name in the grammar. */
export function styleOf(tokenName: string): string | null {
  if (tokenName === 'WhiteSpace') return null;
  if (tokenName === 'Comment') return 'comment';
  if (tokenName === 'FloatLiteral' || tokenName === 'IntegerLiteral') return 'number';
  if (tokenName === 'StringLiteral') return 'string';
  if (tokenName === 'Identifier') return 'variableName';
  if (/^Kw_(int|f32|index)$/.test(tokenName)) return 'typeName';
  if (tokenName.startsWith('Kw_')) return 'keyword';
  if (tokenName === 'At') return 'meta';
  if (/^[LR](Paren|Bracket|Brace)$/.test(tokenName)) return 'bracket';
  if (tokenName === 'Comma' || tokenName === 'Colon' || tokenName === 'Semicolon') return 'punctuation';
  return 'operator';
}

const RULES = allTokens
  .filter((t) => t.name !== 'WhiteSpace')
  .map((t) => ({ name: t.name, re: new RegExp((t.PATTERN as RegExp).source, 'y'), style: styleOf(t.name) }));

export interface State {
  /** After '@': the next name is an attribute (@sparse, @lr). */
  attribute: boolean;
}

export const peerStreamParser: StreamParser<State> = {
  name: 'peer',
  startState: () => ({ attribute: false }),
  token(stream: StringStream, state: State): string | null {
    if (stream.eatSpace()) return null;
    const line = stream.string;
    let best: { len: number; style: string | null; name: string } | null = null;
    for (const r of RULES) {
      r.re.lastIndex = stream.pos;
      const m = r.re.exec(line);
      // The lexer takes the first pattern that matches; a keyword is an identifier when a longer name matches.
      if (m && m[0].length > 0) {
        if (best && best.len >= m[0].length) break;
        best = { len: m[0].length, style: r.style, name: r.name };
        if (!r.name.startsWith('Kw_')) break;
      }
    }
    if (!best) {
      stream.next();
      return 'invalid';
    }
    stream.pos += best.len;
    const wasAttribute = state.attribute;
    state.attribute = best.name === 'At';
    if (wasAttribute && best.name === 'Identifier') return 'meta';
    return best.style;
  },
  languageData: { commentTokens: { line: '#' } },
};

export const peerLanguage = StreamLanguage.define<State>(peerStreamParser);
