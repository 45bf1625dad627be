import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createHttpClient, type NodeHttpClient } from '../../src/authorities/http.js';
import {
  checkClock,
  checkDns,
  checkNetwork,
  checkProxy,
  checkTcp,
  checkTls,
  formatOffset,
  type CheckResult,
} from '../../src/doctor/network.js';
import { boxFacts } from '../../src/doctor/box.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { startConnectProxy, type ConnectProxy } from '../support/proxy.js';
import {
  closeServer,
  createTestPki,
  track,
  startHttpsServer,
  startRenegotiationStripper,
  type TestHttpsServer,
  type TestPki,
} from '../support/tls.js';

const HOUR = 3_600_000;
/** A box with the usual tools and files, so that the fixes name them wherever the tests run (doctor-fixes covers a bare one). */
const BOX = boxFacts({}, {
  uid: 0,
  command: (name) => ['getent', 'timedatectl'].includes(name),
  exists: (path) => ['/etc/resolv.conf', '/etc/systemd/timesyncd.conf'].includes(path),
});
// The skews below are an hour and 20 s: a Date header is good to a second and the request's own time blurs the
// reading by a few hundred ms more, so a skew of exactly an hour may read "59 min 59 s" (a CI run did).
const SKEW = HOUR + 20_000;
const SECRET = 'pr0xy-Secret';

function passed(r: CheckResult): string {
  assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
  return r.detail;
}

function failed(r: CheckResult): { problem: string; fix: string } {
  assert.ok(!r.ok, `expected a failure, got ${JSON.stringify(r)}`);
  return r;
}

async function closedPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('checkDns', () => {
  test('passes for a name that resolves', async () => {
    assert.match(passed(await checkDns('localhost')), /^localhost resolves to /);
    assert.match(passed(await checkDns('127.0.0.1')), /no DNS needed/);
  });

  test('fails for a name under .invalid, pointing at resolv.conf', async () => {
    const f = failed(await checkDns('id.eta.invalid', { box: BOX }));
    assert.match(f.problem, /^the name id\.eta\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)$|^no answer from the DNS server/);
    assert.match(f.fix, /check the DNS server in \/etc\/resolv\.conf/);
  });

  test('is bounded in time: a resolver that never answers fails at the timeout', async () => {
    const clock = new FakeClock();
    const p = checkDns('id.eta.gov.eg', { clock, timeoutMs: 3_000, lookup: () => new Promise(() => {}), box: BOX });
    await flushMicrotasks();
    assert.equal(clock.pendingTimers, 1);
    await clock.advance(3_000);
    const f = failed(await p);
    assert.equal(f.problem, 'no answer from the DNS server for id.eta.gov.eg within 3 s');
    assert.match(f.fix, /\/etc\/resolv\.conf .*port 53/);
  });
});

