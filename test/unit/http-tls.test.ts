import assert from 'node:assert/strict';
import { constants as cryptoConstants } from 'node:crypto';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import type { Agent as HttpsAgent } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { rootCertificates } from 'node:tls';
import {
  classifyTlsError,
  createCaStore,
  createHttpClient,
  DEFAULT_MAX_RESPONSE_BYTES,
  LEGACY_SERVER_CONNECT_OPTION,
  tlsConnectOptions,
  TransportError,
  type HttpRequest,
  type NodeHttpClient,
} from '../../src/authorities/http.js';
import { createTestPki, startHttpsServer, startRenegotiationStripper, type TestHttpsServer, type TestPki } from '../support/tls.js';

/** The text OpenSSL 3 gives Node when a server lacks RFC 5746 (as seen against a real legacy server). */
const LEGACY_RENEGOTIATION_FIXTURE =
  'write EPROTO 40D8B8F5C47F0000:error:0A000152:SSL routines:final_renegotiate:unsafe legacy renegotiation disabled:../deps/openssl/openssl/ssl/statem/extensions.c:922:\n';

const SSL_OP_LEGACY_SERVER_CONNECT = cryptoConstants.SSL_OP_LEGACY_SERVER_CONNECT;

async function transportError(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TransportError, `expected TransportError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to fail');
}

const request = (url: string, extra: Partial<HttpRequest> = {}): HttpRequest => ({
  url,
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: 'a=1',
  timeouts: { connectMs: 2_000, responseMs: 2_000, totalMs: 5_000 },
  maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
  ...extra,
});

describe('HTTP client TLS options against loopback HTTPS servers', () => {
  let pki: TestPki;
  let good: TestHttpsServer;
  let wrongName: TestHttpsServer;
  let expired: TestHttpsServer;
  let client: NodeHttpClient;
  const env = {};

  before(async () => {
    pki = createTestPki();
    good = await startHttpsServer(pki.server, {
      handler: (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(req.method === 'HEAD' ? undefined : JSON.stringify({ method: req.method }));
      },
    });
    wrongName = await startHttpsServer(pki.wrongName);
    expired = await startHttpsServer(pki.expired);
    client = createHttpClient({ env });
  });

  after(async () => {
    client.close();
    await Promise.all([good.close(), wrongName.close(), expired.close()]);
    pki.cleanup();
  });

  test('a server from an unknown CA fails as tls/unknown_ca, pointing at tls.caFile', async () => {
    const err = await transportError(client.request(request(`https://localhost:${good.port}/t`)));
    assert.equal(err.kind, 'tls');
    assert.equal(err.tlsReason, 'unknown_ca');
    assert.equal(err.legacyRenegotiation, false);
    assert.match(err.message, /^TLS failure talking to https:\/\/localhost:\d+\/t: the server's certificate is not from a trusted CA/);
    assert.match(err.message, /set tls\.caFile/);
  });

  test('with tls.caFile the same server is trusted', async () => {
    const r = await client.request(request(`https://localhost:${good.port}/t`, { tls: { caFile: pki.caFile } }));
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body.toString()), { method: 'POST' });
  });

  test('a caFile with several certificates: every one is trusted', async () => {
    const r = await client.request(request(`https://127.0.0.1:${good.port}/t`, { tls: { caFile: pki.bundleFile } }));
    assert.equal(r.status, 200);
    const opts = await tlsConnectOptions({ caFile: pki.bundleFile });
    assert.equal(opts.ca!.length, rootCertificates.length + 2);
  });

  test('the caFile is added to Node\'s default trust store, not put in its place', async () => {
    assert.ok(rootCertificates.length > 50, 'Node ships public roots');
    const opts = await tlsConnectOptions({ caFile: pki.caFile });
    for (const root of rootCertificates) assert.ok(opts.ca!.includes(root));
    assert.equal(opts.ca!.length, rootCertificates.length + 1);
    assert.equal(opts.secureOptions, undefined);
    // The agent the request used carries exactly that list.
    const agent = (await client.agentFor({ url: `https://localhost:${good.port}/`, tls: { caFile: pki.caFile } })) as HttpsAgent;
    const ca = agent.options.ca as string[];
    assert.deepEqual(ca.slice(0, rootCertificates.length), [...rootCertificates]);
    assert.match(ca.at(-1)!, /^-----BEGIN CERTIFICATE-----/);
  });

  test('without proxy or TLS options Node\'s global agent is used', async () => {
    assert.equal(await client.agentFor({ url: `https://localhost:${good.port}/` }), undefined);
    assert.equal(await client.agentFor({ url: `https://localhost:${good.port}/`, tls: { legacyServerConnect: false } }), undefined);
  });

  test('a certificate for another name is tls/hostname_mismatch', async () => {
    const err = await transportError(client.request(request(`https://localhost:${wrongName.port}/t`, { tls: { caFile: pki.caFile } })));
    assert.equal(err.kind, 'tls');
    assert.equal(err.tlsReason, 'hostname_mismatch');
    assert.match(err.message, /certificate is for another host name \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  });

  test('an expired certificate is tls/expired', async () => {
    const err = await transportError(client.request(request(`https://localhost:${expired.port}/t`, { tls: { caFile: pki.caFile } })));
    assert.equal(err.kind, 'tls');
    assert.equal(err.tlsReason, 'expired');
    assert.match(err.message, /expired, or this box's clock is wrong \(CERT_HAS_EXPIRED\)/);
  });

  test('HEAD and GET work with the same timeouts; a body on them is refused', async () => {
    const tls = { caFile: pki.caFile };
    const head = await client.request(request(`https://localhost:${good.port}/h`, { method: 'HEAD', body: undefined, tls }));
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(typeof head.headers.date, 'string');
    const get = await client.request(request(`https://localhost:${good.port}/g`, { method: 'GET', body: undefined, tls }));
    assert.deepEqual(JSON.parse(get.body.toString()), { method: 'GET' });
    const err = await transportError(client.request(request(`https://localhost:${good.port}/g`, { method: 'GET', tls })));
    assert.equal(err.kind, 'config');
  });
});

