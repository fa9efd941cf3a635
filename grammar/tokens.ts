// Tokens of the .peer language. Labels are what error messages show to users.
import { createToken, Lexer, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED, line_breaks: true });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: Lexer.SKIPPED });

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: 'a name' });
const keyword = (word: string) =>
  createToken({ name: `Kw_${word}`, pattern: new RegExp(word), longer_alt: Identifier, label: `'${word}'` });

export const Const = keyword('const');
export const Param = keyword('param');
export const Buffer = keyword('buffer');
export const Layer = keyword('layer');
export const Model = keyword('model');
export const Train = keyword('train');
export const Return = keyword('return');
export const Int = keyword('int');
export const F32 = keyword('f32');
export const Index = keyword('index');
export const None = keyword('None');

// A float needs a dot or an exponent; everything else digit-led is an integer.
export const FloatLiteral = createToken({
  name: 'FloatLiteral',
  pattern: /(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+/,
  label: 'a number',
});
export const IntegerLiteral = createToken({ name: 'IntegerLiteral', pattern: /\d+/, label: 'an integer' });
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"[^"\n]*"/, label: 'a string' });

export const Arrow = createToken({ name: 'Arrow', pattern: /->/, label: "'->'" });
export const Ellipsis = createToken({ name: 'Ellipsis', pattern: /\.\.\./, label: "'...'" });
const punct = (name: string, text: string) =>
  createToken({ name, pattern: new RegExp(text.replace(/[.*+?^$()[\]{}|\\/-]/g, '\\$&')), label: `'${text}'` });
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LBrace = punct('LBrace', '{');
export const RBrace = punct('RBrace', '}');
export const Comma = punct('Comma', ',');
export const Colon = punct('Colon', ':');
export const Equals = punct('Equals', '=');
export const Plus = punct('Plus', '+');
export const Minus = punct('Minus', '-');
export const Star = punct('Star', '*');
export const Slash = punct('Slash', '/');
export const Percent = punct('Percent', '%');
export const Caret = punct('Caret', '^');
export const At = punct('At', '@');
export const Semicolon = punct('Semicolon', ';');

export const allTokens: TokenType[] = [
  WhiteSpace, Comment, Arrow, Ellipsis, FloatLiteral, IntegerLiteral, StringLiteral,
  Const, Param, Buffer, Layer, Model, Train, Return, Int, F32, Index, None, Identifier,
  LParen, RParen, LBracket, RBracket, LBrace, RBrace, Comma, Colon, Equals,
  Plus, Minus, Star, Slash, Percent, Caret, At, Semicolon,
];

// Only '\n' ends a line, as in the renderer of diagnostics (a lone '\r' is plain whitespace).
export const peerLexer = new Lexer(allTokens, {
  positionTracking: 'full',
  lineTerminatorsPattern: /\n/g,
  lineTerminatorCharacters: ['\n'],
});
