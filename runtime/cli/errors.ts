import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';

/** The program (or its data) has errors: render them all and exit with status 1. */
export class ProgramErrors extends Error {
  constructor(readonly diagnostics: Diagnostic[], readonly sources: Map<string, string>) {
    super('program errors');
  }
}
