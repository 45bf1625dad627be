import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { createEmulator, DEMO_PRINCIPALS, type Emulator } from '../../src/emulator/index.js';

const RECEIPTS = '/api/v1/receiptsubmissions';

/** Logs in as the authority's demo principal and returns the access token. */
async function demoToken(emu: Emulator): Promise<string> {
  const demo = DEMO_PRINCIPALS[emu.authority];
  const c = demo.credentials;
  const url = `${emu.url}${emu.paths.token}`;
  const basic = `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}`;
  let res: Response;
  if (emu.authority === 'eta-ereceipt') {
    const id = demo.account.identity!;
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        posserial: id.posserial,
        pososversion: id.pososversion!,
        posmodelframework: id.posmodelframework!,
        presharedkey: c.presharedKey!,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId!, client_secret: c.clientSecret! }),
    });
  } else if (emu.authority === 'myinvois') {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId!, client_secret: c.clientSecret! }),
    });
  } else if (emu.authority === 'sepay') {
    res = await fetch(url, { method: 'POST', headers: { authorization: basic } });
  } else {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
  }
  const text = await res.text();
  assert.equal(res.status, 200, text);
  const body = JSON.parse(text) as { access_token?: string; data?: { access_token: string } };
  return body.access_token ?? body.data!.access_token;
}

interface CallInput {
  method?: string;
  token?: string | undefined;
  body?: unknown;
  headers?: Record<string, string>;
}

async function call(emu: Emulator, path: string, input: CallInput = {}): Promise<Response> {
  const headers: Record<string, string> = { ...input.headers };
  if (input.token !== undefined) headers.authorization = `Bearer ${input.token}`;
  const init: RequestInit = { method: input.method ?? 'POST', headers };
  if (input.body !== undefined) {
    init.body = typeof input.body === 'string' ? input.body : JSON.stringify(input.body);
    headers['content-type'] ??= 'application/json';
  }
  return fetch(`${emu.url}${path}`, init);
}

function receipt(uuid: string, receiptNumber = `R-${uuid}`): unknown {
  return { header: { uuid, receiptNumber, dateTimeIssued: '2026-01-01T00:00:00Z' }, itemData: [] };
}

interface EtaErrorBody {
  error: { code: string; message: string; target: string; details: unknown[] };
}

async function expectEtaError(res: Response, status: number, code: string): Promise<EtaErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('correlationid') ?? '', /^[0-9a-f-]{36}$/);
  const body = JSON.parse(text) as EtaErrorBody;
  assert.equal(body.error.code, code, text);
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.target, 'string');
  assert.ok(Array.isArray(body.error.details));
  return body;
}

async function expect401(res: Response, code: string): Promise<string> {
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
  const text = await res.text();
  assert.ok(text.includes(code), text);
  return text;
}

async function admin(emu: Emulator, method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  return fetch(`${emu.url}/_emulator/${path}`, init);
}

