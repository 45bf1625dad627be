/**
 * `pos-token-agent demo --keep`: the emulator and the agent stay up, and the curl lines it prints work as printed:
 * a token, a receipt queued to the outbox and delivered to the emulator's API, the proxy.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CLI, waitFor } from '../support/harness.js';

const sh = (line: string): { code: number | null; stdout: string; stderr: string } => {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', line], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('demo --keep', { skip: spawnSync('curl', ['--version']).status === 0 ? false : 'curl is not installed' }, () => {
  it('gives its account the emulator API: the printed outbox and proxy lines work as printed', { timeout: 90_000 }, async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--keep'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor('the demo to be ready', () => (out.includes('Ctrl-C stops the demo.') ? true : undefined), 60_000);
      const lines = out.split('\n').filter((l) => l.startsWith('curl '));
      const [token, enqueue, state, proxy] = lines;
      assert.ok(token && enqueue && state && proxy, out);
      assert.match(sh(token).stdout, /"access_token":"eyJ/);

      assert.match(enqueue, /http:\/\/agent\/v1\/outbox -d /);
      const queued = sh(enqueue);
      assert.equal(queued.code, 0, queued.stderr);
      const { id, state: first } = JSON.parse(queued.stdout) as { id: string; state: string };
      assert.equal(first, 'queued', queued.stdout);
      const entry = await waitFor(
        'the receipt delivered to the emulator API',
        () => {
          const e = JSON.parse(sh(state.replace('/v1/outbox/ID', `/v1/outbox/${id}`)).stdout) as { state: string; response: { status: number } | null };
          return e.state === 'delivered' ? e : undefined;
        },
        30_000,
      );
      assert.equal(entry.response?.status, 202);

      const proxied = sh(proxy);
      assert.equal(proxied.code, 0, proxied.stderr);
      assert.match(proxied.stdout, /"acceptedDocuments":\[\{"uuid":"demo-receipt-2"/);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, out);
  });
});
