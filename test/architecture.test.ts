// The floors of the pipeline (grammar -> src -> codegen -> runtime): a module imports only from
// its own floor or the floors below, and no modules import each other in a circle (type-only
// imports included: a circle of types is still a knot to untie before moving either file).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const FLOORS = ['grammar', 'src', 'codegen', 'runtime'];
const files: string[] = [];
const walk = (d: string) => {
  for (const f of readdirSync(join(root, d))) {
    const p = join(d, f);
    if (statSync(join(root, p)).isDirectory()) walk(p);
    else if (f.endsWith('.ts') && !f.endsWith('.d.ts')) files.push(p);
  }
};
FLOORS.forEach(walk);
const known = new Set(files);
const imports = new Map(files.map((f) => {
  const text = readFileSync(join(root, f), 'utf8');
  const deps = [...text.matchAll(/(?:import|export)[^'"]*?from '(\.[^']+)'/g)].map((m) => relative(root, resolve(root, dirname(f), m[1]!.replace(/\.js$/, '.ts'))));
  return [f, deps.filter((d) => known.has(d))] as const;
}));
const floor = (f: string) => FLOORS.indexOf(f.split('/')[0]!);

it('imports flow one way: no module imports from a floor above its own', () => {
  const upward = [...imports].flatMap(([f, deps]) => deps.filter((d) => floor(d) > floor(f)).map((d) => `${f} -> ${d}`));
  expect(upward).toEqual([]);
});

it('no import circles among the modules', () => {
  // Tarjan's strongly connected components; any component of two or more files is a circle.
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of imports.get(v)!) {
      if (!index.has(w)) (visit(w), low.set(v, Math.min(low.get(v)!, low.get(w)!)));
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do (w = stack.pop()!, onStack.delete(w), component.push(w));
      while (w !== v);
      if (component.length > 1) circles.push(component.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  expect(circles).toEqual([]);
});

it('a backend is one folder: nothing outside runtime/backends/ reaches into a backend folder or asks which backend it is', () => {
  const inside = (f: string) => f.startsWith('runtime/backends/');
  const reaching = [...imports].filter(([f]) => !inside(f)).flatMap(([f, deps]) => deps.filter((d) => /^runtime\/backends\/[^/]+\//.test(d)).map((d) => `${f} -> ${d}`));
  expect(reaching).toEqual([]);
  // Capabilities are data (BackendInfo); comparing a backend's name outside its folder is how
  // backend logic spread over the code before.
  const asking = files.filter((f) => !inside(f) && f.startsWith('runtime/') && !f.startsWith('runtime/playground/') && /\.(?:name|backend) === '(?:cpu|webasm|webasm-threads|wasm-simd|headlessgl|webgl2|webgpu)'/.test(readFileSync(join(root, f), 'utf8')));
  expect(asking).toEqual([]);
});

it('the executor and the backends read attributes typed by the op declarations (attrsOf), not through casts', () => {
  const casting = files.filter((f) => (f.startsWith('runtime/backends/') || f === 'runtime/executor.ts') && /attrs\.\w+ as /.test(readFileSync(join(root, f), 'utf8')));
  expect(casting).toEqual([]);
});
