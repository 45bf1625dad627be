// The baseline: a bare Node http server on a Unix socket answering the agent's own token JSON, byte for byte,
// with the same headers. Plain JavaScript so that it runs like the compiled agent, without a loader.
// Usage: node bench/bare-server.mjs SOCKET BODY_JSON   (prints "ready" once listening)
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:http';

const [socketPath, body] = process.argv.slice(2);
const length = Buffer.byteLength(body);
try {
  unlinkSync(socketPath);
} catch {}
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': length, 'cache-control': 'no-store' });
  res.end(body);
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
