// `peerc playground`: serves the playground page (built into dist/playground by npm run build)
// with the headers that make it cross-origin isolated (SharedArrayBuffer, so wasm threads and
// peerc's wasm-simd worker pool run), or writes it as static files for any host.
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDir, onFile } from '../../src/io/files.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { UsageError } from '../../src/io/usage-error.js';

/** The headers every response carries; a static host must send the same (see HEADERS in --build). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.json': 'application/json' };

/** dist/playground beside the bundled CLI (dist/peerc.js), or the repository's when run from sources. */
export function playgroundDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = here.endsWith('dist') ? join(here, 'playground') : resolve(here, '..', '..', 'dist', 'playground');
  if (!existsSync(join(dir, 'index.html'))) throw new UsageError(`the playground is not built (${dir} has no index.html): run npm run build`);
  return dir;
}

export function servePlayground(dir: string, port: number, host: string): Promise<Server> {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
    if ((file !== root && !file.startsWith(root + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain', ...ISOLATION_HEADERS }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache', ...ISOLATION_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  });
  return new Promise((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(e.code === 'EADDRINUSE' ? new UsageError(`port ${port} on ${host} is in use: pass another --port (0 picks a free one)`) : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' ? new UsageError(`cannot listen on --host ${host}: ${e.code}`) : e));
    server.listen(port, host, () => done(server));
  });
}

const HEADERS_NOTE = `The peerc playground as static files.

Serve this folder over HTTP (not file://) with these headers on every response, so the page is
cross-origin isolated (SharedArrayBuffer: WebAssembly threads and peerc's wasm-simd backend):

${Object.entries(ISOLATION_HEADERS).map(([k, v]) => `  ${k}: ${v}`).join('\n')}

_headers has them in the format of Netlify and Cloudflare Pages. GitHub Pages cannot set headers:
there the page runs without threads (the Bench tab marks wasm-simd and webasm-threads unavailable).
Locally: peerc playground (it sends them).
`;

export function buildPlayground(out: string): string[] {
  const dir = playgroundDir();
  ensureDir(out);
  onFile('write', out, () => cpSync(dir, out, { recursive: true }));
  const headers = join(out, '_headers'), note = join(out, 'HEADERS.txt');
  writeFileDurably(headers, `/*\n${Object.entries(ISOLATION_HEADERS).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`);
  writeFileDurably(note, HEADERS_NOTE);
  return [out, headers, note];
}