describe('submission API: eta-ereceipt', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const emu = createEmulator({ ...DEMO_PRINCIPALS['eta-ereceipt'].register, clock, rateLimitPerMinute: 0 });
  const other = createEmulator({ ...DEMO_PRINCIPALS['eta-ereceipt'].register, clock, rateLimitPerMinute: 0 });
  let token = '';
  before(async () => {
    await emu.start();
    await other.start();
    token = await demoToken(emu);
  });
  after(async () => {
    await emu.stop();
    await other.stop();
  });
  beforeEach(() => {
    emu.clearApiFaults();
    emu.clearApiSubmissions();
    emu.clearFaults();
  });

  test('no bearer, another scheme, a foreign-signed token, a garbled one: 401 invalid_token in the ETA shape', async () => {
    const body = { receipts: [receipt('u-0')] };
    await expectEtaError(await call(emu, RECEIPTS, { body }), 401, 'Unauthorized');
    await expect401(await call(emu, RECEIPTS, { body, headers: { authorization: `Basic ${token}` } }), 'Unauthorized');
    const foreign = await demoToken(other);
    await expect401(await call(emu, RECEIPTS, { token: foreign, body }), 'Unauthorized');
    await expect401(await call(emu, RECEIPTS, { token: `${token.slice(0, -4)}AAAA`, body }), 'Unauthorized');
    await expect401(await call(emu, '/api/anything', { token: 'not-a-jwt', method: 'GET' }), 'Unauthorized');
    assert.deepEqual(emu.apiSubmissions(), [], 'refused requests are not recorded');
    const stats = emu.stats().api!;
    assert.ok(stats.unauthorized >= 5);
  });

  test('an expired token is refused on the emulator clock; a new login works', async () => {
    emu.setFaults({ lifetimeS: 60 });
    const short = await demoToken(emu);
    emu.clearFaults();
    assert.equal((await call(emu, '/api/x', { token: short, method: 'GET' })).status, 202);
    clock.jumpWall(60_000);
    try {
      const text = await expect401(await call(emu, '/api/x', { token: short, method: 'GET' }), 'Unauthorized');
      assert.match(text, /expired/);
      assert.equal((await call(emu, '/api/x', { token, method: 'GET' })).status, 202, 'the 1 h token still works');
    } finally {
      clock.jumpWall(-60_000);
    }
  });

  test('a valid token: 202 with submissionId, accepted and rejected documents', async () => {
    const res = await call(emu, RECEIPTS, {
      token,
      body: { receipts: [receipt('u-1', 'R1'), receipt('u-2', 'R2'), { header: { receiptNumber: 'R3' } }, { header: { uuid: 'u-4' } }] },
    });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('correlationid') ?? '', /^[0-9a-f-]{36}$/);
    const body = (await res.json()) as {
      submissionId: string;
      acceptedDocuments: Array<{ uuid: string; longId: string; receiptNumber: string }>;
      rejectedDocuments: Array<{ uuid: string; receiptNumber: string; error: EtaErrorBody['error'] }>;
    };
    assert.match(body.submissionId, /^[0-9A-Z]{26}$/);
    assert.deepEqual(body.acceptedDocuments.map((d) => [d.uuid, d.receiptNumber]), [['u-1', 'R1'], ['u-2', 'R2']]);
    for (const d of body.acceptedDocuments) assert.match(d.longId, /^[0-9A-Z]{20,}$/);
    assert.equal(body.rejectedDocuments.length, 2);
    assert.deepEqual(body.rejectedDocuments.map((d) => [d.uuid, d.receiptNumber, d.error.code]), [
      ['', 'R3', 'BadStructure'],
      ['u-4', '', 'BadStructure'],
    ]);
    assert.equal(body.rejectedDocuments[0]!.error.target, 'receipts[2]');
  });

  test('records in arrival order, duplicates flagged and counted (an at-least-once resend)', async () => {
    emu.resetStats();
    await (await call(emu, RECEIPTS, { token, body: { receipts: [receipt('d-1'), receipt('d-2')] } })).arrayBuffer();
    await (await call(emu, '/api/v1/other', { token, method: 'PUT', body: { id: 'x' } })).arrayBuffer();
    const again = await call(emu, RECEIPTS, { token, body: { receipts: [receipt('d-2'), receipt('d-3')] } });
    assert.equal(again.status, 202);
    const body = (await again.json()) as { acceptedDocuments: Array<{ uuid: string }>; rejectedDocuments: Array<{ uuid: string; error: { code: string } }> };
    assert.deepEqual(body.acceptedDocuments.map((d) => d.uuid), ['d-3']);
    assert.deepEqual(body.rejectedDocuments.map((d) => [d.uuid, d.error.code]), [['d-2', 'DuplicateSubmission']]);

    const records = emu.apiSubmissions();
    assert.deepEqual(records.map((r) => [r.seq, r.method, r.path, r.status, r.duplicate]), [
      [1, 'POST', RECEIPTS, 202, false],
      [2, 'PUT', '/api/v1/other', 202, false],
      [3, 'POST', RECEIPTS, 202, true],
    ]);
    assert.deepEqual(records[0]!.uuids, ['d-1', 'd-2']);
    assert.deepEqual(records[1]!.body, { id: 'x' });
    assert.deepEqual(records[2]!.uuids, ['d-2', 'd-3']);
    assert.match(records[0]!.tokenJti, /^[0-9a-f-]{36}$/);
    assert.equal(records[0]!.at, new Date(clock.now()).toISOString());

    const viaAdmin = (await (await admin(emu, 'GET', 'api/submissions?since=1')).json()) as {
      submissions: Array<{ seq: number }>;
      duplicates: number;
      total: number;
    };
    assert.deepEqual(viaAdmin.submissions.map((s) => s.seq), [2, 3]);
    assert.equal(viaAdmin.duplicates, 1);
    assert.equal(viaAdmin.total, 3);
    const stats = emu.stats().api!;
    assert.equal(stats.requests, 3);
    assert.equal(stats.accepted, 3);
    assert.equal(stats.duplicates, 1);
    assert.deepEqual(stats.byStatus, { '202': 3 });

    const cleared = await admin(emu, 'DELETE', 'api/submissions');
    assert.equal(cleared.status, 200);
    await cleared.arrayBuffer();
    assert.deepEqual(emu.apiSubmissions(), []);
    const fresh = (await (await call(emu, RECEIPTS, { token, body: { receipts: [receipt('d-1')] } })).json()) as {
      acceptedDocuments: unknown[];
    };
    assert.equal(fresh.acceptedDocuments.length, 1, 'clearing also forgets the accepted uuids');
  });

  test('bad bodies: 400 BadStructure; too many receipts 400; wrong method 405', async () => {
    await expectEtaError(await call(emu, RECEIPTS, { token, body: 'not json' }), 400, 'BadStructure');
    await expectEtaError(await call(emu, RECEIPTS, { token, body: [1] }), 400, 'BadStructure');
    await expectEtaError(await call(emu, RECEIPTS, { token, body: {} }), 400, 'BadStructure');
    const notArray = await expectEtaError(await call(emu, RECEIPTS, { token, body: { receipts: 'x' } }), 400, 'BadStructure');
    assert.equal(notArray.error.target, 'receipts');
    await expectEtaError(await call(emu, RECEIPTS, { token, body: { receipts: [] } }), 400, 'BadStructure');
    const many = Array.from({ length: 501 }, (_, i) => receipt(`m-${i}`));
    const tooMany = await expectEtaError(await call(emu, RECEIPTS, { token, body: { receipts: many } }), 400, 'BadStructure');
    assert.match(tooMany.error.message, /500/);
    const ok500 = await call(emu, RECEIPTS, { token, body: { receipts: many.slice(0, 500) } });
    assert.equal(ok500.status, 202);
    assert.equal(((await ok500.json()) as { acceptedDocuments: unknown[] }).acceptedDocuments.length, 500);
    const get = await call(emu, RECEIPTS, { token, method: 'GET' });
    await expectEtaError(get, 405, 'MethodNotAllowed');
    assert.equal(get.headers.get('allow'), 'POST');
    await expectEtaError(await call(emu, '/api/v1/anything', { token, body: '{"a":' }), 400, 'BadStructure');
    assert.deepEqual(
      emu.apiSubmissions().map((r) => r.status),
      [400, 400, 400, 400, 400, 400, 202, 405, 400],
    );
  });

  test('fault fail5xx with status5xx, then the API works again', async () => {
    emu.setApiFaults({ fail5xx: 2, status5xx: 502 });
    await expectEtaError(await call(emu, RECEIPTS, { token, body: { receipts: [receipt('f-1')] } }), 502, 'ServiceUnavailable');
    await expectEtaError(await call(emu, '/api/x', { token, method: 'GET' }), 502, 'ServiceUnavailable');
    const ok = await call(emu, RECEIPTS, { token, body: { receipts: [receipt('f-1')] } });
    assert.equal(((await ok.json()) as { acceptedDocuments: unknown[] }).acceptedDocuments.length, 1, 'a failed request accepted nothing');
    assert.deepEqual(emu.apiSubmissions().map((r) => [r.status, r.fault, r.uuids]), [
      [502, 'fail5xx', ['f-1']],
      [502, 'fail5xx', []],
      [202, undefined, ['f-1']],
    ]);
  });

  test('fault rateLimit: 429 with Retry-After', async () => {
    emu.setApiFaults({ rateLimit: { count: 1, retryAfter: '7' } });
    const res = await call(emu, RECEIPTS, { token, body: { receipts: [receipt('r-1')] } });
    await expectEtaError(res, 429, 'TooManyRequests');
    assert.equal(res.headers.get('retry-after'), '7');
    assert.equal((await call(emu, RECEIPTS, { token, body: { receipts: [receipt('r-1')] } })).status, 202);
  });

  test('fault latencyMs delays the answer on the emulator clock', async () => {
    emu.setApiFaults({ latencyMs: 5_000 });
    let done = false;
    const pending = call(emu, '/api/slow', { token, method: 'GET' }).then((r) => {
      done = true;
      return r;
    });
    await clock.waitForTimer();
    await clock.advance(4_000);
    assert.equal(done, false);
    await clock.advance(1_000);
    const res = await pending;
    assert.equal(res.status, 202);
    await res.arrayBuffer();
  });

  test('fault drop: the request is handled but the answer is lost; the resend is a duplicate', async () => {
    emu.setApiFaults({ drop: 1 });
    await assert.rejects(call(emu, RECEIPTS, { token, body: { receipts: [receipt('x-1')] } }));
    const resend = await call(emu, RECEIPTS, { token, body: { receipts: [receipt('x-1')] } });
    assert.equal(resend.status, 202);
    const body = (await resend.json()) as { rejectedDocuments: Array<{ error: { code: string } }> };
    assert.equal(body.rejectedDocuments[0]!.error.code, 'DuplicateSubmission');
    assert.deepEqual(emu.apiSubmissions().map((r) => [r.fault, r.duplicate]), [
      ['drop', false],
      [undefined, true],
    ]);
    assert.equal(emu.stats().api!.byStatus.dropped, 1);
  });

  test('fault revoke401: 401 and the token stays invalid; a new login works', async () => {
    const victim = await demoToken(emu);
    emu.setApiFaults({ revoke401: 1 });
    await expect401(await call(emu, '/api/x', { token: victim, method: 'GET' }), 'Unauthorized');
    const again = await expect401(await call(emu, '/api/x', { token: victim, method: 'GET' }), 'Unauthorized');
    assert.match(again, /revoked/);
    assert.equal((await call(emu, '/api/x', { token, method: 'GET' })).status, 202, 'other tokens still work');
    const fresh = await demoToken(emu);
    assert.equal((await call(emu, '/api/x', { token: fresh, method: 'GET' })).status, 202);
    assert.deepEqual(emu.apiSubmissions().map((r) => [r.status, r.fault]), [
      [401, 'revoke401'],
      [202, undefined],
      [202, undefined],
    ]);
  });

  test('fault error: any 4xx in the ETA shape, for count requests', async () => {
    emu.setApiFaults({ error: { code: 'ValidationError', description: 'injected', status: 422, count: 1 } });
    const body = await expectEtaError(await call(emu, '/api/x', { token, method: 'GET' }), 422, 'ValidationError');
    assert.equal(body.error.message, 'injected');
    assert.equal((await call(emu, '/api/x', { token, method: 'GET' })).status, 202);
  });

  test('revoking every token: programmatic and admin', async () => {
    const t1 = await demoToken(emu);
    assert.ok(emu.revokeTokens() >= 1);
    await expect401(await call(emu, '/api/x', { token: t1, method: 'GET' }), 'Unauthorized');
    await expect401(await call(emu, '/api/x', { token, method: 'GET' }), 'Unauthorized');
    const t2 = await demoToken(emu);
    assert.equal((await call(emu, '/api/x', { token: t2, method: 'GET' })).status, 202);
    const res = await admin(emu, 'POST', 'api/revoke');
    assert.deepEqual(await res.json(), { revoked: 1 });
    await expect401(await call(emu, '/api/x', { token: t2, method: 'GET' }), 'Unauthorized');
    token = await demoToken(emu);
  });

  test('_large answers about N bytes whose SHA-256 is in x-emulator-sha256', async () => {
    const res = await call(emu, '/api/_large?bytes=3000000', { token, method: 'GET' });
    assert.equal(res.status, 200);
    const buf = Buffer.from(await res.arrayBuffer());
    assert.equal(buf.length, 3_000_000);
    assert.equal(createHash('sha256').update(buf).digest('hex'), res.headers.get('x-emulator-sha256'));
    assert.equal((JSON.parse(buf.toString('utf8')) as { bytes: number }).bytes, 3_000_000);
    const same = await call(emu, '/api/_large?bytes=3000000', { token, method: 'GET' });
    assert.equal(same.headers.get('x-emulator-sha256'), res.headers.get('x-emulator-sha256'), 'deterministic');
    await same.arrayBuffer();
    await expectEtaError(await call(emu, '/api/_large?bytes=40000000', { token, method: 'GET' }), 400, 'BadStructure');
    await expectEtaError(await call(emu, '/api/_large', { token, method: 'GET' }), 400, 'BadStructure');
    await expect401(await call(emu, '/api/_large?bytes=10', { method: 'GET' }), 'Unauthorized');
  });

  test('_echo shows what arrived, the Authorization value cut short', async () => {
    const res = await call(emu, '/api/_echo/a/b%2Fc?x=1&y=2', {
      token,
      method: 'PATCH',
      body: 'plain text',
      headers: { 'x-till': 'T1', 'content-type': 'text/plain' },
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { method: string; path: string; query: string; headers: Record<string, string>; body: string };
    assert.equal(body.method, 'PATCH');
    assert.equal(body.path, '/api/_echo/a/b%2Fc');
    assert.equal(body.query, 'x=1&y=2');
    assert.equal(body.headers['x-till'], 'T1');
    assert.equal(body.headers.authorization, `Bearer ${token.slice(0, 8)}…`);
    assert.equal(body.body, 'plain text');
  });

  test('admin: API faults read, merge, validate, clear', async () => {
    let res = await admin(emu, 'POST', 'api/faults', { fail5xx: 1, rateLimit: { count: 2, retryAfter: '3' } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { faults: { fail5xx: 1, rateLimit: { count: 2, retryAfter: '3' } } });
    res = await admin(emu, 'POST', 'api/faults', { fail5xx: null, revoke401: 2 });
    assert.deepEqual(await res.json(), { faults: { rateLimit: { count: 2, retryAfter: '3' }, revoke401: 2 } });
    assert.deepEqual(await (await admin(emu, 'GET', 'api/faults')).json(), {
      faults: { rateLimit: { count: 2, retryAfter: '3' }, revoke401: 2 },
    });
    for (const bad of [{ malformed: 1 }, { status5xx: 404 }, { error: { code: 'x', status: 500 } }, { drop: -1 }, [1]]) {
      const r = await admin(emu, 'POST', 'api/faults', bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      await r.arrayBuffer();
    }
    const notJson = await admin(emu, 'POST', 'api/faults', '{');
    assert.equal(notJson.status, 400);
    await notJson.arrayBuffer();
    res = await admin(emu, 'DELETE', 'api/faults');
    assert.deepEqual(await res.json(), { faults: {} });
    const wrong = await admin(emu, 'PUT', 'api/submissions');
    assert.equal(wrong.status, 405);
    await wrong.arrayBuffer();
    const badSince = await admin(emu, 'GET', 'api/submissions?since=x');
    assert.equal(badSince.status, 400);
    await badSince.arrayBuffer();
    assert.throws(() => emu.setApiFaults({ fail5xx: -1 }), TypeError);
    assert.throws(() => emu.setApiFaults({ lifetimeS: 1 } as never), /unknown key/);
    // The token side's faults are apart.
    emu.setApiFaults({ fail5xx: 1 });
    assert.deepEqual(await (await admin(emu, 'GET', 'faults')).json(), { faults: {} });
  });
});

describe('submission API: body cap', () => {
  const emu = createEmulator({ ...DEMO_PRINCIPALS['eta-ereceipt'].register, apiMaxBodyBytes: 1024, rateLimitPerMinute: 0 });
  before(() => emu.start());
  after(() => emu.stop());

  test('a body over the cap: 413', async () => {
    const token = await demoToken(emu);
    const big = { receipts: [{ header: { uuid: 'b', receiptNumber: 'b' }, pad: 'x'.repeat(2000) }] };
    await expectEtaError(await call(emu, RECEIPTS, { token, body: big }), 413, 'MaximumSizeExceeded');
    assert.equal((await call(emu, RECEIPTS, { token, body: { receipts: [receipt('s')] } })).status, 202);
  });
});

describe('submission API: a generic authority (sepay)', () => {
  const emu = createEmulator({ authority: 'sepay', ...DEMO_PRINCIPALS.sepay.register });
  let token = '';
  before(async () => {
    await emu.start();
    token = await demoToken(emu);
  });
  after(() => emu.stop());

  test('401 in the SePay error shape with WWW-Authenticate', async () => {
    const res = await call(emu, '/api/v1/invoices', { body: { uuid: 'a' } });
    const text = await expect401(res, 'invalid_token');
    const body = JSON.parse(text) as { success: boolean; error: { code: string; message: string } };
    assert.equal(body.success, false);
    assert.equal(body.error.code, 'invalid_token');
  });

  test('any method on /api/...: 202 {received, seq, method, path}; duplicates per path', async () => {
    emu.clearApiSubmissions();
    const first = await call(emu, '/api/v1/invoices', { token, body: { uuid: 'inv-1', total: 10 } });
    assert.equal(first.status, 202);
    assert.deepEqual(await first.json(), { received: true, seq: 1, method: 'POST', path: '/api/v1/invoices' });
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
      const res = await call(emu, '/api/v1/invoices/inv-1', { token, method });
      assert.equal(res.status, 202, method);
      assert.equal(((await res.json()) as { method: string }).method, method);
    }
    const again = await call(emu, '/api/v1/invoices', { token, body: { uuid: 'inv-1', total: 10 } });
    assert.equal(again.status, 202, 'a duplicate is still accepted');
    await again.arrayBuffer();
    const byId = await call(emu, '/api/v1/invoices', { token, body: { id: 'inv-1' } });
    await byId.arrayBuffer();
    const elsewhere = await call(emu, '/api/v2/invoices', { token, body: { uuid: 'inv-1' } });
    await elsewhere.arrayBuffer();
    const records = emu.apiSubmissions();
    assert.deepEqual(records.map((r) => [r.seq, r.duplicate]), [
      [1, false],
      [2, false],
      [3, false],
      [4, false],
      [5, false],
      [6, true],
      [7, true],
      [8, false],
    ]);
    assert.deepEqual(records[0]!.uuids, ['inv-1']);
    assert.equal(records[1]!.body, null);
  });

  test('a body that is not JSON: 400; faults in the SePay shape', async () => {
    const bad = await call(emu, '/api/v1/invoices', { token, body: '<xml/>' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { success: boolean }).success, false);
    emu.setApiFaults({ error: { code: 'INVOICE_INVALID', description: 'Hóa đơn không hợp lệ.', status: 422, count: 1 } });
    const res = await call(emu, '/api/v1/invoices', { token, body: { uuid: 'z' } });
    assert.equal(res.status, 422);
    assert.deepEqual(await res.json(), { success: false, error: { code: 'INVOICE_INVALID', message: 'Hóa đơn không hợp lệ.' } });
    emu.setApiFaults({ rateLimit: { count: 1, retryAfter: '2' } });
    const limited = await call(emu, '/api/v1/invoices', { token, body: { uuid: 'z' } });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '2');
    await limited.arrayBuffer();
    const stats = emu.stats().api!;
    assert.ok(stats.rejected >= 3);
  });

  test('the eReceipt path is just another generic path here', async () => {
    const res = await call(emu, RECEIPTS, { token, body: { receipts: [] } });
    assert.equal(res.status, 202);
    assert.equal(((await res.json()) as { received: boolean }).received, true);
  });
});

