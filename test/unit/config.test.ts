import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import {
  closestKey,
  ConfigError,
  DEFAULTS,
  describeJsonError,
  editDistance,
  knownKeysAt,
  suggestKey,
  type AgentConfig,
} from '../../src/config/index.js';
import { loadConfig, parseConfig } from '../../src/authorities/index.js';

const SOURCE = '/etc/pos-token-agent/test-config.json';

type Json = Record<string, unknown>;

function account(extra: Json = {}): Json {
  return { authority: 'eta-ereceipt', identityUrl: 'https://id.eta.gov.eg', ...extra };
}

function config(extra: Json = {}, accountExtra: Json = {}): Json {
  return { accounts: { main: account(accountExtra) }, ...extra };
}

/** Parses and expects a ConfigError; returns its problems. */
function problemsOf(json: unknown, env = {}): string[] {
  try {
    parseConfig(json, SOURCE, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_CONFIG');
    assert.equal(err.name, 'ConfigError');
    assert.equal(err.source, SOURCE);
    assert.ok(err.message.includes(SOURCE), `message names the file: ${err.message}`);
    for (const p of err.problems) assert.ok(err.message.includes(p), `message lists problem ${p}`);
    return err.problems;
  }
  assert.fail('expected parseConfig to throw ConfigError');
}

function ok(json: unknown, env = {}): AgentConfig {
  return parseConfig(json, SOURCE, env);
}

describe('parseConfig: valid configs and defaults', () => {
  test('a minimal config gets every default filled in', () => {
    const c = ok(config());
    assert.equal(c.source, SOURCE);
    assert.equal(c.socket, '/run/pos-token-agent/agent.sock');
    assert.equal(c.stateDir, '/var/lib/pos-token-agent');
    assert.equal(c.logLevel, 'info');
    assert.deepEqual(c.server, { maxConnections: 1024, headersTimeoutMs: 5_000, idleTimeoutMs: 30_000 });
    assert.deepEqual(Object.keys(c.accounts), ['main']);
    assert.deepEqual(c.accounts.main, {
      name: 'main',
      authority: 'eta-ereceipt',
      identityUrl: 'https://id.eta.gov.eg',
      identity: {},
      headers: {},
      tls: { legacyServerConnect: false },
      timeouts: { connectMs: 5_000, responseMs: 15_000, totalMs: 30_000 },
      backoff: { initialMs: 1_000, maxMs: 300_000, rejectedRetryMs: 300_000 },
      forcedRefreshMinIntervalMs: 10_000,
    });
    assert.equal(c.identityRoot, '/');
    assert.deepEqual(c.proxy, {});
    assert.equal(c.deviceProfileDirs.length, 2);
    assert.equal(c.deviceProfileDirs[1], '/etc/pos-token-agent/device-profiles');
  });

  test('socket comes from the first RUNTIME_DIRECTORY entry, stateDir from the first STATE_DIRECTORY entry', () => {
    const c = ok(config(), { RUNTIME_DIRECTORY: '/run/pta:/run/other', STATE_DIRECTORY: '/var/lib/pta:/var/lib/other' });
    assert.equal(c.socket, '/run/pta/agent.sock');
    assert.equal(c.stateDir, '/var/lib/pta');
  });

  test('explicit socket and stateDir win over the environment', () => {
    const c = ok(config({ socket: '/tmp/x/a.sock', stateDir: '/srv/state' }), {
      RUNTIME_DIRECTORY: '/run/pta',
      STATE_DIRECTORY: '/var/lib/pta',
    });
    assert.equal(c.socket, '/tmp/x/a.sock');
    assert.equal(c.stateDir, '/srv/state');
  });

  test('partial timeouts and server limits are merged with the defaults', () => {
    const c = ok(config({ server: { maxConnections: 8 } }, { timeouts: { responseMs: 300 } }));
    assert.deepEqual(c.accounts.main!.timeouts, { connectMs: 5_000, responseMs: 300, totalMs: 30_000 });
    assert.deepEqual(c.server, { ...DEFAULTS.server, maxConnections: 8 });
  });

  test('backoff is given in seconds and stored in milliseconds; maxS below initialS is raised', () => {
    const c = ok(config({}, { backoff: { initialS: 2.5, rejectedRetryS: 60 }, forcedRefreshMinIntervalS: 0 }));
    assert.deepEqual(c.accounts.main!.backoff, { initialMs: 2_500, maxMs: 300_000, rejectedRetryMs: 60_000 });
    assert.equal(c.accounts.main!.forcedRefreshMinIntervalMs, 0);
    const d = ok(config({}, { backoff: { initialS: 30, maxS: 5 } }));
    assert.deepEqual(d.accounts.main!.backoff, { initialMs: 30_000, maxMs: 30_000, rejectedRetryMs: 300_000 });
  });

  test('trailing slashes of identityUrl are removed; path is kept', () => {
    assert.equal(ok(config({}, { identityUrl: 'https://id.example.com/base///' })).accounts.main!.identityUrl, 'https://id.example.com/base');
  });

  test('identity values at exactly the length limits are accepted and copied', () => {
    const identity = { posserial: 's'.repeat(100), pososversion: 'o'.repeat(50), posmodelframework: 'm'.repeat(10) };
    const c = ok(config({}, { identity }));
    assert.deepEqual(c.accounts.main!.identity, identity);
  });

  test('valid account names of letters, digits, dot, underscore and dash up to 64 characters', () => {
    const names = ['a', 'Shop_1.till-2', '9', 'x'.repeat(64)];
    const accounts: Json = {};
    for (const n of names) accounts[n] = account();
    assert.deepEqual(Object.keys(ok({ accounts }).accounts).sort(), [...names].sort());
  });
});

describe('parseConfig: identityUrl schemes', () => {
  for (const url of ['http://127.0.0.1:8080', 'http://localhost:9', 'http://[::1]:4000', 'http://127.1.2.3']) {
    test(`plain http is allowed for loopback ${url}`, () => {
      assert.equal(ok(config({}, { identityUrl: url })).accounts.main!.identityUrl, url);
    });
  }

  for (const url of ['http://id.eta.gov.eg', 'http://10.0.0.1', 'http://127.0.0.1.evil.example', 'http://0.0.0.0']) {
    test(`plain http is refused for non-loopback ${url}`, () => {
      assert.deepEqual(problemsOf(config({}, { identityUrl: url })), [
        `accounts.main.identityUrl: expected https:// (plain http:// is allowed only for loopback hosts), got ${JSON.stringify(url)}`,
      ]);
    });
  }

  test('other schemes are refused with "expected an https:// URL"', () => {
    assert.deepEqual(problemsOf(config({}, { identityUrl: 'ftp://id.example.com' })), [
      'accounts.main.identityUrl: expected an https:// URL, got "ftp://id.example.com"',
    ]);
  });

  test('a relative URL, credentials in the URL, and a query are refused', () => {
    assert.deepEqual(problemsOf(config({}, { identityUrl: 'id.example.com/connect' })), [
      'accounts.main.identityUrl: expected an absolute URL, got "id.example.com/connect"',
    ]);
    assert.deepEqual(problemsOf(config({}, { identityUrl: 'https://u:p@id.example.com' })), [
      'accounts.main.identityUrl: expected a URL without user or password in it',
    ]);
    assert.deepEqual(problemsOf(config({}, { identityUrl: 'https://id.example.com/?a=1' })), [
      'accounts.main.identityUrl: expected a base URL without query or fragment',
    ]);
  });
});

describe('parseConfig: errors name the key path and what was expected', () => {
  test('unknown key at top level', () => {
    assert.deepEqual(problemsOf(config({ sockett: '/x' })), ['(top level): unknown key "sockett" (did you mean "socket"?)']);
  });

  test('unknown keys inside an account and inside its sub-objects', () => {
    assert.deepEqual(problemsOf(config({}, { identityURL: 'x', scopes: 'y' })), [
      // identityUrl is there already, so it is not suggested for identityURL; eta-ereceipt takes no scope.
      'accounts.main: unknown keys "identityURL", "scopes"',
    ]);
    assert.deepEqual(problemsOf(config({}, { identity: { serial: '1' } })), [
      'accounts.main.identity: unknown key "serial"',
    ]);
    assert.deepEqual(problemsOf(config({}, { timeouts: { readMs: 1 } })), ['accounts.main.timeouts: unknown key "readMs"']);
  });

  test('a required key that is missing is reported as missing', () => {
    assert.deepEqual(problemsOf({ accounts: { main: { authority: 'eta-ereceipt' } } }), [
      'accounts.main.identityUrl: expected a URL (required for authority eta-ereceipt)',
    ]);
    assert.deepEqual(problemsOf({}), ['accounts: expected record (missing)']);
  });

  test('a wrong type names the path and the expected type', () => {
    const problems = problemsOf(config({}, { timeouts: { connectMs: 'x' } }));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^accounts\.main\.timeouts\.connectMs: expected number\b/);
  });

  test(
    'a wrong type says what was found instead, not "(missing)"',
    () => {
      assert.deepEqual(problemsOf(config({}, { timeouts: { connectMs: 'x' } })), [
        'accounts.main.timeouts.connectMs: expected number, got string "x"',
      ]);
      assert.deepEqual(problemsOf(config({ socket: 5 })), ['socket: expected string, got number 5']);
      assert.deepEqual(problemsOf([]), ['(top level): expected object, got an array']);
      assert.deepEqual(problemsOf(null), ['(top level): expected object, got null']);
    },
  );

  test('several problems are all reported at once', () => {
    const problems = problemsOf({ socket: 5, logLevel: 'loud', accounts: { main: account({ identityUrl: 7 }) } });
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('socket: expected string')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('logLevel: ')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('accounts.main.identityUrl: expected string')), problems.join('\n'));
  });

  test('relative socket and stateDir are refused', () => {
    assert.deepEqual(problemsOf(config({ socket: 'agent.sock', stateDir: './state' })), [
      'socket: expected an absolute path',
      'stateDir: expected an absolute path',
    ]);
  });

  test('out-of-range numbers are refused with the path', () => {
    const problems = problemsOf(config({}, { timeouts: { connectMs: 0 }, backoff: { rejectedRetryS: 5 } }));
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems[0]!, /^accounts\.main\.timeouts\.connectMs: /);
    assert.match(problems[1]!, /^accounts\.main\.backoff\.rejectedRetryS: /);
  });

  test('no accounts yet is a valid config (a fresh install, before provisioning)', () => {
    assert.deepEqual(ok({ accounts: {} }).accounts, {});
  });

  test('an option the authority does not use is refused by name', () => {
    assert.deepEqual(problemsOf(config({}, { scope: 'InvoicingAPI', onbehalfof: '123' })), [
      'accounts.main.scope: not used by authority eta-ereceipt; remove it',
      'accounts.main.onbehalfof: not used by authority eta-ereceipt; remove it',
    ]);
    assert.deepEqual(problemsOf(config({}, { authority: 'myinvois', clientAuth: 'client_secret_basic' })), [
      'accounts.main.clientAuth: not used by authority myinvois; remove it',
    ]);
  });

  test('oauth2 resource (RFC 8707): one absolute URI or several, without a fragment', () => {
    const oauth2 = (extra: Json): Json => ({ accounts: { main: { authority: 'oauth2', tokenUrl: 'https://auth.example.com/token', ...extra } } });
    assert.equal(ok(oauth2({ resource: 'https://api.example.com/v1' })).accounts.main!.resource, 'https://api.example.com/v1');
    assert.deepEqual(ok(oauth2({ resource: ['https://a.example/', 'urn:example:b'] })).accounts.main!.resource, ['https://a.example/', 'urn:example:b']);
    assert.deepEqual(problemsOf(oauth2({ resource: '/relative/path' })), [
      'accounts.main.resource: expected an absolute URI (RFC 8707), e.g. https://api.example.com/',
    ]);
    assert.deepEqual(problemsOf(oauth2({ resource: 'https://api.example.com/#part' })), [
      'accounts.main.resource: expected a URI without a fragment (#...), as RFC 8707 requires',
    ]);
    assert.deepEqual(problemsOf(oauth2({ resource: ['https://ok.example/', 'https://bad example/'] })), [
      'accounts.main.resource.1: expected an absolute URI (RFC 8707), e.g. https://api.example.com/',
    ]);
    assert.equal(problemsOf(oauth2({ resource: [] })).length, 1);
    assert.deepEqual(problemsOf(config({}, { authority: 'eta-einvoicing', resource: 'https://api.example.com/' })), [
      'accounts.main.resource: not used by authority eta-einvoicing; remove it',
    ]);
  });

  test('basicAuthEncoding: auto, rfc6749 or plain, only where the authority uses Basic', () => {
    for (const value of ['auto', 'rfc6749', 'plain']) {
      assert.equal(ok(config({}, { authority: 'eta-einvoicing', basicAuthEncoding: value })).accounts.main!.basicAuthEncoding, value);
      assert.equal(ok(config({}, { authority: 'sepay', basicAuthEncoding: value })).accounts.main!.basicAuthEncoding, value);
    }
    assert.match(problemsOf(config({}, { authority: 'eta-einvoicing', basicAuthEncoding: 'utf8' }))[0]!, /^accounts\.main\.basicAuthEncoding: .*"auto".*"rfc6749".*"plain"/);
    for (const authority of ['eta-ereceipt', 'myinvois', 'impact-gr']) {
      assert.deepEqual(problemsOf(config({}, { authority, basicAuthEncoding: 'plain' })), [
        `accounts.main.basicAuthEncoding: not used by authority ${authority}; remove it`,
      ]);
    }
  });

  test('oauth2 needs tokenUrl, not identityUrl', () => {
    assert.deepEqual(problemsOf({ accounts: { main: { authority: 'oauth2' } } }), [
      'accounts.main.tokenUrl: expected a URL (required for authority oauth2)',
    ]);
    assert.deepEqual(problemsOf(config({}, { authority: 'oauth2' })), [
      'accounts.main.identityUrl: not used by authority oauth2; remove it',
      'accounts.main.tokenUrl: expected a URL (required for authority oauth2)',
    ]);
    const c = ok({ accounts: { main: { authority: 'oauth2', tokenUrl: 'https://auth.example/oauth/token?tenant=1', audience: 'api' } } });
    assert.equal(c.accounts.main!.tokenUrl, 'https://auth.example/oauth/token?tenant=1');
    assert.equal(c.accounts.main!.audience, 'api');
    assert.deepEqual(problemsOf({ accounts: { main: { authority: 'oauth2', tokenUrl: 'http://auth.example/token' } } }), [
      'accounts.main.tokenUrl: expected https:// (plain http:// is allowed only for loopback hosts), got "http://auth.example/token"',
    ]);
  });

  test('every authority in the interface is accepted with its options', () => {
    const c = ok({
      accounts: {
        r: account({ deviceProfile: 'generic-x86', tls: { legacyServerConnect: true } }),
        i: { authority: 'eta-einvoicing', identityUrl: 'https://id.eta.gov.eg', scope: 'InvoicingAPI', onbehalfof: '100200300', clientAuth: 'client_secret_post' },
        m: { authority: 'myinvois', identityUrl: 'https://preprod-api.myinvois.hasil.gov.my', onbehalfof: 'C1234567890:201901234567', loginsPerMinute: 6 },
        g: { authority: 'impact-gr', identityUrl: 'https://einvoiceapiuat.impact.gr' },
        v: { authority: 'sepay', identityUrl: 'https://einvoice-api-sandbox.sepay.vn', headers: { 'X-Shop': '12' } },
      },
      tls: { caFile: '/etc/ssl/proxy-ca.pem' },
      proxy: { url: 'http://proxy.lan:3128', noProxy: ['.lan'] },
    });
    assert.equal(c.accounts.r!.tls.legacyServerConnect, true);
    assert.equal(c.accounts.r!.tls.caFile, '/etc/ssl/proxy-ca.pem', 'the global CA file applies to every account');
    assert.equal(c.accounts.r!.deviceProfile, 'generic-x86');
    assert.equal(c.accounts.i!.clientAuth, 'client_secret_post');
    assert.equal(c.accounts.m!.loginsPerMinute, 6);
    assert.deepEqual(c.accounts.v!.headers, { 'X-Shop': '12' });
    assert.deepEqual(c.proxy, { url: 'http://proxy.lan:3128', noProxy: ['.lan'] });
  });

  test('headers cannot set what the agent sets itself or carry secrets', () => {
    const problems = problemsOf(config({}, { headers: { presharedkey: 'x', Authorization: 'y', 'bad name': 'z' } }));
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.every((p) => p.startsWith('accounts.main.headers.')), problems.join('\n'));
  });

  test('a proxy that is not an http(s) URL is refused', () => {
    assert.deepEqual(problemsOf(config({ proxy: { url: 'socks5://p:1080' } })), ['proxy.url: expected an http:// or https:// proxy URL']);
    assert.deepEqual(ok(config({ proxy: { url: null } })).proxy, { url: null });
  });

  test('an unknown authority lists the supported ones', () => {
    assert.deepEqual(problemsOf(config({}, { authority: 'eta' })), [
      'accounts.main.authority: expected one of eta-ereceipt, eta-einvoicing, myinvois, impact-gr, sepay, oauth2, got "eta"',
    ]);
  });

  for (const name of ['-lead', '.hidden', 'has space', 'x'.repeat(65), 'ünï', 'a/b', '']) {
    test(`invalid account name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…(${name.length})` : name)}`, () => {
      assert.deepEqual(problemsOf({ accounts: { [name]: account() } }), [
        `accounts.${name}: expected an account name of letters, digits, ".", "_" or "-" (at most 64)`,
      ]);
    });
  }

  for (const [field, max] of [
    ['posserial', 100],
    ['pososversion', 50],
    ['posmodelframework', 10],
  ] as const) {
    test(`identity.${field} longer than ${max} characters is refused`, () => {
      assert.deepEqual(problemsOf(config({}, { identity: { [field]: 'x'.repeat(max + 1) } })), [
        `accounts.main.identity.${field}: expected at most ${max} characters`,
      ]);
    });
  }

  test('identity values with control characters are refused (they are sent as headers)', () => {
    assert.deepEqual(problemsOf(config({}, { identity: { posserial: 'A\r\nX-Evil: 1' } })), [
      'accounts.main.identity.posserial: expected printable ASCII (it is sent as an HTTP header)',
    ]);
  });
});

describe('loadConfig', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-config-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('reads and parses a file, using the given env for defaults', () => {
    const path = join(dir, 'good.json');
    writeFileSync(path, JSON.stringify(config()));
    const c = loadConfig(path, { RUNTIME_DIRECTORY: '/run/r', STATE_DIRECTORY: '/var/lib/s' });
    assert.equal(c.source, path);
    assert.equal(c.socket, '/run/r/agent.sock');
    assert.equal(c.stateDir, '/var/lib/s');
    assert.equal(c.accounts.main!.identityUrl, 'https://id.eta.gov.eg');
  });

  test('a missing file is a ConfigError naming the file', () => {
    const path = join(dir, 'does-not-exist.json');
    assert.throws(
      () => loadConfig(path, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.source, path);
        assert.deepEqual(err.problems, ['cannot read the file: file not found']);
        assert.equal(err.message, `invalid config ${path}:\n  - cannot read the file: file not found`);
        return true;
      },
    );
  });

  test('a directory instead of a file is a ConfigError', () => {
    assert.throws(
      () => loadConfig(dir, {}),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 1 &&
        err.problems[0] === `cannot read the file: ${dir} is a directory; give the config file itself, such as /etc/pos-token-agent/config.json`,
    );
  });

  test('a directory holding config.json: the message names that file', () => {
    const inside = join(dir, 'etc');
    mkdirSync(inside);
    writeFileSync(join(inside, 'config.json'), '{}');
    assert.throws(
      () => loadConfig(inside, {}),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems[0] === `cannot read the file: ${inside} is a directory; give the config file itself, such as ${join(inside, 'config.json')}`,
    );
  });

  test('invalid JSON is a ConfigError saying so', () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, '{"accounts": {,}');
    assert.throws(
      () => loadConfig(path, {}),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.source, path);
        assert.equal(err.problems.length, 1);
        assert.equal(err.problems[0], "not valid JSON at line 1, column 15: Expected property name or '}'");
        assert.ok(err.message.startsWith(`invalid config ${path}:`));
        return true;
      },
    );
  });

  test('schema problems from a file name that file', () => {
    const path = join(dir, 'unknown-key.json');
    writeFileSync(path, JSON.stringify(config({ extra: true })));
    assert.throws(
      () => loadConfig(path, {}),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.source === path &&
        err.problems.length === 1 &&
        err.problems[0] === '(top level): unknown key "extra"' &&
        err.message.includes(path),
    );
  });
});

describe('unknown keys: "did you mean"', () => {
  const bare = { authority: 'eta-ereceipt' };
  const url = { identityUrl: 'https://id.eta.gov.eg' };
  const cases: Array<[string, unknown, string]> = [
    ['identityURL (case)', { accounts: { default: { ...bare, identityURL: 'https://id.eta.gov.eg' } } }, 'accounts.default: unknown key "identityURL" (did you mean "identityUrl"?)'],
    ['deviceProfil (a letter missing)', { accounts: { default: { ...bare, ...url, deviceProfil: 'x' } } }, 'accounts.default: unknown key "deviceProfil" (did you mean "deviceProfile"?)'],
    ['acounts (top level)', { acounts: {} }, '(top level): unknown key "acounts" (did you mean "accounts"?)'],
    ['logLevle (two letters swapped)', { logLevle: 'info', accounts: {} }, '(top level): unknown key "logLevle" (did you mean "logLevel"?)'],
    ['timeouts.conectMs (nested)', { accounts: { a: { ...bare, ...url, timeouts: { conectMs: 1 } } } }, 'accounts.a.timeouts: unknown key "conectMs" (did you mean "connectMs"?)'],
    ['identity.posSerial', { accounts: { a: { ...bare, ...url, identity: { posSerial: '1' } } } }, 'accounts.a.identity: unknown key "posSerial" (did you mean "posserial"?)'],
    ['scopes on an authority that takes scope', { accounts: { a: { authority: 'eta-einvoicing', ...url, scopes: 'InvoicingAPI' } } }, 'accounts.a: unknown key "scopes" (did you mean "scope"?)'],
    ['proxy.noproxy', { proxy: { noproxy: [] }, accounts: {} }, 'proxy: unknown key "noproxy" (did you mean "noProxy"?)'],
    ['server.maxConnection', { server: { maxConnection: 1 }, accounts: {} }, 'server: unknown key "maxConnection" (did you mean "maxConnections"?)'],
  ];
  for (const [what, json, expected] of cases) {
    test(what, () => assert.ok(problemsOf(json).includes(expected), `${problemsOf(json).join('\n')}\nlacks: ${expected}`));
  }

  test('no suggestion when nothing is close, or for a key that is there already', () => {
    assert.deepEqual(problemsOf(config({ extra: true })), ['(top level): unknown key "extra"']);
    assert.deepEqual(problemsOf(config({}, { scope: 'x', scopes: 'y' })).filter((p) => p.includes('unknown')), [
      'accounts.main: unknown key "scopes"',
    ]);
    assert.deepEqual(problemsOf(config({}, { timeouts: { readMs: 1 } })), ['accounts.main.timeouts: unknown key "readMs"']);
    assert.deepEqual(problemsOf(config({ xy: 1, tl: {} })), ['(top level): unknown keys "xy", "tl" (did you mean "tls"?)']);
  });

  test('edit distance: insertions, deletions, substitutions and swapped neighbours cost 1 each', () => {
    const table: Array<[string, string, number]> = [
      ['', '', 0], ['abc', 'abc', 0], ['', 'abc', 3], ['logLevle', 'logLevel', 1], ['acounts', 'accounts', 1],
      ['deviceProfil', 'deviceProfile', 1], ['conectMs', 'connectMs', 1], ['ca', 'abc', 3], ['kitten', 'sitting', 3],
    ];
    for (const [a, b, d] of table) assert.equal(editDistance(a, b), d, `${a} -> ${b}`);
  });

  test('closest key: case first, then at most 2 edits and at most half the key, ties to the first known', () => {
    assert.equal(closestKey('SOCKET', ['socket', 'sockets']), 'socket');
    assert.equal(closestKey('sokcet', ['socket']), 'socket');
    assert.equal(closestKey('sxcxxt', ['socket']), undefined, '3 edits');
    assert.equal(closestKey('sxcxet', ['socket']), 'socket', '2 edits');
    assert.equal(closestKey('ab', ['tls']), undefined);
    assert.equal(closestKey('tl', ['tls']), 'tls');
    assert.equal(closestKey('xy', ['tls']), undefined, 'two edits are more than half of a two-letter key');
    assert.equal(closestKey('scop', ['scope', 'scap']), 'scope', 'the first of equally close keys');
    assert.equal(closestKey('scopes', ['scope'], ['scope']), undefined, 'present already');
  });

  test('known keys are walked from the schema by path: records, arrays, optionals, unions', () => {
    const schema = z.strictObject({
      list: z.array(z.strictObject({ alpha: z.number() })).optional(),
      map: z.record(z.string(), z.strictObject({ beta: z.number(), gamma: z.strictObject({ delta: z.number() }).optional() })),
      either: z.union([z.strictObject({ one: z.number() }), z.strictObject({ two: z.number() })]),
      kind: z.discriminatedUnion('type', [
        z.strictObject({ type: z.literal('a'), onlyA: z.number() }),
        z.strictObject({ type: z.literal('b'), onlyB: z.number() }),
      ]),
    });
    assert.deepEqual(knownKeysAt(schema, []), ['list', 'map', 'either', 'kind']);
    assert.deepEqual(knownKeysAt(schema, ['list', 0]), ['alpha']);
    assert.deepEqual(knownKeysAt(schema, ['map', 'x']), ['beta', 'gamma']);
    assert.deepEqual(knownKeysAt(schema, ['map', 'x', 'gamma']), ['delta']);
    assert.deepEqual(knownKeysAt(schema, ['either']), ['one', 'two']);
    assert.deepEqual(knownKeysAt(schema, ['kind'], { type: 'b' }), ['type', 'onlyB'], 'the branch the discriminator names');
    assert.deepEqual(knownKeysAt(schema, ['kind']), ['type', 'onlyA', 'onlyB']);
    assert.deepEqual(knownKeysAt(schema, ['nowhere', 'x']), []);
    assert.equal(suggestKey(schema, ['kind'], 'onlyb', { type: 'b', onlyb: 1 }), 'onlyB');
    assert.equal(suggestKey(schema, ['kind'], 'onlya', { type: 'a', onlya: 1 }), 'onlyA');
    assert.equal(suggestKey(schema, ['kind'], 'onlya', { type: 'b', onlya: 1 }), 'onlyB', 'onlyA is not a key of branch b');
    // The same walk over a schema built by merging per-authority options, as a registry would.
    const merged = z.strictObject({ accounts: z.record(z.string(), z.strictObject({ authority: z.string() }).extend({ apiUrl: z.string().optional() })) });
    assert.equal(suggestKey(merged, ['accounts', 'x'], 'apiURL', { authority: 'a', apiURL: 'u' }), 'apiUrl');
  });
});

describe('invalid JSON: line and column from the parser\'s position', () => {
  const parse = (text: string): string => {
    try {
      JSON.parse(text);
    } catch (err) {
      return describeJsonError(text, err);
    }
    throw new Error('expected invalid JSON');
  };

  test('the position becomes line and column (counted from 1), the same on every Node', () => {
    const text = '{\n  "socket": "/x",\n  "accounts": {\n    "default": {,}\n  }\n}';
    assert.equal(parse(text), "not valid JSON at line 4, column 17: Expected property name or '}'");
    assert.equal(parse('{\r\n"a": 1\r\n"b": 2}'), "not valid JSON at line 3, column 1: Expected ',' or '}' after property value");
  });

  test('the position is read from Node 20\'s and Node 22/24\'s messages alike, not taken from the latter', () => {
    const text = '{\n  "a": 1,\n  "b" 2\n}';
    const node20 = new SyntaxError("Expected ':' after property name in JSON at position 18");
    const node22 = new SyntaxError("Expected ':' after property name in JSON at position 18 (line 99 column 99)");
    assert.equal(describeJsonError(text, node20), "not valid JSON at line 3, column 7: Expected ':' after property name");
    assert.equal(describeJsonError(text, node22), describeJsonError(text, node20));
  });

  test('without a position the message says so; an empty file and a cut-off file are named as such', () => {
    assert.equal(parse('{"a": abc}'), "not valid JSON (the parser gives no position): Unexpected token 'a'");
    assert.equal(parse('{"a": [1,\n 2,]}'), "not valid JSON (the parser gives no position): Unexpected token ']'");
    // V8's quote of the text around the problem is left out: it could hold part of a proxy password.
    const proxy = parse('{"proxy": {"url": "http://u:s3cret-pass@proxy:3128"x}}');
    assert.ok(!proxy.includes('s3cret'), proxy);
    assert.equal(parse('\ufeff{"accounts": {}}'), 'not valid JSON at line 1, column 1: the file starts with a byte order mark (save it as UTF-8 without one)');
    assert.equal(parse(' \n'), 'not valid JSON: the file is empty');
    assert.equal(
      describeJsonError('{"a": ', new SyntaxError('Unexpected end of JSON input')),
      'not valid JSON: the file ends before the JSON does (a bracket or quote is not closed)',
    );
  });
});
