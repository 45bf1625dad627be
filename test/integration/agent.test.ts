/**
 * The real CLI `run` against the bundled emulator, over the real Unix socket and SQLite file.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, DEMO_CREDENTIALS, fixture, forceRefresh, runCli, waitFor, type Fixture } from '../support/harness.js';

function stateBytes(f: Fixture): Buffer {
  return Buffer.concat(readdirSync(f.stateDir).map((n) => readFileSync(join(f.stateDir, n))));
}

describe('agent: first token, cache, socket rules', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    const p = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /Verified with a login/);
    f.emulator.resetStats();
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('serves the first token through the socket and the token command', async () => {
    const res = await ask(f.socket, '/v1/token');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json).sort(), ['access_token', 'account', 'expires_at', 'expires_in', 'scope', 'token_type']);
    assert.equal(res.json.token_type, 'Bearer');
    assert.equal(res.json.account, 'default');
    assert.ok((res.json.expires_in as number) > 3500 && (res.json.expires_in as number) <= 3600);
    assert.equal(res.headers['cache-control'], 'no-store');
    const cli = await runCli(['token', '--config', f.configPath]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout.trim(), res.json.access_token);
    const json = await runCli(['token', '--socket', f.socket, '--json', '--min-ttl', '10']);
    assert.equal(JSON.parse(json.stdout).access_token, res.json.access_token);
  });

  it('answers hundreds of concurrent requests with no further login', async () => {
    const before = f.emulator.stats().issued;
    const answers = await Promise.all(Array.from({ length: 300 }, () => ask(f.socket, '/v1/token?min_ttl=0')));
    assert.ok(answers.every((a) => a.status === 200));
    assert.equal(new Set(answers.map((a) => a.json.access_token)).size, 1);
    assert.equal(f.emulator.stats().issued - before, 0, 'the token provisioning stored is reused');
  });

  it('applies the 412/403/404 rules', async () => {
    assert.equal((await ask(f.socket, '/v1/token', { headers: { 'x-pos-agent': '0' } })).status, 412);
    const no = await new Promise<number>((resolve, reject) => {
      const s = connect(f.socket, () => s.write('GET /v1/token HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'));
      let t = '';
      s.on('data', (d) => (t += d.toString()));
      s.on('end', () => resolve(Number(t.split(' ')[1])));
      s.on('error', reject);
    });
    assert.equal(no, 412, 'no header at all');
    for (const h of ['origin', 'forwarded', 'x-forwarded-for']) {
      assert.equal((await ask(f.socket, '/v1/token', { headers: { [h]: 'http://evil.example' } })).status, 403, h);
    }
    const unknown = await ask(f.socket, '/v1/token?account=nobody');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error, 'unknown_account');
    assert.equal((await ask(f.socket, '/nope')).status, 404);
  });

  it('survives malformed requests without disturbing other clients', async () => {
    const garbage = ['GARBAGE\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', `GET /v1/token HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, '\x00\x01\x02'];
    await Promise.all(
      garbage.map(
        (g) =>
          new Promise<void>((resolve) => {
            const s = connect(f.socket, () => s.end(g));
            s.on('data', () => {});
            s.on('close', () => resolve());
            s.on('error', () => resolve());
          }),
      ),
    );
    const bad = await ask(f.socket, '/v1/token/refresh', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    assert.equal(bad.status, 400);
    assert.equal((await ask(f.socket, '/v1/token?min_ttl=-5')).status, 400);
    const ok = await ask(f.socket, '/v1/token');
    assert.equal(ok.status, 200);
  });

  it('exposes status, health and metrics without secrets', async () => {
    const status = await ask(f.socket, '/v1/status');
    assert.equal(status.status, 200);
    const acct = (status.json.accounts as Record<string, Record<string, unknown>>).default!;
    assert.equal(acct.state, 'fresh');
    assert.equal(acct.authority, 'eta-ereceipt');
    assert.equal((await ask(f.socket, '/v1/health')).status, 200);
    const metrics = await ask(f.socket, '/metrics');
    assert.match(metrics.text, /pos_token_agent_token_requests_total\{result="ok"\} \d+/);
    assert.match(metrics.text, /pos_token_agent_token_seconds_left\{account="default"\} \d+/);
    // The process's own figures (src/lib/process-metrics.ts), read at scrape time.
    for (const name of ['process_resident_memory_bytes', 'process_open_fds', 'nodejs_heap_used_bytes', 'nodejs_heap_total_bytes', 'nodejs_external_memory_bytes']) {
      assert.match(metrics.text, new RegExp(`^${name} [1-9]\\d*$`, 'm'), name);
    }
    assert.match(metrics.text, /^nodejs_gc_total\{kind="major"\} \d+$/m);
    const token = (await ask(f.socket, '/v1/token')).json.access_token as string;
    for (const text of [status.text, metrics.text]) {
      assert.ok(!text.includes(token));
      assert.ok(!text.includes(DEMO_CREDENTIALS.clientSecret));
    }
    const cli = await runCli(['status', '--config', f.configPath]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /default \(eta-ereceipt\): fresh/);
  });

  it('makes the socket 0660 in a 0750 directory and the state files private', () => {
    assert.equal(statSync(f.socket).mode & 0o777, 0o660);
    assert.equal(statSync(join(f.dir, 'run')).mode & 0o777, 0o750);
    for (const name of readdirSync(f.stateDir)) {
      assert.equal(statSync(join(f.stateDir, name)).mode & 0o077, 0, `${name} is private`);
    }
  });

  it('forced refresh replaces a rejected token once, then limits', async () => {
    const current = (await ask(f.socket, '/v1/token')).json.access_token as string;
    const before = f.emulator.stats().issued;
    const answers = await Promise.all(Array.from({ length: 10 }, () => forceRefresh(f.socket, current, { account: 'default' })));
    assert.ok(answers.every((a) => a.status === 200), answers.map((a) => a.status).join());
    const fresh = answers[0]!.json.access_token as string;
    assert.notEqual(fresh, current);
    assert.equal(f.emulator.stats().issued - before, 1, 'one login shared by all');
    const limited = await forceRefresh(f.socket, fresh);
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) >= 1);
  });

  it('keeps secrets and tokens out of the logs and the state files', async () => {
    const token = (await ask(f.socket, '/v1/token')).json.access_token as string;
    const secrets = [DEMO_CREDENTIALS.clientSecret, DEMO_CREDENTIALS.presharedKey, token];
    const bytes = stateBytes(f);
    for (const s of secrets) {
      assert.ok(!f.agent.output.includes(s), 'log has a secret');
      assert.ok(!bytes.includes(Buffer.from(s)), 'state files hold a secret in plain text');
    }
    assert.match(f.agent.output, /"msg":"login/, 'the log is there and has login lines');
  });
});

describe('agent: restarts and outages', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture({ lifetimeS: 3 });
    f.writeConfig({ backoff: { initialS: 0.5, maxS: 2 } });
    assert.equal((await f.provision()).code, 0);
  });
  after(() => f.cleanup());

  it('serves the stored token after kill -9 without a login, even with the emulator down', async () => {
    await f.emulator.stop();
    await f.emulator.start();
    f.emulator.setFaults({ lifetimeS: 3600 });
    f.agent.start();
    await f.agent.ready();
    const first = await ask(f.socket, '/v1/token');
    assert.equal(first.status, 200);
    f.emulator.resetStats();
    await f.agent.kill9();
    await f.agent.restart();
    const again = await ask(f.socket, '/v1/token');
    assert.equal(again.json.access_token, first.json.access_token);
    assert.equal(f.emulator.stats().requests, 0, 'no login after restart');

    await f.agent.kill9();
    await f.emulator.stop();
    await f.agent.restart();
    const offline = await ask(f.socket, '/v1/token');
    assert.equal(offline.status, 200, offline.text);
    assert.equal(offline.json.access_token, first.json.access_token);
    await f.agent.kill9();
    await f.emulator.start();
    f.emulator.clearFaults();
  });

  it('serves a valid token while the emulator is down, answers 503 after expiry, and recovers within seconds', async () => {
    rmSync(f.stateDir, { recursive: true, force: true }); // drop the hour-long token of the test before
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
    // Tokens live 3 s here; the agent refreshes them about every 2 s.
    const t0 = await waitFor('a token', async () => {
      const r = await ask(f.socket, '/v1/token?min_ttl=1');
      return r.status === 200 ? r : undefined;
    });
    await f.emulator.stop();
    const during = await ask(f.socket, '/v1/token?min_ttl=0');
    assert.equal(during.status, 200, 'still valid: served');
    const down = await waitFor('a 503 once the token expired', async () => {
      const r = await ask(f.socket, '/v1/token?min_ttl=0');
      return r.status === 503 ? r : undefined;
    }, 10_000);
    assert.equal(down.json.error, 'token_unavailable');
    assert.equal(down.json.reason, 'upstream_unavailable');
    assert.ok(Number(down.headers['retry-after']) >= 1);
    assert.equal(down.json.retry_after, Number(down.headers['retry-after']));
    assert.notEqual(t0.json.access_token, undefined);
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 503);
    assert.deepEqual(health.json.failing, ['default']);

    await f.emulator.start();
    const back = Date.now();
    await waitFor('recovery', async () => ((await ask(f.socket, '/v1/token?min_ttl=0')).status === 200 ? true : undefined), 10_000);
    const recoveryMs = Date.now() - back;
    assert.ok(recoveryMs < 5_000, `recovered in ${recoveryMs} ms`);
    console.log(`# recovery after the emulator came back: ${recoveryMs} ms`);
    await f.agent.stop();
  });
});

describe('agent: cold burst', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    f.emulator.setFaults({ latencyMs: 400 }); // the first login is still in flight when the burst arrives
    assert.equal((await f.provision()).code, 0);
  });
  after(() => f.cleanup());

  it('makes exactly one login for hundreds of concurrent requests on a cold agent', async () => {
    f.agent.start();
    await waitFor('the socket', async () => (await ask(f.socket, '/v1/health')).status > 0);
    const answers = await Promise.all(Array.from({ length: 500 }, () => ask(f.socket, '/v1/token')));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    assert.equal(new Set(answers.map((a) => a.json.access_token)).size, 1);
    assert.equal(f.emulator.stats().requests, 1, 'one login for 500 requests');
    console.log(`# cold burst: 500 concurrent requests, ${f.emulator.stats().requests} login`);
  });
});

describe('agent: rejected credentials', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    assert.equal((await f.provision({ ...DEMO_CREDENTIALS, presharedKey: 'wrong-key' })).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('answers 503 credentials_rejected naming invalid_presharedkey, and does not hammer', async () => {
    const r = await waitFor('a rejection', async () => {
      const a = await ask(f.socket, '/v1/token');
      return a.json.reason === 'credentials_rejected' ? a : undefined;
    });
    assert.equal(r.status, 503);
    assert.match(String(r.json.message), /invalid_presharedkey/);
    assert.ok(Number(r.headers['retry-after']) >= 240, 'tells the till to come back in minutes');
    for (let i = 0; i < 100; i++) await ask(f.socket, '/v1/token');
    await new Promise((res) => setTimeout(res, 1_500));
    assert.equal(f.emulator.stats().requests, 1, 'one login attempt only');
    const status = await runCli(['status', '--json', '--config', f.configPath]);
    assert.equal(status.code, 1, 'status exits 1 while an account has no token');
    assert.equal(JSON.parse(status.stdout).accounts.default.last_error.reason, 'credentials_rejected');
  });

  it('logs in again at once when provisioning fixes the credentials', async () => {
    const bad = await f.provision({ ...DEMO_CREDENTIALS, clientSecret: 'also-wrong' }, []);
    assert.equal(bad.code, 1, 'verification refuses wrong credentials');
    assert.match(bad.stderr, /verification failed, nothing stored: .*invalid_clientsecret/);
    const good = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(good.code, 0, good.stderr);
    const r = await ask(f.socket, '/v1/token');
    assert.equal(r.status, 200, r.text);
  });

  it('never logs the wrong or right secrets', () => {
    for (const s of ['wrong-key', DEMO_CREDENTIALS.clientSecret, DEMO_CREDENTIALS.presharedKey, 'also-wrong']) {
      assert.ok(!f.agent.output.includes(s));
    }
  });
});

describe('agent: lifecycle', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('reloads the config on SIGHUP, keeps running on a bad one, and stops cleanly on SIGTERM', async () => {
    assert.equal((await ask(f.socket, '/v1/token')).status, 200);
    f.writeConfig({ bogus: true });
    f.agent.child!.kill('SIGHUP');
    await waitFor('the refusal in the log', () => f.agent.output.includes('config reload refused') || undefined);
    assert.match(f.agent.output, /accounts\.default: unknown key \\"bogus\\"/);
    assert.equal((await ask(f.socket, '/v1/token')).status, 200, 'still serving');

    f.writeConfig({ identity: { posserial: 'OTHER-SERIAL' } });
    f.agent.child!.kill('SIGHUP');
    const rejected = await waitFor('the new identity to be used', async () => {
      const a = await ask(f.socket, '/v1/token');
      return a.json.reason === 'credentials_rejected' ? a : undefined;
    });
    assert.match(String(rejected.json.message), /invalid_posserial/);

    f.writeConfig();
    f.agent.child!.kill('SIGHUP');
    await waitFor('a token again', async () => ((await ask(f.socket, '/v1/token')).status === 200 ? true : undefined));

    assert.equal(await f.agent.stop(), 0);
  });

  it('refuses to start with a bad config, naming file and key', async () => {
    f.writeConfig({ identityUrl: 'http://id.eta.gov.eg' });
    const r = await runCli(['run', '--config', f.configPath]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`invalid config ${f.configPath.replace(/[.]/g, '\\.')}`));
    assert.match(r.stderr, /accounts\.default\.identityUrl: expected https:\/\//);
    f.writeConfig();
  });

  it('replaces a stale socket left by a killed agent, and refuses to steal a live one', async () => {
    f.agent.start();
    await f.agent.ready();
    const other = await runCli(['run', '--config', f.configPath]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /already listening/);
    await f.agent.kill9();
    await f.agent.restart();
    assert.equal((await ask(f.socket, '/v1/token')).status, 200);
  });

  it('gives usage errors exit code 2 and help exit code 0', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli(['token', '--bogus'])).code, 2);
    assert.equal((await runCli(['provision', '--config', f.configPath])).code, 2);
    for (const c of ['run', 'provision', 'token', 'status', 'emulator', 'demo']) {
      const h = await runCli([c, '--help']);
      assert.equal(h.code, 0, c);
      assert.match(h.stdout, new RegExp(`Usage: pos-token-agent ${c}`));
    }
  });
});

describe('demo', () => {
  it('prints a token fetched through the socket', async () => {
    const r = await runCli(['demo']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /GET \/v1\/token over the socket -> 200/);
    assert.match(r.stdout, /"access_token": "eyJ/);
  });
});
