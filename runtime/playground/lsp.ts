// The page's LSP client: @codemirror/lsp-client talking to the language server in
// lsp-worker.ts, so the editor's squiggles, hover, completion, signature help, rename, go to
// definition and formatting are `peerc lsp`'s. Diagnostics show their code, as the CLI does.
import { hoverTooltips, formatKeymap, jumpToDefinitionKeymap, findReferencesKeymap, LSPClient, LSPPlugin, renameKeymap, serverCompletion, signatureHelp, type LSPClientExtension, type Transport } from '@codemirror/lsp-client';
import { setDiagnostics } from '@codemirror/lint';
import { keymap, ViewPlugin, type ViewUpdate } from '@codemirror/view';
import type { Extension } from '@codemirror/state';

interface ServerDiagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity?: number;
  code?: string | number;
  message: string;
}

const SEVERITY = ['error', 'error', 'warning', 'info', 'hint'] as const;

/** Sends the edits to the server shortly after typing stops (it answers with diagnostics). */
const syncAfterTyping = ViewPlugin.fromClass(class {
  timer: ReturnType<typeof setTimeout> | undefined;
  update(u: ViewUpdate) {
    if (!u.docChanged) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => LSPPlugin.get(u.view)?.client.sync(), 150);
  }
  destroy() {
    clearTimeout(this.timer);
  }
});

/** publishDiagnostics as CodeMirror lint diagnostics, with the code in front of the message. */
function codedDiagnostics(onDiagnostics: (count: number) => void): LSPClientExtension {
  return {
    clientCapabilities: { textDocument: { publishDiagnostics: { versionSupport: true } } },
    notificationHandlers: {
      'textDocument/publishDiagnostics': (client, params: { uri: string; version?: number; diagnostics: ServerDiagnostic[] }) => {
        const file = client.workspace.getFile(params.uri);
        if (!file || (params.version != null && params.version !== file.version)) return false;
        const view = file.getView(), plugin = view && LSPPlugin.get(view);
        if (!view || !plugin) return false;
        view.dispatch(setDiagnostics(view.state, params.diagnostics.map((d) => ({
          from: plugin.unsyncedChanges.mapPos(plugin.fromPosition(d.range.start, plugin.syncedDoc)),
          to: plugin.unsyncedChanges.mapPos(plugin.fromPosition(d.range.end, plugin.syncedDoc)),
          severity: SEVERITY[d.severity ?? 1] ?? 'error',
          message: d.code ? `${d.code}: ${d.message}` : d.message,
        }))));
        onDiagnostics(params.diagnostics.length);
        return true;
      },
    },
    editorExtension: syncAfterTyping,
  };
}

/** A worker running the server, as an LSP transport (JSON strings one way, message objects the other). */
function workerTransport(worker: Worker): Transport {
  const handlers = new Set<(m: string) => void>();
  worker.onmessage = (e: MessageEvent) => {
    const text = JSON.stringify(e.data);
    for (const h of handlers) h(text);
  };
  return {
    send: (m) => worker.postMessage(JSON.parse(m)),
    subscribe: (h) => void handlers.add(h),
    unsubscribe: (h) => void handlers.delete(h),
  };
}

export function languageServer(uri: string, onDiagnostics: (count: number) => void = () => {}): { extension: Extension; worker: Worker } {
  const worker = new Worker(new URL('./lsp-worker.js', import.meta.url), { type: 'module' });
  const client = new LSPClient({
    extensions: [serverCompletion(), hoverTooltips(), keymap.of([...formatKeymap, ...renameKeymap, ...jumpToDefinitionKeymap, ...findReferencesKeymap]), signatureHelp(), codedDiagnostics(onDiagnostics)],
  }).connect(workerTransport(worker));
  return { extension: client.plugin(uri, 'peer'), worker };
}
