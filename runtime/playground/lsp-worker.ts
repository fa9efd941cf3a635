// The playground's language server: `peerc lsp`'s features (runtime/lsp/features.ts) in a worker,
// speaking LSP over the worker's messages, so the page's editor gets the diagnostics, hover,
// completion, rename and formatting an editor gets from `peerc lsp`.
import { BrowserMessageReader, BrowserMessageWriter, createConnection } from 'vscode-languageserver/browser.js';
import { serve } from '../lsp/features.js';

const scope = self as unknown as Worker;
serve(createConnection(new BrowserMessageReader(scope), new BrowserMessageWriter(scope)), {
  preludeUri: 'peerc:prelude.peer',
  fileOf: (uri) => uri.replace(/^file:\/\/\//, ''),
});