describe('submission API: document submissions (myinvois)', () => {
  const emu = createEmulator({ authority: 'myinvois', ...DEMO_PRINCIPALS.myinvois.register });
  before(() => emu.start());
  after(() => emu.stop());

  test('POST /api/v1.0/documentsubmissions: 202 with submissionUid; a resent document is a duplicate', async () => {
    const token = await demoToken(emu);
    const doc = { format: 'JSON', document: 'e30=', documentHash: 'abc', codeNumber: 'INV-1' };
    const res = await call(emu, '/api/v1.0/documentsubmissions', { token, body: { documents: [doc, { format: 'JSON' }] } });
    assert.equal(res.status, 202);
    const body = (await res.json()) as {
      submissionUid: string;
      acceptedDocuments: Array<{ uuid: string; invoiceCodeNumber: string }>;
      rejectedDocuments: Array<{ invoiceCodeNumber: string; error: { code: string } }>;
    };
    assert.equal(typeof body.submissionUid, 'string');
    assert.deepEqual(body.acceptedDocuments.map((d) => d.invoiceCodeNumber), ['INV-1']);
    assert.equal(body.rejectedDocuments[0]!.error.code, 'BadStructure');
    const again = (await (await call(emu, '/api/v1.0/documentsubmissions', { token, body: { documents: [doc] } })).json()) as {
      rejectedDocuments: Array<{ error: { code: string } }>;
    };
    assert.equal(again.rejectedDocuments[0]!.error.code, 'DuplicateSubmission');
    assert.equal(emu.apiSubmissions().at(-1)!.duplicate, true);
    const empty = await call(emu, '/api/v1.0/documentsubmissions', { token, body: { documents: [] } });
    assert.equal(empty.status, 400);
    await empty.arrayBuffer();
  });
});
