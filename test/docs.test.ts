import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { BUILTINS } from '../src/check/builtins.js';

it('docs/language.md documents every builtin', () => {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'language.md'), 'utf8');
  expect(Object.keys(BUILTINS).filter((b) => !doc.includes(`\`${b}`) && !doc.includes(` \`${b}(`) && !doc.includes(`, \`${b}\``))).toEqual([]);
});
