/**
 * TLS fixtures for tests: a throwaway CA and server certificates made with the openssl CLI in a temp dir
 * (never committed), loopback HTTPS servers, and a relay that removes RFC 5746 support from a server's answer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Leaf {
  key: string;
  cert: string;
  certFile: string;
}

export interface TestPki {
  dir: string;
  /** PEM file of the throwaway CA: what tls.caFile points at. */
  caFile: string;
  /** A bundle: another CA first, then ours (a caFile with several certificates). */
  bundleFile: string;
  /** A file that is not PEM at all. */
  notPemFile: string;
  /** For localhost, 127.0.0.1 and id.eta.test. */
  server: Leaf;
  /** Valid, but for other.example only. */
  wrongName: Leaf;
  /** Same names as `server`, valid in January 2020 only. */
  expired: Leaf;
  cleanup(): void;
}

const NAMES = 'subjectAltName=DNS:localhost,DNS:id.eta.test,IP:127.0.0.1';

function openssl(cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'pta-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=pos-token-agent test CA']);
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=unrelated CA']);
  writeFileSync(join(dir, 'bundle.pem'), readFileSync(join(dir, 'other-ca.pem'), 'utf8') + readFileSync(join(dir, 'ca.pem'), 'utf8'));
  writeFileSync(join(dir, 'not-pem.der'), Buffer.from([0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00]));

  const leaf = (name: string, san: string): void => {
    writeFileSync(join(dir, `${name}.ext`), `${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    openssl(dir, ['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  };
  const sign = (name: string): void => {
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  };
  leaf('server', NAMES);
  sign('server');
  leaf('wrong-name', 'subjectAltName=DNS:other.example');
  sign('wrong-name');
  // `openssl x509` takes no past dates; `openssl ca` does.
  leaf('expired', NAMES);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]', 'default_ca = test', '[test]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial',
      'default_md = sha256', 'policy = any', 'unique_subject = no', '[any]', 'commonName = supplied', '',
    ].join('\n'),
  );
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', 'expired.csr',
    '-out', 'expired.pem', '-startdate', '20200101000000Z', '-enddate', '20200131000000Z', '-extfile', 'expired.ext', '-notext']);

  const read = (name: string): Leaf => ({
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
    cert: readFileSync(join(dir, `${name}.pem`), 'utf8'),
    certFile: join(dir, `${name}.pem`),
  });
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    bundleFile: join(dir, 'bundle.pem'),
    notPemFile: join(dir, 'not-pem.der'),
    server: read('server'),
    wrongName: read('wrong-name'),
    expired: read('expired'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TestHttpsServer {
  port: number;
  /** Requests answered, by path. */
  requests: string[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Answers 200 {"ok":true} unless a handler says otherwise. */
export async function startHttpsServer(
  leaf: Leaf,
  options: { maxVersion?: 'TLSv1.2' | 'TLSv1.3'; handler?: Handler } = {},
): Promise<TestHttpsServer> {
  const requests: string[] = [];
  const server: HttpsServer = createHttpsServer(
    { key: leaf.key, cert: leaf.cert, ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}) },
    (req, res) => {
      requests.push(req.url ?? '');
      req.resume();
      if (options.handler) return options.handler(req, res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
  );
  server.on('tlsClientError', () => {});
  const sockets = track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => closeServer(server, sockets),
  };
}

export interface Relay {
  port: number;
  /** ServerHello messages whose renegotiation_info extension was removed. */
  stripped: number;
  close(): Promise<void>;
}

/**
 * A TCP relay to a TLS 1.2 server that removes the renegotiation_info extension (RFC 5746, type 0xff01) from
 * the ServerHello: to the client the server looks like one without secure renegotiation, so the client's
 * OpenSSL fails with its real "unsafe legacy renegotiation disabled" error. A client that allows legacy servers
 * (SSL_OP_LEGACY_SERVER_CONNECT) passes that point and fails later, at Finished, because the relay changed
 * the handshake transcript. With `strip: false` the relay is transparent.
 */
export async function startRenegotiationStripper(upstreamPort: number, options: { strip?: boolean } = {}): Promise<Relay> {
  const strip = options.strip ?? true;
  const relay = {
    port: 0,
    stripped: 0,
    close: async () => closeServer(server, sockets),
  };
  const server = createNetServer((client) => {
    const upstream = netConnect(upstreamPort, '127.0.0.1');
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    let pending: Buffer | undefined = strip ? Buffer.alloc(0) : undefined;
    upstream.on('data', (chunk: Buffer) => {
      if (pending === undefined) {
        client.write(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 5) return;
      const recordLength = pending.readUInt16BE(3);
      if (pending.length < 5 + recordLength) return;
      const out = pending[0] === 22 ? stripRenegotiationInfo(pending, () => relay.stripped++) : pending;
      pending = undefined;
      client.write(out);
    });
  });
  const sockets = track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay.port = (server.address() as AddressInfo).port;
  return relay;
}

/** Removes extension 0xff01 from a ServerHello at the start of the first handshake record; fixes the lengths. */
function stripRenegotiationInfo(data: Buffer, onStrip: () => void): Buffer {
  const recordLength = data.readUInt16BE(3);
  const record = data.subarray(5, 5 + recordLength);
  const rest = data.subarray(5 + recordLength);
  if (record[0] !== 2) return data; // not a ServerHello
  const hsLength = record.readUIntBE(1, 3);
  const body = record.subarray(4, 4 + hsLength);
  const afterHello = record.subarray(4 + hsLength);
  let p = 2 + 32; // version, random
  p += 1 + body[p]!; // session id
  p += 2 + 1; // cipher suite, compression
  if (p + 2 > body.length) return data; // no extensions
  const extStart = p + 2;
  const extEnd = extStart + body.readUInt16BE(p);
  const kept: Buffer[] = [];
  let q = extStart;
  let removed = false;
  while (q + 4 <= extEnd) {
    const type = body.readUInt16BE(q);
    const len = body.readUInt16BE(q + 2);
    if (type === 0xff01) removed = true;
    else kept.push(body.subarray(q, q + 4 + len));
    q += 4 + len;
  }
  if (!removed) return data;
  onStrip();
  const extensions = Buffer.concat(kept);
  const extLength = Buffer.alloc(2);
  extLength.writeUInt16BE(extensions.length);
  const newBody = Buffer.concat([body.subarray(0, p), extLength, extensions]);
  const hsHeader = Buffer.alloc(4);
  hsHeader[0] = 2;
  hsHeader.writeUIntBE(newBody.length, 1, 3);
  const newRecord = Buffer.concat([hsHeader, newBody, afterHello]);
  const recordHeader = Buffer.from(data.subarray(0, 5));
  recordHeader.writeUInt16BE(newRecord.length, 3);
  return Buffer.concat([recordHeader, newRecord, rest]);
}

export function track(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

export function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
