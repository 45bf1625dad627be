/**
 * The API proxy and the outbox through the real CLI agent, the real socket and SQLite, against the bundled
 * emulator's submission API: the token injected, a 401 recovered with one forced login, every escape refused, a
 * large answer intact; the outbox honouring 429, keeping a rejected entry while the next ones go, idempotent by
 * key, and answering a full outbox and a full disk with 507, losing nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, DEMO_CREDENTIALS, fixture, waitFor, type Answer, type Fixture } from '../support/harness.js';

const JSON_TYPE = { 'content-type': 'application/json' };

/** Writes a raw request on the socket and reads the status line of the answer. */
function raw(socket: string, text: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(socket, () => s.write(text));
    let t = '';
    s.on('data', (d) => (t += d.toString()));
    s.on('end', () => resolve(Number(t.split(' ')[1])));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('no answer')));
  });
}

function enqueue(f: Fixture, body: Record<string, unknown>): Promise<Answer> {
  return ask(f.socket, '/v1/outbox', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(body) });
}

const receipt = (uuid: string) => ({ receipts: [{ header: { uuid, receiptNumber: `R-${uuid}` } }] });

async function entry(f: Fixture, id: string): Promise<Record<string, unknown>> {
  return (await ask(f.socket, `/v1/outbox/${id}`)).json;
}

