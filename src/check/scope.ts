// Name lookup for the checker, and naming dims back for messages.
import { editDistance } from '../../grammar/edit-distance.js';
import { Dim, type Shape } from '../shapes/dim.js';
import type { Value } from './values.js';

export class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}

  get(name: string): Value | undefined {
    return this.vars.get(name) ?? this.parent?.get(name);
  }
  has(name: string): boolean {
    return this.vars.has(name) || (this.parent?.has(name) ?? false);
  }
  hasOwn(name: string): boolean {
    return this.vars.has(name);
  }
  set(name: string, v: Value): void {
    this.vars.set(name, v);
  }
  names(): string[] {
    return [...new Set([...this.vars.keys(), ...(this.parent?.names() ?? [])])];
  }
  /** Names of integer constants in scope with the given value (own scope first). */
  namesOf(value: number): string[] {
    const own = [...this.vars].filter(([, v]) => v.kind === 'int' && v.dim.value === value).map(([n]) => n);
    return own.length ? own : (this.parent?.namesOf(value) ?? []);
  }
}

/** Prints a shape using the names a user wrote where one name has that value: [T, dk] not [T, 128]. */
export function namedShape(shape: Shape, scope: Scope): string {
  return `[${shape.map((d) => nameDim(d, scope)).join(', ')}]`;
}

export function nameDim(d: Dim, scope: Scope): string {
  const v = d.value;
  if (v === undefined || v < 2) return d.toString();
  const names = scope.namesOf(v);
  return names.length === 1 ? names[0]! : d.toString();
}

export function closestName(name: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.floor((name.length + 1) / 3) + 1;
  for (const c of candidates) {
    const d = Math.abs(name.length - c.length) > 3 ? 99 : editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

export const constDim = (n: number): Value => ({ kind: 'int', dim: Dim.of(n) });
