/// <reference types="vscode" />
// The VS Code client: starts `peerc lsp --stdio` (the command is the peerc.command setting) for
// .peer files. Everything else (diagnostics, hover, rename, formatting ...) is the server's.
import { workspace, type ExtensionContext } from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';

let client: LanguageClient | undefined;

export async function activate(context: ExtensionContext): Promise<void> {
  const [command, ...args] = workspace.getConfiguration('peerc').get<string[]>('command') ?? ['peerc', 'lsp', '--stdio'];
  const server: ServerOptions = { command: command!, args, transport: TransportKind.stdio };
  const options: LanguageClientOptions = { documentSelector: [{ language: 'peer' }], synchronize: { fileEvents: workspace.createFileSystemWatcher('**/*.peer') } };
  client = new LanguageClient('peerc', 'peerc language server', server, options);
  context.subscriptions.push({ dispose: () => void client?.stop() });
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