describe('tls.caFile problems are clear errors, never crashes', () => {
  let pki: TestPki;
  before(() => {
    pki = createTestPki();
  });
  after(() => pki.cleanup());

  const attempt = (caFile: string) =>
    transportError(createHttpClient({ env: {} }).request(request('https://id.eta.test/connect/token', { tls: { caFile } })));

  test('a missing file', async () => {
    const err = await attempt(join(pki.dir, 'nope.pem'));
    assert.equal(err.kind, 'config');
    assert.equal(err.message, `tls.caFile ${join(pki.dir, 'nope.pem')} cannot be read: file not found`);
  });

  test('a file that is not PEM', async () => {
    const err = await attempt(pki.notPemFile);
    assert.equal(err.kind, 'config');
    assert.match(err.message, /^tls\.caFile .*not-pem\.der is not a PEM certificate file/);
  });

  test('a PEM block that is not a certificate', async () => {
    const file = join(pki.dir, 'broken.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
    const err = await attempt(file);
    assert.equal(err.kind, 'config');
    assert.match(err.message, /certificate 1 of 1 is not a readable X\.509 certificate/);
  });

  test('a directory', async () => {
    const dir = join(pki.dir, 'a-dir');
    mkdirSync(dir);
    const err = await attempt(dir);
    assert.equal(err.kind, 'config');
    assert.match(err.message, /not a regular file/);
  });

  test('the file is read once and again only when it changes', async () => {
    const store = createCaStore();
    const file = join(pki.dir, 'changing.pem');
    writeFileSync(file, pki.server.cert);
    utimesSync(file, new Date('2025-01-01T00:00:00Z'), new Date('2025-01-01T00:00:00Z'));
    const a = await store.load(file);
    const b = await store.load(file);
    assert.equal(a, b);
    writeFileSync(file, pki.server.cert + pki.wrongName.cert);
    const c = await store.load(file);
    assert.notEqual(c.version, a.version);
    assert.equal(c.certs.length, 2);
  });

  test('agents are cached per TLS options and replaced when the caFile changes', async () => {
    const client = createHttpClient({ env: {} });
    const file = join(pki.dir, 'agent-ca.pem');
    writeFileSync(file, pki.server.cert);
    const url = 'https://id.eta.test/connect/token';
    const a1 = await client.agentFor({ url, tls: { caFile: file } });
    assert.equal(await client.agentFor({ url, tls: { caFile: file } }), a1);
    const legacy = await client.agentFor({ url, tls: { caFile: file, legacyServerConnect: true } });
    assert.notEqual(legacy, a1);
    writeFileSync(file, pki.server.cert + pki.wrongName.cert);
    utimesSync(file, new Date('2030-01-01T00:00:00Z'), new Date('2030-01-01T00:00:00Z'));
    assert.notEqual(await client.agentFor({ url, tls: { caFile: file } }), a1);
    client.close();
  });
});

describe('tls.legacyServerConnect', () => {
  let pki: TestPki;
  let tls12: TestHttpsServer;

  before(async () => {
    pki = createTestPki();
    tls12 = await startHttpsServer(pki.server, { maxVersion: 'TLSv1.2' });
  });
  after(async () => {
    await tls12.close();
    pki.cleanup();
  });

  test('sets SSL_OP_LEGACY_SERVER_CONNECT on that request\'s agent only', async () => {
    const client = createHttpClient({ env: {} });
    const url = 'https://id.eta.test/connect/token';
    const legacy = (await client.agentFor({ url, tls: { legacyServerConnect: true } })) as HttpsAgent;
    assert.ok(legacy);
    assert.equal((legacy.options.secureOptions ?? 0) & SSL_OP_LEGACY_SERVER_CONNECT, SSL_OP_LEGACY_SERVER_CONNECT);
    assert.equal(await client.agentFor({ url, tls: { legacyServerConnect: true } }), legacy);
    const plain = (await client.agentFor({ url, tls: { caFile: pki.caFile } })) as HttpsAgent;
    assert.equal((plain.options.secureOptions ?? 0) & SSL_OP_LEGACY_SERVER_CONNECT, 0);
    assert.equal((await tlsConnectOptions({ legacyServerConnect: true })).secureOptions, SSL_OP_LEGACY_SERVER_CONNECT);
    // And a normal server still works with it on.
    const r = await client.request(request(`https://localhost:${tls12.port}/x`, { tls: { caFile: pki.caFile, legacyServerConnect: true } }));
    assert.equal(r.status, 200);
    client.close();
  });

  test('the relay alone is transparent', async () => {
    const relay = await startRenegotiationStripper(tls12.port, { strip: false });
    try {
      const r = await createHttpClient({ env: {} }).request(request(`https://localhost:${relay.port}/x`, { tls: { caFile: pki.caFile } }));
      assert.equal(r.status, 200);
    } finally {
      await relay.close();
    }
  });

  test('a server without RFC 5746: OpenSSL\'s real error becomes tls/legacy_renegotiation naming the option', async () => {
    const relay = await startRenegotiationStripper(tls12.port);
    try {
      const err = await transportError(
        createHttpClient({ env: {} }).request(request(`https://localhost:${relay.port}/x`, { tls: { caFile: pki.caFile } })),
      );
      assert.equal(relay.stripped, 1);
      assert.equal(err.kind, 'tls');
      assert.equal(err.tlsReason, 'legacy_renegotiation');
      assert.equal(err.legacyRenegotiation, true);
      assert.ok(err.message.includes(`set ${LEGACY_SERVER_CONNECT_OPTION} for this account`), err.message);
      assert.match(String((err.cause as Error).message), /unsafe legacy renegotiation disabled/);
    } finally {
      await relay.close();
    }
  });

  test('with legacyServerConnect the client gets past that check (the option reached the connection)', async () => {
    const relay = await startRenegotiationStripper(tls12.port);
    try {
      const err = await transportError(
        createHttpClient({ env: {} }).request(
          request(`https://localhost:${relay.port}/x`, { tls: { caFile: pki.caFile, legacyServerConnect: true } }),
        ),
      );
      assert.equal(relay.stripped, 1);
      // It still fails, later: the relay changed the transcript, so Finished does not verify.
      assert.notEqual(err.tlsReason, 'legacy_renegotiation');
      assert.doesNotMatch(String((err.cause as Error | undefined)?.message), /legacy renegotiation/);
    } finally {
      await relay.close();
    }
  });

  test('the OpenSSL error text is classified without a server', () => {
    assert.equal(classifyTlsError('EPROTO', LEGACY_RENEGOTIATION_FIXTURE), 'legacy_renegotiation');
    assert.equal(classifyTlsError('ERR_SSL_UNSAFE_LEGACY_RENEGOTIATION_DISABLED', 'x'), 'legacy_renegotiation');
    assert.equal(classifyTlsError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate'), 'unknown_ca');
    assert.equal(classifyTlsError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'), 'unknown_ca');
    assert.equal(classifyTlsError('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), 'unknown_ca');
    assert.equal(classifyTlsError('CERT_HAS_EXPIRED', 'certificate has expired'), 'expired');
    assert.equal(classifyTlsError('CERT_NOT_YET_VALID', 'certificate is not yet valid'), 'not_yet_valid');
    assert.equal(classifyTlsError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"), 'hostname_mismatch');
    assert.equal(classifyTlsError('EPROTO', 'error:0A00010B:SSL routines::wrong version number'), 'other');
    assert.equal(classifyTlsError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), undefined);
  });
});
