// One minimal bad program per error code, with its expected output as a baseline file
// (test/errors/PEERnnnn.expected, updated only with `vitest -u`).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MESSAGES } from '../src/diagnostics/messages.js';
import { diagnose, diagnoseBytes } from './helpers.js';
import { MAX_SOURCE_BYTES } from '../src/frontend.js';

const dir = join(import.meta.dirname, 'errors');
const programs = readdirSync(dir).filter((f) => f.endsWith('.peer')).sort();

/** Codes raised only when running (bad weights or inputs) are covered by test/cli.test.ts and test/hardening.test.ts; training codes by test/train.test.ts and test/hardening.test.ts; fault codes (0709-0711, 0801, 0802) by test/faults.test.ts. */
const RUNTIME_CODES = ['PEER0709', 'PEER0710', 'PEER0711', 'PEER0712', 'PEER0801', 'PEER0802', 'PEER0600', 'PEER0601', 'PEER0602', 'PEER0603', 'PEER0604', 'PEER0605', 'PEER0606', 'PEER0700', 'PEER0701', 'PEER0702', 'PEER0703', 'PEER0704', 'PEER0705', 'PEER0706', 'PEER0707', 'PEER0708', 'PEER0800', 'PEER0900'];
/** Codes exercised by generated inputs in this file. */
const GENERATED_CODES = ['PEER0002', 'PEER0003', 'PEER0105'];

describe('every error code has a minimal failing program', () => {
  it('covers the whole message table', () => {
    const covered = new Set([...programs.map((f) => f.replace('.peer', '')), ...RUNTIME_CODES, ...GENERATED_CODES]);
    expect(Object.keys(MESSAGES).filter((c) => !covered.has(c))).toEqual([]);
  });

  for (const file of programs) {
    const code = file.replace('.peer', '');
    it(`${code}: ${MESSAGES[code as keyof typeof MESSAGES].title}`, async () => {
      const out = diagnoseBytes(readFileSync(join(dir, file)), `test/errors/${file}`);
      expect(out).toContain(`error ${code}:`);
      await expect(out).toMatchFileSnapshot(join(dir, `${code}.expected`));
    });
  }
});

describe('generated inputs', () => {
  it('PEER0002: a file over the size limit', () => {
    const out = diagnoseBytes(new Uint8Array(MAX_SOURCE_BYTES + 1).fill(32), 'big.peer');
    expect(out).toContain('error PEER0002');
  });

  it('PEER0105: a program of millions of tokens is refused quickly, before lexing', () => {
    const t0 = performance.now();
    const out = diagnose('const a = ' + '1+'.repeat(2_000_000) + '1\n');
    expect(out).toMatch(/error PEER0105: the program has 4,000,00\d tokens/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('PEER0003: stops after 100 errors and says so', () => {
    const src = Array.from({ length: 150 }, (_, i) => `const c${i} = missing${i}`).join('\n');
    const out = diagnose(src);
    expect(out).toContain('error PEER0003: too many errors; stopped after 100');
    expect(out.match(/error PEER0200/g)!.length).toBe(100);
  });

  it('reports several errors from one run, in source order', () => {
    const out = diagnose('const a = b\nconst c = 1/0\nparam W: [0] = zeros()\n');
    const codes = [...out.matchAll(/error (PEER\d{4})/g)].map((m) => m[1]);
    expect(codes).toEqual(['PEER0200', 'PEER0406', 'PEER0404']);
  });

  it('names the dims a user wrote in shape messages', () => {
    const out = diagnose(readFileSync(join(dir, 'PEER0302.peer'), 'utf8'));
    expect(out).toContain('expected [T, d] but found [T, dk]');
  });
});
