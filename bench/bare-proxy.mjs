// The proxy's ceiling on this machine: a bare Node reverse proxy on a Unix socket, as little as such a proxy can
// be (read the body, one keep-alive http.request to the API with the token added, pipe the answer back), with none
// of the agent's checks. Plain JavaScript, like the compiled agent.
// Usage: node bench/bare-proxy.mjs SOCKET API_ORIGIN TOKEN   (prints "ready" once listening)
import { unlinkSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';

const [socketPath, origin, token] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 64, scheduling: 'lifo' });
const prefix = '/v1/proxy/default';
try {
  unlinkSync(socketPath);
} catch {}
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const out = request(
      `${origin}${req.url.slice(prefix.length)}`,
      {
        method: req.method,
        agent,
        headers: { 'content-type': req.headers['content-type'] ?? 'application/json', 'content-length': body.length, authorization: `Bearer ${token}` },
      },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    out.end(body);
  });
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
