// A real LSP client over stdio (vscode-jsonrpc) talking to `node dist/peerc.js lsp --stdio`, for
// the protocol tests: open/change documents, wait for their diagnostics, send any request.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node.js';

export interface LspDiagnostic {
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  severity?: number;
  code?: string;
  source?: string;
  message: string;
}

export class LspClient {
  readonly proc: ChildProcess;
  readonly conn: MessageConnection;
  stderr = '';
  private readonly diagnostics = new Map<string, { version: number; diagnostics: LspDiagnostic[] }[]>();
  private readonly waiters: (() => void)[] = [];
  private readonly versions = new Map<string, number>();

  constructor() {
    const root = join(import.meta.dirname, '..');
    this.proc = spawn(process.execPath, [join(root, 'dist', 'peerc.js'), 'lsp', '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.conn = createMessageConnection(new StreamMessageReader(this.proc.stdout!), new StreamMessageWriter(this.proc.stdin!));
    this.conn.onNotification('textDocument/publishDiagnostics', (p: { uri: string; diagnostics: LspDiagnostic[] }) => {
      const list = this.diagnostics.get(p.uri) ?? [];
      list.push({ version: this.versions.get(p.uri) ?? 0, diagnostics: p.diagnostics });
      this.diagnostics.set(p.uri, list);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.conn.listen();
  }

  async initialize(): Promise<{ capabilities: Record<string, unknown> }> {
    const r = await this.conn.sendRequest<{ capabilities: Record<string, unknown> }>('initialize', { processId: process.pid, rootUri: null, capabilities: { textDocument: { hover: { contentFormat: ['markdown'] } } } });
    await this.conn.sendNotification('initialized', {});
    return r;
  }

  async open(uri: string, text: string): Promise<LspDiagnostic[]> {
    const before = this.count(uri);
    this.versions.set(uri, 1);
    await this.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'peer', version: 1, text } });
    return this.nextDiagnostics(uri, before);
  }

  /** An incremental change (a range and its new text); resolves with the diagnostics that follow it. */
  async change(uri: string, range: LspDiagnostic['range'], text: string): Promise<LspDiagnostic[]> {
    const before = this.count(uri);
    const version = (this.versions.get(uri) ?? 1) + 1;
    this.versions.set(uri, version);
    await this.conn.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ range, text }] });
    return this.nextDiagnostics(uri, before);
  }

  async replace(uri: string, text: string): Promise<LspDiagnostic[]> {
    const before = this.count(uri);
    const version = (this.versions.get(uri) ?? 1) + 1;
    this.versions.set(uri, version);
    await this.conn.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text }] });
    return this.nextDiagnostics(uri, before);
  }

  /** The newest diagnostics of uri once they satisfy `ok` (later publishes: fusion notes follow a pause). */
  async until(uri: string, ok: (d: LspDiagnostic[]) => boolean, timeoutMs = 60_000): Promise<LspDiagnostic[]> {
    const t0 = Date.now();
    for (;;) {
      const latest = this.diagnostics.get(uri)?.at(-1)?.diagnostics;
      if (latest && ok(latest)) return latest;
      if (Date.now() - t0 > timeoutMs) throw new Error(`no diagnostics of ${uri} as expected within ${timeoutMs} ms: ${JSON.stringify(latest)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  request<R>(method: string, params: unknown): Promise<R> {
    return this.conn.sendRequest<R>(method, params);
  }

  private count(uri: string): number {
    return this.diagnostics.get(uri)?.length ?? 0;
  }

  private async nextDiagnostics(uri: string, before: number): Promise<LspDiagnostic[]> {
    while (this.count(uri) <= before) {
      if (this.proc.exitCode !== null) throw new Error(`the server exited (${this.proc.exitCode}): ${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return this.diagnostics.get(uri)!.at(-1)!.diagnostics;
  }

  async close(): Promise<void> {
    try {
      await this.conn.sendRequest('shutdown');
      await this.conn.sendNotification('exit');
    } catch {
      // already gone
    }
    this.conn.dispose();
    this.proc.kill();
  }
}