describe('checkTcp', () => {
  test('passes against a listening port', async () => {
    const s = createServer((c) => c.destroy());
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const port = (s.address() as AddressInfo).port;
    try {
      assert.match(passed(await checkTcp('127.0.0.1', port)), new RegExp(`^TCP connection to 127\\.0\\.0\\.1:${port} \\(127\\.0\\.0\\.1\\) in \\d+ ms$`));
    } finally {
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  test('fails on a refused port, saying to open outbound TCP', async () => {
    const port = await closedPort();
    const f = failed(await checkTcp('127.0.0.1', port));
    assert.equal(f.problem, `127.0.0.1:${port} refused the connection (ECONNREFUSED)`);
    assert.match(f.fix, new RegExp(`open outbound TCP ${port} to 127\\.0\\.0\\.1`));
  });
});

describe('checkTls and checkClock against loopback HTTPS servers', () => {
  let pki: TestPki;
  let good: TestHttpsServer;
  let tls12: TestHttpsServer;
  let wrongName: TestHttpsServer;
  let expired: TestHttpsServer;
  let skewed: TestHttpsServer;
  let noDate: TestHttpsServer;
  let client: NodeHttpClient;

  before(async () => {
    pki = createTestPki();
    good = await startHttpsServer(pki.server);
    tls12 = await startHttpsServer(pki.server, { maxVersion: 'TLSv1.2' });
    wrongName = await startHttpsServer(pki.wrongName);
    expired = await startHttpsServer(pki.expired);
    skewed = await startHttpsServer(pki.server, {
      handler: (_req, res) => {
        res.setHeader('date', new Date(Date.now() - SKEW).toUTCString());
        res.writeHead(405);
        res.end();
      },
    });
    noDate = await startHttpsServer(pki.server, {
      handler: (_req, res) => {
        res.sendDate = false;
        res.writeHead(200);
        res.end();
      },
    });
    client = createHttpClient({ env: {} });
  });

  after(async () => {
    client.close();
    await Promise.all([good, tls12, wrongName, expired, skewed, noDate].map((s) => s.close()));
    pki.cleanup();
  });

  const url = (s: TestHttpsServer, host = 'localhost') => `https://${host}:${s.port}/connect/token`;

  test('checkTls passes with tls.caFile', async () => {
    const detail = passed(await checkTls(url(good), { caFile: pki.caFile }));
    assert.match(detail, new RegExp(`^TLSv1\\.3 with localhost:${good.port}: certificate for DNS:localhost, DNS:id\\.eta\\.test, IP Address:127\\.0\\.0\\.1 issued by "pos-token-agent test CA", valid until `));
  });

  test('checkTls: an unknown CA says to set tls.caFile to the proxy\'s CA, naming the issuer', async () => {
    const f = failed(await checkTls(url(good), {}, { account: 'shop1' }));
    assert.equal(f.problem, 'the certificate of localhost is not from a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE): it is issued by "pos-token-agent test CA"');
    assert.match(f.fix, /set tls\.caFile for account shop1 to your proxy's CA certificate \(PEM\)/);
  });

  test('checkTls: an expired certificate, with the box\'s time for comparison', async () => {
    const f = failed(await checkTls(url(expired), { caFile: pki.caFile }, { now: () => Date.UTC(2026, 0, 1), box: BOX }));
    assert.equal(f.problem, 'the certificate of localhost expired on 2020-01-31T00:00:00.000Z; this box\'s clock says 2026-01-01T00:00:00.000Z');
    assert.match(f.fix, /timedatectl/);
  });

  test('checkTls: a certificate for another name', async () => {
    const f = failed(await checkTls(url(wrongName, '127.0.0.1'), { caFile: pki.caFile }));
    assert.equal(f.problem, 'the certificate presented for 127.0.0.1 is for DNS:other.example');
  });

  test('checkTls: a server without RFC 5746 says to set tls.legacyServerConnect for the account', async () => {
    const relay = await startRenegotiationStripper(tls12.port);
    try {
      const f = failed(await checkTls(`https://localhost:${relay.port}/`, { caFile: pki.caFile }, { account: 'shop1' }));
      assert.match(f.problem, /^localhost does not support secure renegotiation \(RFC 5746\)/);
      assert.equal(f.fix, 'set tls.legacyServerConnect: true for account shop1 in the config (under "tls" in the account)');
      // With the option, the handshake gets past that point (and fails later only because the relay tampered).
      const g = failed(await checkTls(`https://localhost:${relay.port}/`, { caFile: pki.caFile, legacyServerConnect: true }));
      assert.doesNotMatch(g.problem, /renegotiation/);
    } finally {
      await relay.close();
    }
    assert.match(passed(await checkTls(url(tls12), { caFile: pki.caFile, legacyServerConnect: true })), /^TLSv1\.2 .*, with tls\.legacyServerConnect: true$/);
  });

  test('checkTls: an unreadable caFile is a problem with a fix, not a crash', async () => {
    const f = failed(await checkTls(url(good), { caFile: pki.notPemFile }, { account: 'shop1' }));
    assert.match(f.problem, /^tls\.caFile .* is not a PEM certificate file/);
    assert.match(f.fix, /^fix tls\.caFile for account shop1/);
  });

  test('checkTls: a refused port', async () => {
    const port = await closedPort();
    const f = failed(await checkTls(`https://127.0.0.1:${port}/`, {}));
    assert.equal(f.problem, `no TLS connection to 127.0.0.1:${port} (ECONNREFUSED)`);
  });

  test('checkClock passes when the Date header agrees', async () => {
    const r = await checkClock(url(good), client, Date.now, { tls: { caFile: pki.caFile } });
    assert.match(passed(r), /^this box's clock is within \d+ s of the time at localhost:\d+$/);
    assert.ok(Math.abs(r.offsetMs!) < 5_000, String(r.offsetMs));
  });

  test('checkClock fails when the server\'s Date is an hour off, saying to fix NTP', async () => {
    const r = await checkClock(url(skewed), client, Date.now, { tls: { caFile: pki.caFile }, box: BOX });
    const f = failed(r);
    assert.match(f.problem, /^this box's clock is 1 h 0 min ahead of the time at localhost:\d+ \(box: .*, server: .*\)$/);
    assert.match(f.fix, /timedatectl set-ntp true/);
    assert.ok(Math.abs(r.offsetMs! + SKEW) < 5_000, String(r.offsetMs));
  });

  test('formatOffset rounds at the unit it shows', () => {
    assert.equal(formatOffset(400), '0 s');
    assert.equal(formatOffset(59_400), '59 s');
    assert.equal(formatOffset(59_600), '1 min 0 s');
    assert.equal(formatOffset(3_599_400), '59 min 59 s');
    assert.equal(formatOffset(3_599_600), '1 h 0 min');
    assert.equal(formatOffset(HOUR + 29_000), '1 h 0 min');
    assert.equal(formatOffset(HOUR + 31_000), '1 h 1 min');
    assert.equal(formatOffset(26 * HOUR), '26 h 0 min');
  });

  test('checkClock against a box clock an hour behind (injected now)', async () => {
    const r = await checkClock(url(good), client, () => Date.now() - SKEW, { tls: { caFile: pki.caFile } });
    assert.match(failed(r).problem, /^this box's clock is 1 h 0 min behind/);
  });

  test('checkClock: no Date header, or no answer', async () => {
    assert.match(failed(await checkClock(url(noDate), client, Date.now, { tls: { caFile: pki.caFile } })).problem, /sent no usable Date header/);
    const f = failed(await checkClock(url(good), client, Date.now));
    assert.match(f.problem, /^could not read the time from localhost:\d+: TLS failure/);
  });
});

describe('checkProxy and checkNetwork', () => {
  let pki: TestPki;
  let server: TestHttpsServer;
  let proxy: ConnectProxy;
  let authProxy: ConnectProxy;
  let refusing: ConnectProxy;

  before(async () => {
    pki = createTestPki();
    server = await startHttpsServer(pki.server);
    proxy = await startConnectProxy();
    authProxy = await startConnectProxy({ auth: { user: 'posbox', password: SECRET } });
    refusing = await startConnectProxy({ refuseStatus: 403 });
  });

  after(async () => {
    await Promise.all([server.close(), proxy.close(), authProxy.close(), refusing.close()]);
    pki.cleanup();
  });

  const authorityUrl = () => `https://id.eta.test:${server.port}/connect/token`;

  test('checkProxy passes when the proxy opens the tunnel', async () => {
    const before = proxy.tunnels;
    assert.equal(passed(await checkProxy(proxy.url, authorityUrl())), `proxy ${proxy.url} opened a tunnel to id.eta.test:${server.port}`);
    assert.equal(proxy.tunnels, before + 1);
  });

  test('checkProxy fails when the proxy refuses CONNECT', async () => {
    const f = failed(await checkProxy(refusing.url, authorityUrl()));
    assert.equal(f.problem, `proxy ${refusing.url} refused CONNECT to id.eta.test:${server.port} (HTTP 403)`);
    assert.match(f.fix, /ask the network admin to allow HTTPS \(CONNECT\)/);
  });

  test('checkProxy: login needed, wrong login (never shown), right login', async () => {
    assert.match(failed(await checkProxy(authProxy.url, authorityUrl())).fix, /put the proxy user and password in proxy\.url/);
    const wrong = failed(await checkProxy(`http://posbox:${SECRET}x@127.0.0.1:${authProxy.port}`, authorityUrl()));
    assert.equal(wrong.problem, `proxy http://127.0.0.1:${authProxy.port} rejected the user and password in the proxy URL (407)`);
    assert.ok(!JSON.stringify(wrong).includes(SECRET) && !JSON.stringify(wrong).includes('posbox'));
    passed(await checkProxy(authProxy.urlWithAuth, authorityUrl()));
  });

  test('checkProxy: a proxy that is not listening', async () => {
    const port = await closedPort();
    const f = failed(await checkProxy(`http://posbox:${SECRET}@127.0.0.1:${port}`, authorityUrl()));
    assert.equal(f.problem, `proxy http://127.0.0.1:${port} unreachable: 127.0.0.1:${port} refused the connection (ECONNREFUSED)`);
    assert.ok(!JSON.stringify(f).includes(SECRET));
  });

  test('checkProxy is bounded: a proxy that never answers CONNECT', async () => {
    const silent = createServer(() => {});
    const sockets = track(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const f = failed(await checkProxy(`http://127.0.0.1:${port}`, authorityUrl(), { timeoutMs: 300 }));
      assert.equal(f.problem, `proxy http://127.0.0.1:${port} did not open a tunnel to id.eta.test:${server.port} within 0.3 s`);
    } finally {
      await closeServer(silent, sockets);
    }
  });

  test('checkTls through the proxy tunnel', async () => {
    assert.match(passed(await checkTls(authorityUrl(), { caFile: pki.caFile }, { proxy: proxy.url })), new RegExp(`through proxy ${proxy.url.replace(/\./g, '\\.')}`));
    assert.match(failed(await checkTls(authorityUrl(), { caFile: pki.caFile }, { proxy: refusing.url })).problem, /refused CONNECT/);
  });

  test('checkNetwork direct: every check passes', async () => {
    const checks = await checkNetwork({ url: `https://localhost:${server.port}/connect/token`, tls: { caFile: pki.caFile }, env: {} });
    assert.deepEqual(checks.map((c) => [c.name, c.result.ok, 'skipped' in c.result]), [
      ['dns', true, false],
      ['tcp', true, false],
      ['tls', true, false],
      ['clock', true, false],
    ]);
  });

  test('checkNetwork behind a proxy: direct DNS/TCP skipped and said why; proxy, TLS and clock through it', async () => {
    const checks = await checkNetwork({ url: authorityUrl(), tls: { caFile: pki.caFile }, env: { HTTPS_PROXY: authProxy.urlWithAuth } });
    assert.deepEqual(checks.map((c) => [c.name, c.result.ok]), [
      ['dns', true],
      ['tcp', true],
      ['dns', true],
      ['proxy', true],
      ['tls', true],
      ['clock', true],
    ]);
    const dns = checks[0]!.result;
    assert.ok(dns.ok && dns.skipped);
    assert.equal(
      dns.detail,
      `DNS not checked from this box: requests go through proxy http://127.0.0.1:${authProxy.port} (HTTPS_PROXY), which resolves id.eta.test itself`,
    );
    assert.ok(!JSON.stringify(checks).includes(SECRET));
  });

  test('checkNetwork stops at the first failure and skips the rest', async () => {
    const checks = await checkNetwork({ url: 'https://id.eta.invalid/connect/token', env: {} });
    assert.deepEqual(checks.map((c) => [c.name, c.result.ok]), [
      ['dns', false],
      ['tcp', true],
      ['tls', true],
      ['clock', true],
    ]);
    assert.deepEqual(checks[1]!.result, { ok: true, skipped: true, detail: 'not run: the dns check failed' });
  });
});
