// `peerc lsp`: the language server over stdio (vscode-languageserver's Node connection).
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node.js';
import { serve } from './features.js';

/** The prelude as a file editors can open: the package's src/prelude.peer (shipped with it). */
function preludeUri(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [resolve(here, '..', 'src', 'prelude.peer'), resolve(here, '..', '..', 'src', 'prelude.peer')]) if (existsSync(p)) return pathToFileURL(p).href;
  return 'peerc:prelude.peer';
}

export function startServer(): void {
  serve(createConnection(ProposedFeatures.all, process.stdin, process.stdout), {
    preludeUri: preludeUri(),
    fileOf: (uri) => (uri.startsWith('file:') ? fileURLToPath(uri) : uri),
  });
}
