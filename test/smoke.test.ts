import { describe, expect, it } from 'vitest';
import { compileSource } from '../src/frontend.js';
import { renderAll } from '../src/diagnostics/render.js';

describe('smoke', () => {
  it('compiles the prelude layers generically', () => {
    const r = compileSource('const d = 4\nlayer f(x: [T, d]) -> [T, d] { return relu(x) }\n', 'a.peer');
    expect(renderAll(r.diagnostics, r.sources)).toBe('\n\n0 errors\n');
  });
});