describe('the API proxy', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: f.emulator.url, api: { maxBodyBytes: 64 * 1024, responseMs: 1_000 } });
    assert.equal((await f.provision(DEMO_CREDENTIALS, [])).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('forwards under apiUrl with the token injected, the till\'s headers and query kept, hop-by-hop ones dropped', async () => {
    const token = (await ask(f.socket, '/v1/token')).json.access_token as string;
    const r = await ask(f.socket, '/v1/proxy/default/api/_echo/a/b?x=1&y=%20', {
      method: 'PUT',
      headers: { ...JSON_TYPE, 'x-request-id': 'r-1', connection: 'keep-alive, x-hop', 'x-hop': 'secret-hop', 'keep-alive': 'timeout=5' },
      body: '{"a":1}',
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-pos-agent-attempts'], '1');
    assert.equal(r.json.method, 'PUT');
    assert.equal(r.json.path, '/api/_echo/a/b');
    assert.equal(r.json.query, 'x=1&y=%20');
    assert.equal(r.json.body, '{"a":1}');
    const headers = r.json.headers as Record<string, string>;
    assert.equal(headers.authorization, `Bearer ${token.slice(0, 8)}…`);
    assert.equal(headers['x-request-id'], 'r-1');
    assert.equal(headers['x-hop'], undefined);
    assert.equal(headers['keep-alive'], undefined);
    assert.equal(headers['x-pos-agent'], undefined);
    assert.notEqual(headers.host, 'localhost');
  });

  it('an eReceipt submission comes back as the authority answered it', async () => {
    const r = await ask(f.socket, '/v1/proxy/default/api/v1/receiptsubmissions', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(receipt('p-1')) });
    assert.equal(r.status, 202, r.text);
    assert.equal((r.json.acceptedDocuments as unknown[]).length, 1);
    assert.ok(r.headers.correlationid, 'the authority\'s own headers come back');
  });

  it('a 401 from the API: one forced login, the request sent again once', async () => {
    const before = f.emulator.stats().issued;
    f.emulator.setApiFaults({ revoke401: 1 });
    const r = await ask(f.socket, '/v1/proxy/default/api/v1/receiptsubmissions', { method: 'POST', headers: JSON_TYPE, body: JSON.stringify(receipt('p-401')) });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.headers['x-pos-agent-attempts'], '2');
    assert.equal(f.emulator.stats().issued - before, 1, 'exactly one login');
    const again = await ask(f.socket, '/v1/proxy/default/api/_echo/x');
    assert.equal(again.headers['x-pos-agent-attempts'], '1', 'the new token serves the next request');
  });

  it('a large answer is passed back intact', async () => {
    const size = 12 * 1024 * 1024;
    const r = await new Promise<{ status: number; sha: string; expected: string; length: number }>((resolve, reject) => {
      const s = connect(f.socket, () => s.write(`GET /v1/proxy/default/api/_large?bytes=${size} HTTP/1.1\r\nHost: localhost\r\nX-Pos-Agent: 1\r\nConnection: close\r\n\r\n`));
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        const all = Buffer.concat(chunks);
        const split = all.indexOf('\r\n\r\n');
        const head = all.subarray(0, split).toString();
        let body: Buffer = Buffer.from(all.subarray(split + 4));
        if (/transfer-encoding: chunked/i.test(head)) body = dechunk(body);
        resolve({
          status: Number(head.split(' ')[1]),
          sha: createHash('sha256').update(body).digest('hex'),
          expected: /x-emulator-sha256: ([0-9a-f]+)/i.exec(head)?.[1] ?? '',
          length: body.length,
        });
      });
      s.on('error', reject);
    });
    assert.equal(r.status, 200);
    assert.equal(r.length, size);
    assert.equal(r.sha, r.expected);
  });

  it('refuses every way out of apiUrl, and what would send someone else\'s credentials (400)', async () => {
    const req = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: localhost\r\nX-Pos-Agent: 1\r\n${extra}Connection: close\r\n\r\n`;
    const cases: Array<[string, string]> = [
      ['dot segments', req('/v1/proxy/default/../../v1/token')],
      ['encoded dots', req('/v1/proxy/default/api/%2e%2e/%2e%2e/x')],
      ['encoded slash', req('/v1/proxy/default/api%2f..%2fx')],
      ['backslash', req('/v1/proxy/default/api\\..\\x')],
      ['scheme-relative', req('/v1/proxy/default//evil.example/x')],
      ['absolute-form target', req('http://evil.example/v1/proxy/default/x')],
      ['encoded CR LF', req('/v1/proxy/default/a%0d%0aHost:%20evil')],
      ['the till\'s Authorization', req('/v1/proxy/default/api/_echo/x', 'Authorization: Bearer stolen\r\n')],
      ['a Cookie', req('/v1/proxy/default/api/_echo/x', 'Cookie: a=b\r\n')],
    ];
    for (const [what, text] of cases) assert.equal(await raw(f.socket, text), 400, what);
    const evilHost = `GET /v1/proxy/default/api/_echo/x HTTP/1.1\r\nHost: api.evil.example\r\nX-Pos-Agent: 1\r\nConnection: close\r\n\r\n`;
    assert.equal(await raw(f.socket, evilHost), 400, 'a Host naming another server');
    const crlf = `GET /v1/proxy/default/api/_echo/x HTTP/1.1\r\nHost: localhost\r\nX-Pos-Agent: 1\r\nX-A: b\rInjected: c\r\nConnection: close\r\n\r\n`;
    assert.equal(await raw(f.socket, crlf), 400, 'a bare CR in a header');
    const seen = f.emulator.apiSubmissions().filter((s) => !s.path.startsWith('/api/'));
    assert.deepEqual(seen, [], 'nothing outside /api/ reached the emulator');
  });

  it("the API's 503 comes back without X-Pos-Agent-Error; the agent's own token 503 carries it", async () => {
    f.emulator.setApiFaults({ fail5xx: 1 });
    const api = await ask(f.socket, '/v1/proxy/default/api/_echo/x');
    f.emulator.clearApiFaults();
    assert.equal(api.status, 503, api.text);
    assert.equal(api.headers['x-pos-agent-error'], undefined, "the API's answer");
    assert.equal(api.headers['x-pos-agent-attempts'], '1');
    // A second account on the same API, never provisioned: the agent has no token for it.
    const config = JSON.parse(readFileSync(f.configPath, 'utf8')) as { accounts: Record<string, unknown> };
    config.accounts.unprovisioned = config.accounts.default;
    writeFileSync(f.configPath, JSON.stringify(config));
    await reload(f);
    const agent = await ask(f.socket, '/v1/proxy/unprovisioned/api/_echo/x');
    assert.equal(agent.status, 503, agent.text);
    assert.equal(agent.json.error, 'token_unavailable');
    assert.equal(agent.headers['x-pos-agent-error'], 'token_unavailable', "the agent's own answer");
  });

  it('413 past the account\'s body cap; 404, 409, 502 and 504 as the contract says; the 403 and 412 rules apply', async () => {
    const big = await ask(f.socket, '/v1/proxy/default/api/_echo/x', { method: 'POST', headers: JSON_TYPE, body: 'x'.repeat(70 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(big.headers['x-pos-agent-error'], 'payload_too_large');
    assert.equal(
      big.json.message,
      `the body is 71,680 bytes; accounts.default.api.maxBodyBytes allows 65,536 bytes: raise it in ${f.configPath} (then systemctl reload pos-token-agent)`,
    );
    assert.equal((await ask(f.socket, '/v1/proxy/nobody/api/x')).status, 404);
    f.writeConfig({}, {}); // no apiUrl: 409
    await reload(f);
    const none = await ask(f.socket, '/v1/proxy/default/api/_echo/x');
    assert.equal(none.status, 409);
    assert.equal(none.json.error, 'api_not_configured');
    f.writeConfig({ apiUrl: 'http://127.0.0.1:9' });
    await reload(f);
    const down = await ask(f.socket, '/v1/proxy/default/api/_echo/x');
    assert.equal(down.status, 502);
    assert.equal(down.json.error, 'upstream_unavailable');
    f.writeConfig({ apiUrl: f.emulator.url, api: { responseMs: 200 } });
    await reload(f);
    f.emulator.setApiFaults({ latencyMs: 1_500 });
    const slow = await ask(f.socket, '/v1/proxy/default/api/_echo/x');
    f.emulator.clearApiFaults();
    assert.equal(slow.status, 504);
    assert.equal(slow.json.error, 'upstream_timeout');
    assert.equal((await ask(f.socket, '/v1/proxy/default/api/_echo/x', { headers: { 'x-pos-agent': '0' } })).status, 412);
    assert.equal((await ask(f.socket, '/v1/proxy/default/api/_echo/x', { headers: { origin: 'http://a' } })).status, 403);
  });
});

/** SIGHUP, then wait until the agent logged the reload. */
async function reload(f: Fixture): Promise<void> {
  const before = f.agent.output.split('config reloaded').length;
  f.agent.child!.kill('SIGHUP');
  await waitFor('the reload', () => (f.agent.output.split('config reloaded').length > before ? true : undefined), 10_000);
}

function dechunk(body: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', i);
    const n = parseInt(body.subarray(i, eol).toString(), 16);
    if (!n) return Buffer.concat(out);
    out.push(body.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
}

describe('the outbox', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: f.emulator.url }, { outbox: { maxEntries: 20, alertAfterS: 1 } });
    assert.equal((await f.provision(DEMO_CREDENTIALS, [])).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('acknowledges 202 with a position, delivers, and a repeated key answers 200 with the same entry', async () => {
    const r = await enqueue(f, { account: 'default', path: '/api/v1/receiptsubmissions', body: receipt('o-1'), key: 'o-1' });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(Object.keys(r.json).sort(), ['id', 'position', 'state']);
    assert.equal(r.json.state, 'queued');
    const id = r.json.id as string;
    await waitFor('delivered', async () => ((await entry(f, id)).state === 'delivered' ? true : undefined));
    const e = await entry(f, id);
    assert.equal((e.response as { status: number }).status, 202);
    assert.equal(e.attempts, 1);
    const again = await enqueue(f, { account: 'default', path: '/api/v1/receiptsubmissions', body: receipt('o-1'), key: 'o-1' });
    assert.equal(again.status, 200);
    assert.equal(again.json.id, id);
    assert.equal(again.json.state, 'delivered');
    assert.equal(f.emulator.apiSubmissions().filter((s) => s.uuids.includes('o-1')).length, 1, 'sent once');
  });

  it('honours 429: nothing is sent again before Retry-After', async () => {
    f.emulator.clearApiSubmissions();
    f.emulator.setApiFaults({ rateLimit: { count: 1, retryAfter: '2' } });
    const r = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: receipt('o-429') });
    await waitFor('delivered after the 429', async () => ((await entry(f, r.json.id as string)).state === 'delivered' ? true : undefined));
    const seen = f.emulator.apiSubmissions();
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.status, 429);
    // Retry-After: 2 s; the outbox waits that long plus up to 10%. 1.9 s leaves room for the emulator's clock
    // reading after the 429 was decided (it stamps arrival, not the answer).
    assert.ok(Date.parse(seen[1]!.at) - Date.parse(seen[0]!.at) >= 1_900, `${seen[0]!.at} -> ${seen[1]!.at}`);
  });

  it('a rejected entry is kept with the answer while the next ones go', async () => {
    const bad = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: { receipts: 'not an array' } });
    const good = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: receipt('o-after') });
    await waitFor('the next one delivered', async () => ((await entry(f, good.json.id as string)).state === 'delivered' ? true : undefined));
    const e = await entry(f, bad.json.id as string);
    assert.equal(e.state, 'rejected');
    assert.equal((e.response as { status: number }).status, 400);
    assert.match(JSON.stringify(e.response), /BadStructure/);
    assert.equal((await ask(f.socket, `/v1/outbox/${bad.json.id as string}`, { method: 'DELETE' })).status, 409, 'only a queued entry can be cancelled');
    const listed = await ask(f.socket, '/v1/outbox?state=rejected');
    assert.deepEqual((listed.json.entries as Array<{ id: string }>).map((x) => x.id), [bad.json.id]);
  });

  it('a full outbox answers 507 and loses nothing; the API down makes health unhealthy after alertAfterS', async () => {
    f.emulator.setApiFaults({ fail5xx: 100_000 });
    const ids: string[] = [];
    let full: Answer | undefined;
    for (let i = 0; i < 25 && !full; i++) {
      const r = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: receipt(`full-${i}`) });
      if (r.status === 202) ids.push(r.json.id as string);
      else full = r;
    }
    assert.ok(full, 'the limit was reached');
    assert.equal(full.status, 507);
    assert.equal(full.json.error, 'outbox_full');
    assert.equal(full.json.reason, 'entries');
    assert.equal(ids.length, 20);
    await waitFor('unhealthy', async () => {
      const h = await ask(f.socket, '/v1/health');
      return h.status === 503 && (h.json.outbox_stalled as string[] | undefined)?.includes('default') ? true : undefined;
    });
    const status = (await ask(f.socket, '/v1/status')).json.accounts as Record<string, { outbox: { queued: number; oldest_queued_s: number } }>;
    assert.equal(status.default!.outbox.queued, 20);
    f.emulator.clearApiFaults();
    assert.equal((await ask(f.socket, `/v1/outbox/${ids[0]!}/retry`, { method: 'POST' })).status, 200);
    await waitFor('all delivered', async () => {
      const states = await Promise.all(ids.map(async (id) => (await entry(f, id)).state));
      return states.every((s) => s === 'delivered') ? true : undefined;
    }, 60_000);
    assert.equal((await ask(f.socket, '/v1/health')).status, 200);
  });

  it('refuses what it cannot deliver: 400 naming the field, 404, 409', async () => {
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ path: '/x' }, 400, /body is required/],
      [{ path: 'x', body: {} }, 400, /path/],
      [{ path: '/../x', body: {} }, 400, /path: .*segment/],
      [{ path: '/x', body: {}, method: 'GET' }, 400, /method/],
      [{ path: '/x', body: {}, headers: { Authorization: 'Bearer x' } }, 400, /headers.Authorization/],
      [{ path: '/x', body: {}, key: '' }, 400, /key/],
      [{ path: '/x', body: {}, extra: 1 }, 400, /unknown field "extra"/],
      [{ account: 'nobody', path: '/x', body: {} }, 404, /nobody/],
      [{ path: '/x', body: '{"receipts":[]}' }, 400, /body is a JSON string holding a JSON document/],
    ];
    for (const [body, status, message] of cases) {
      const r = await enqueue(f, body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.match(String(r.json.message), message, JSON.stringify(body));
    }
    const list = await ask(f.socket, '/v1/outbox?account=nobody');
    assert.equal(list.status, 404, list.text);
    assert.deepEqual(list.json.known_accounts, ['default']);
  });
});

describe('the outbox on a full disk', () => {
  let f: Fixture;
  let mnt: string;
  let mounted = false;
  before(async () => {
    f = await fixture();
    mnt = join(f.dir, 'small-disk');
    mkdirSync(mnt);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
      mounted = true;
    } catch {
      return; // not root or no mount: the test says so and skips
    }
    f.writeConfig({ apiUrl: f.emulator.url }, { stateDir: join(mnt, 'state') });
    assert.equal((await f.provision(DEMO_CREDENTIALS, [])).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(async () => {
    await f.agent.stop();
    if (mounted) execFileSync('umount', ['-l', mnt]);
    await f.cleanup();
  });

  it('answers 507 when the disk is full, keeps serving, and delivers every acknowledged entry once there is room', async (t) => {
    if (!mounted) return t.skip('mount -t tmpfs is not permitted here');
    f.emulator.setApiFaults({ fail5xx: 100_000 });
    const filler = join(mnt, 'filler');
    // Leave a little room, so the first entries fit and the disk fills while enqueuing.
    writeFileSync(filler, Buffer.alloc(1_400 * 1024));
    const ids: string[] = [];
    let full: Answer | undefined;
    for (let i = 0; i < 200 && !full; i++) {
      const r = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: { ...receipt(`disk-${i}`), pad: 'x'.repeat(20_000) } });
      if (r.status === 202) ids.push(r.json.id as string);
      else full = r;
    }
    assert.ok(full && ids.length > 0, `${ids.length} acknowledged, then ${full?.status}`);
    assert.equal(full.status, 507, full.text);
    assert.equal(full.json.reason, 'disk');
    assert.equal((await ask(f.socket, '/v1/token')).status, 200, 'the agent keeps serving tokens');
    for (const id of ids) assert.equal((await entry(f, id)).state, 'queued');
    rmSync(filler);
    f.emulator.clearApiFaults();
    // The API was down for a while: the head waits out its backoff; `retry` lifts it (the operator's way).
    assert.equal((await ask(f.socket, `/v1/outbox/${ids[0]!}/retry`, { method: 'POST' })).status, 200);
    const more = await enqueue(f, { path: '/api/v1/receiptsubmissions', body: receipt('disk-after') });
    assert.equal(more.status, 202, 'room again');
    ids.push(more.json.id as string);
    try {
      await waitFor('all delivered', async () => {
        const states = await Promise.all(ids.map(async (id) => (await entry(f, id)).state));
        return states.every((s) => s === 'delivered') ? true : undefined;
      }, 60_000);
    } catch (err) {
      console.log(f.agent.output.slice(-3000), JSON.stringify((await ask(f.socket, '/v1/outbox?limit=5')).json).slice(0, 2000));
      throw err;
    }
  });
});
