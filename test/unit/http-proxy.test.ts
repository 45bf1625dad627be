import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import {
  createHttpClient,
  DEFAULT_MAX_RESPONSE_BYTES,
  matchesNoProxy,
  resolveProxy,
  TransportError,
  type HttpRequest,
  type ProxyRoute,
} from '../../src/authorities/http.js';
import { startConnectProxy, type ConnectProxy } from '../support/proxy.js';
import { closeServer, createTestPki, startHttpsServer, track, type TestHttpsServer, type TestPki } from '../support/tls.js';

async function transportError(p: Promise<unknown>): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TransportError, `expected TransportError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to fail');
}

function via(route: ProxyRoute): string {
  if (route.proxy === undefined) return `direct:${route.direct}`;
  if (route.proxy === 'invalid') return `invalid:${route.source}`;
  return `${route.proxy.href} (${route.source})`;
}

describe('resolveProxy', () => {
  const P = 'http://proxy.lan:3128/';
  const cases: Array<[string, string, Parameters<typeof resolveProxy>[1], NodeJS.ProcessEnv, string]> = [
    ['no proxy anywhere', 'https://id.eta.gov.eg/x', {}, {}, 'direct:none'],
    ['HTTPS_PROXY', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P }, `${P} (HTTPS_PROXY)`],
    ['https_proxy wins over HTTPS_PROXY', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: 'http://a:1', https_proxy: P }, `${P} (https_proxy)`],
    ['an empty https_proxy is not set', 'https://id.eta.gov.eg/x', {}, { https_proxy: '', HTTPS_PROXY: P }, `${P} (HTTPS_PROXY)`],
    ['HTTPS_PROXY does not apply to http://', 'http://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P }, 'direct:none'],
    ['HTTP_PROXY applies to http://', 'http://id.eta.gov.eg/x', {}, { HTTP_PROXY: P }, `${P} (HTTP_PROXY)`],
    ['HTTP_PROXY does not apply to https://', 'https://id.eta.gov.eg/x', {}, { HTTP_PROXY: P }, 'direct:none'],
    ['a proxy without scheme is http://', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: 'proxy.lan:3128' }, `${P} (HTTPS_PROXY)`],
    ['the config wins over the environment', 'https://id.eta.gov.eg/x', { url: 'http://cfg:8080' }, { HTTPS_PROXY: P }, 'http://cfg:8080/ (proxy.url in the config)'],
    ['null: no proxy even with HTTPS_PROXY', 'https://id.eta.gov.eg/x', { url: null }, { HTTPS_PROXY: P }, 'direct:disabled'],
    ['loopback is never proxied (config)', 'https://127.0.0.1:8443/x', { url: P }, {}, 'direct:loopback'],
    ['loopback is never proxied (127/8)', 'https://127.3.2.1/x', {}, { HTTPS_PROXY: P }, 'direct:loopback'],
    ['loopback is never proxied (localhost)', 'https://localhost/x', {}, { HTTPS_PROXY: P }, 'direct:loopback'],
    ['loopback is never proxied (::1)', 'https://[::1]:8443/x', {}, { HTTPS_PROXY: P }, 'direct:loopback'],
    ['NO_PROXY *', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: '*' }, 'direct:no_proxy'],
    ['NO_PROXY domain matches itself', 'https://eta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'eta.gov.eg' }, 'direct:no_proxy'],
    ['NO_PROXY domain matches subdomains', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'eta.gov.eg' }, 'direct:no_proxy'],
    ['NO_PROXY .domain', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'example.com, .gov.eg' }, 'direct:no_proxy'],
    ['NO_PROXY *.domain', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, no_proxy: '*.eta.gov.eg' }, 'direct:no_proxy'],
    ['NO_PROXY is not a substring match', 'https://noteta.gov.eg.evil/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'eta.gov.eg' }, `${P} (HTTPS_PROXY)`],
    ['NO_PROXY suffix needs a dot boundary', 'https://xeta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'eta.gov.eg' }, `${P} (HTTPS_PROXY)`],
    ['NO_PROXY host:port matches that port', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'id.eta.gov.eg:443' }, 'direct:no_proxy'],
    ['NO_PROXY host:port, another port', 'https://id.eta.gov.eg:8443/x', {}, { HTTPS_PROXY: P, NO_PROXY: 'id.eta.gov.eg:443' }, `${P} (HTTPS_PROXY)`],
    ['NO_PROXY IP', 'https://10.1.2.3/x', {}, { HTTPS_PROXY: P, NO_PROXY: '10.1.2.3' }, 'direct:no_proxy'],
    ['NO_PROXY CIDR', 'https://10.1.2.3/x', {}, { HTTPS_PROXY: P, NO_PROXY: '10.0.0.0/8' }, 'direct:no_proxy'],
    ['NO_PROXY CIDR, outside', 'https://11.1.2.3/x', {}, { HTTPS_PROXY: P, NO_PROXY: '10.0.0.0/8' }, `${P} (HTTPS_PROXY)`],
    ['NO_PROXY IPv6', 'https://[fd00::1]/x', {}, { HTTPS_PROXY: P, NO_PROXY: '[fd00::1]' }, 'direct:no_proxy'],
    ['no_proxy wins over NO_PROXY', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: P, no_proxy: 'other.com', NO_PROXY: '*' }, `${P} (HTTPS_PROXY)`],
    ['config noProxy with an env proxy', 'https://id.eta.gov.eg/x', { noProxy: ['.gov.eg'] }, { HTTPS_PROXY: P }, 'direct:no_proxy'],
    ['config noProxy with the config proxy', 'https://id.eta.gov.eg/x', { url: P, noProxy: ['eta.gov.eg'] }, {}, 'direct:no_proxy'],
    ['env NO_PROXY does not apply to the config proxy', 'https://id.eta.gov.eg/x', { url: P }, { NO_PROXY: '*' }, `${P} (proxy.url in the config)`],
    ['socks is refused, naming where it came from', 'https://id.eta.gov.eg/x', {}, { HTTPS_PROXY: 'socks5://p:1080' }, 'invalid:HTTPS_PROXY'],
  ];
  for (const [name, url, config, env, expected] of cases) {
    test(name, () => assert.equal(via(resolveProxy(url, config, env)), expected));
  }

  test('matchesNoProxy is case-insensitive and ignores a trailing dot', () => {
    assert.equal(matchesNoProxy('ID.ETA.GOV.EG.', 443, ['Eta.Gov.Eg']), true);
    assert.equal(matchesNoProxy('id.eta.gov.eg', 443, []), false);
  });
});

const SECRET = 's3cr3t-Pa55';

describe('HTTP client through a CONNECT proxy (loopback)', () => {
  let pki: TestPki;
  let server: TestHttpsServer;
  let plain: Server;
  let plainSockets: Set<Socket>;
  let plainPort: number;
  let proxy: ConnectProxy;
  let authProxy: ConnectProxy;
  let refusing: ConnectProxy;

  before(async () => {
    pki = createTestPki();
    server = await startHttpsServer(pki.server);
    plain = createServer((req, res) => {
      req.resume();
      res.end('plain');
    });
    plainSockets = track(plain);
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    plainPort = (plain.address() as AddressInfo).port;
    proxy = await startConnectProxy();
    authProxy = await startConnectProxy({ auth: { user: 'posbox', password: SECRET } });
    refusing = await startConnectProxy({ refuseStatus: 403 });
  });

  after(async () => {
    await Promise.all([server.close(), proxy.close(), authProxy.close(), refusing.close()]);
    await closeServer(plain, plainSockets);
    pki.cleanup();
  });

  /** A name that exists nowhere: only the proxy (which maps it to 127.0.0.1) can reach it. */
  const target = (path = '/connect/token') => `https://id.eta.test:${server.port}${path}`;
  const request = (url: string, extra: Partial<HttpRequest> = {}): HttpRequest => ({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'a=1',
    timeouts: { connectMs: 2_000, responseMs: 2_000, totalMs: 5_000 },
    maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
    tls: { caFile: pki.caFile },
    ...extra,
  });

  test('proxy.url from the config: the request goes through the proxy', async () => {
    const before = proxy.tunnels;
    const client = createHttpClient({ proxy: { url: proxy.url }, env: {} });
    const r = await client.request(request(target()));
    assert.equal(r.status, 200);
    assert.equal(proxy.tunnels, before + 1);
    assert.equal(proxy.targets.at(-1), `id.eta.test:${server.port}`);
    assert.ok((await client.agentFor({ url: target(), tls: { caFile: pki.caFile } })) instanceof HttpsProxyAgent);
    client.close();
  });

  test('HTTPS_PROXY from the environment, and https_proxy', async () => {
    for (const name of ['HTTPS_PROXY', 'https_proxy']) {
      const before = proxy.tunnels;
      const client = createHttpClient({ env: { [name]: proxy.url } });
      assert.equal((await client.request(request(target()))).status, 200);
      assert.equal(proxy.tunnels, before + 1, name);
      client.close();
    }
  });

  test('HTTP_PROXY for an http:// URL (tunnelled too); HTTPS_PROXY is not used for it', async () => {
    const before = proxy.tunnels;
    const url = `http://pos-gw.test:${plainPort}/x`;
    const client = createHttpClient({ env: { HTTP_PROXY: proxy.url } });
    const r = await client.request(request(url, { tls: undefined }));
    assert.equal(r.body.toString(), 'plain');
    assert.equal(proxy.tunnels, before + 1);
    assert.ok((await client.agentFor({ url })) instanceof HttpProxyAgent);
    client.close();
    const direct = createHttpClient({ env: { HTTPS_PROXY: proxy.url } });
    const err = await transportError(direct.request(request(url, { tls: undefined })));
    assert.equal(err.kind, 'network');
    assert.match(err.message, /^(ENOTFOUND|EAI_AGAIN) talking to http:\/\/pos-gw\.test/);
    assert.equal(proxy.tunnels, before + 1);
  });

  test('keep-alive: one cached agent, one tunnel for several requests', async () => {
    const before = proxy.tunnels;
    const client = createHttpClient({ proxy: { url: proxy.url }, env: {} });
    const agent = await client.agentFor(request(target()));
    assert.ok(agent instanceof HttpsProxyAgent);
    for (let i = 0; i < 3; i++) assert.equal((await client.request(request(target()))).status, 200);
    assert.equal(await client.agentFor(request(target())), agent);
    assert.equal(proxy.tunnels, before + 1);
    client.close();
  });

  test('NO_PROXY and config noProxy matches go direct (the made-up name then fails to resolve)', async () => {
    const cases: Array<[Parameters<typeof createHttpClient>[0], string]> = [
      [{ env: { HTTPS_PROXY: proxy.url, NO_PROXY: '.eta.test' } }, 'NO_PROXY .eta.test'],
      [{ env: { HTTPS_PROXY: proxy.url, no_proxy: `id.eta.test:${server.port}` } }, 'no_proxy host:port'],
      [{ env: { HTTPS_PROXY: proxy.url }, proxy: { noProxy: ['eta.test'] } }, 'config noProxy'],
      [{ env: { HTTPS_PROXY: proxy.url }, proxy: { url: null } }, 'proxy.url null'],
    ];
    for (const [options, name] of cases) {
      const before = proxy.tunnels;
      const err = await transportError(createHttpClient(options).request(request(target())));
      assert.equal(err.kind, 'network', name);
      assert.match(err.message, /^(ENOTFOUND|EAI_AGAIN) talking to https:\/\/id\.eta\.test:\d+\/connect\/token$/, name);
      assert.equal(proxy.tunnels, before, name);
    }
  });

  test('a loopback URL bypasses a configured proxy', async () => {
    const before = proxy.targets.length;
    const client = createHttpClient({ proxy: { url: proxy.url }, env: { HTTPS_PROXY: proxy.url } });
    assert.equal((await client.request(request(`https://localhost:${server.port}/x`))).status, 200);
    assert.equal((await client.request(request(`https://127.0.0.1:${server.port}/x`))).status, 200);
    assert.equal(proxy.targets.length, before);
    client.close();
  });

  test('proxy credentials are sent, and a wrong password never shows in the error', async () => {
    const ok = createHttpClient({ proxy: { url: authProxy.urlWithAuth }, env: {} });
    assert.equal((await ok.request(request(target()))).status, 200);
    assert.equal(authProxy.authFailures, 0);
    ok.close();

    const wrongUrl = `http://posbox:${encodeURIComponent(`${SECRET}-wrong`)}@127.0.0.1:${authProxy.port}`;
    const bad = createHttpClient({ env: { HTTPS_PROXY: wrongUrl } });
    const err = await transportError(bad.request(request(target())));
    assert.equal(authProxy.authFailures, 1);
    assert.equal(err.kind, 'proxy');
    assert.equal(
      err.message,
      `proxy http://127.0.0.1:${authProxy.port} asks for a login (407): check the user and password in the proxy URL, ` +
        `talking to https://id.eta.test:${server.port}/connect/token`,
    );
    assertNoSecret(err);
    bad.close();
  });

  test('an unreachable proxy with credentials: kind proxy, no credentials in the error', async () => {
    const closed = await startConnectProxy();
    await closed.close();
    const client = createHttpClient({ proxy: { url: `http://posbox:${SECRET}@127.0.0.1:${closed.port}` }, env: {} });
    const err = await transportError(client.request(request(target())));
    assert.equal(err.kind, 'proxy');
    assert.equal(err.message, `proxy http://127.0.0.1:${closed.port} unreachable (ECONNREFUSED), talking to https://id.eta.test:${server.port}/connect/token`);
    assertNoSecret(err);
  });

  test('a proxy refusing CONNECT: kind proxy with the status', async () => {
    const client = createHttpClient({ proxy: { url: refusing.url }, env: {} });
    const err = await transportError(client.request(request(target())));
    assert.equal(err.kind, 'proxy');
    assert.match(err.message, /refuses the tunnel \(403\)/);
    assert.equal(refusing.tunnels, 0);
  });

  test('through the proxy, an unknown CA is still tls/unknown_ca', async () => {
    const client = createHttpClient({ proxy: { url: proxy.url }, env: {} });
    const err = await transportError(client.request(request(target(), { tls: {} })));
    assert.equal(err.kind, 'tls');
    assert.equal(err.tlsReason, 'unknown_ca');
    assert.ok(err.message.includes(`through proxy ${proxy.url}`), err.message);
    client.close();
  });

  test('a proxy that never answers CONNECT is a timeout within totalMs', async () => {
    const silent = createNetServer(() => {});
    const sockets = track(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const started = performance.now();
      const client = createHttpClient({ proxy: { url: `http://127.0.0.1:${port}` }, env: {} });
      const err = await transportError(
        client.request(request(target(), { timeouts: { connectMs: 200, responseMs: 200, totalMs: 400 } })),
      );
      const took = performance.now() - started;
      assert.equal(err.kind, 'timeout');
      assert.ok(err.message.includes(`through proxy http://127.0.0.1:${port}`), err.message);
      assert.ok(took >= 150 && took < 2_000, `took ${took} ms`);
      client.close();
    } finally {
      await closeServer(silent, sockets);
    }
  });

  test('an unusable HTTPS_PROXY is a config error naming the variable, not its value', async () => {
    const err = await transportError(createHttpClient({ env: { HTTPS_PROXY: `socks5://u:${SECRET}@p:1080` } }).request(request(target())));
    assert.equal(err.kind, 'config');
    assert.equal(err.message, 'the proxy in HTTPS_PROXY is not usable: socks5:// proxies are not supported (only http:// and https://)');
  });
});

function assertNoSecret(err: TransportError): void {
  for (const text of [err.message, String(err), inspect(err, { depth: 20, showHidden: true }), JSON.stringify(err)]) {
    assert.ok(!text.includes(SECRET), `secret in: ${text}`);
    assert.ok(!text.includes(encodeURIComponent(SECRET)), `secret in: ${text}`);
    assert.ok(!text.includes('posbox'), `user in: ${text}`);
  }
}
