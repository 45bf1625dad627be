/**
 * Device identity through the real CLI and the real agent: the serial-fiscal-module profile reads a
 * simulated fiscal module on a socat pseudo-terminal pair (the agent opens one end, the module
 * answers on the other). Proves: `identity --json` prints what the profiles read; the agent logs in
 * with the module's serial; when the module stops answering it logs in with the stored serial and
 * reports the identity as degraded; when the serial changes it logs the change and uses the new one;
 * with no identity at all the socket answers 503 identity_unavailable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startFakeModule, type Behaviour, type FakeModule } from '../unit/identity/fake-module.js';
import { openPtyPair, ptySkipReason, type PtyPair } from '../support/pty.js';
import { ask, DEMO_CREDENTIALS, DEMO_DEVICE, fixture, forceRefresh, runCli, waitFor, type Fixture } from '../support/harness.js';

const answer = (serial: string): Behaviour => () => ({ send: `SN=${serial}\r\n` });
const silent: Behaviour = () => 'silent';

describe('device identity through the real CLI and agent', { skip: ptySkipReason }, () => {
  let pty: PtyPair;
  let module: FakeModule | undefined;
  let f: Fixture;

  const useModule = async (behaviour: Behaviour): Promise<void> => {
    await module?.close();
    module = await startFakeModule(pty.b, behaviour);
  };

  before(async () => {
    pty = await openPtyPair();
    // The shipped profile reads ${POS_FISCAL_PORT:-/dev/ttyUSB0}; the agent and the CLI inherit this.
    process.env.POS_FISCAL_PORT = pty.a;
    f = await fixture();
    f.writeConfig({ deviceProfile: 'serial-fiscal-module', identity: { pososversion: 'os', posmodelframework: '1' } });
  });

  after(async () => {
    await f.cleanup();
    await module?.close();
    await pty.close();
  });

  test('identity --json prints the values of the manual and serial-fiscal-module profiles', async () => {
    await useModule(answer(DEMO_DEVICE.posserial));
    const serial = await runCli(['identity', '--config', f.configPath, '--json']);
    assert.equal(serial.code, 0, serial.stderr);
    const s = JSON.parse(serial.stdout) as { profile: string; values: Record<string, { value: string; source: string }> };
    assert.equal(s.profile, 'serial-fiscal-module');
    assert.equal(s.values.posserial?.value, DEMO_DEVICE.posserial);
    assert.match(s.values.posserial?.source ?? '', /serialport/);
    assert.equal(s.values.pososversion?.value, 'os');

    const manual = await runCli(['identity', '--config', f.configPath, '--json', '--profile', 'manual']);
    const m = JSON.parse(manual.stdout) as { profile: string; values: Record<string, { value: string }> };
    assert.equal(m.profile, 'manual');
    assert.equal(manual.code, 1, 'manual needs posserial in the config, and this config has none');
    assert.equal(m.values.pososversion?.value, 'os');
  });

  test('no identity at all: 503 identity_unavailable, and no login is attempted', async () => {
    await useModule(silent);
    assert.equal((await f.provision()).code, 0);
    f.emulator.resetStats();
    f.agent.start();
    await f.agent.ready();
    const r = await waitFor('identity_unavailable', async () => {
      const a = await ask(f.socket, '/v1/token');
      return a.status === 503 && a.json.reason === 'identity_unavailable' ? a : undefined;
    });
    assert.match(String(r.json.message), /posserial/);
    assert.equal(f.emulator.stats().requests, 0);
    await f.agent.stop();
  });

  test('logs in with the serial the module reports', async () => {
    await useModule(answer(DEMO_DEVICE.posserial));
    f.agent.start();
    await f.agent.ready();
    const r = await waitFor('a token', async () => {
      const a = await ask(f.socket, '/v1/token');
      return a.status === 200 ? a : undefined;
    });
    assert.ok(r.json.access_token);
    assert.equal(f.emulator.stats().lastRequestHeaders?.posserial, DEMO_DEVICE.posserial);
    const status = await ask(f.socket, '/v1/status');
    const identity = (status.json.accounts as Record<string, { identity: Record<string, unknown> }>).default!.identity;
    assert.equal(identity.posserial, DEMO_DEVICE.posserial);
    assert.match(String((identity.sources as Record<string, string>).posserial), /serialport/);
    assert.equal(identity.degraded, false);
    await f.agent.stop();
  });

  test('the module stops answering: logs in with the stored serial; status says degraded', async () => {
    await useModule(silent);
    f.agent.start();
    await f.agent.ready();
    const current = await ask(f.socket, '/v1/token');
    assert.equal(current.status, 200, 'the stored token is served at once');
    f.emulator.resetStats();
    // Force a login: the till reports the token refused.
    const refreshed = await forceRefresh(f.socket, String(current.json.access_token), { account: 'default' });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(f.emulator.stats().lastRequestHeaders?.posserial, DEMO_DEVICE.posserial, 'the stored serial was sent');
    const status = await ask(f.socket, '/v1/status');
    const identity = (status.json.accounts as Record<string, { identity: Record<string, unknown> }>).default!.identity;
    assert.equal(identity.degraded, true);
    assert.match(String((identity.problems as Record<string, string>).posserial), /no answer|did not answer|timed out/i);
    assert.match(f.agent.output, /identity source failed; using the stored value/);
    await f.agent.stop();
  });

  test('the serial changes: the agent logs the change and logs in with the new one', async () => {
    const NEW_SERIAL = 'DEMO-POS-0002';
    await useModule(answer(NEW_SERIAL));
    f.emulator.addDevice({ ...DEMO_DEVICE, posserial: NEW_SERIAL });
    f.agent.output = '';
    f.agent.start();
    await f.agent.ready();
    const current = await ask(f.socket, '/v1/token');
    f.emulator.resetStats();
    const refreshed = await forceRefresh(f.socket, String(current.json.access_token), { account: 'default' });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(f.emulator.stats().lastRequestHeaders?.posserial, NEW_SERIAL);
    const line = f.agent.output.split('\n').find((l) => l.includes('device identity changed'));
    assert.ok(line, f.agent.output);
    const logged = JSON.parse(line) as { from: string; to: string };
    assert.equal(logged.from, DEMO_DEVICE.posserial);
    assert.equal(logged.to, NEW_SERIAL);
    assert.ok(!f.agent.output.includes(DEMO_CREDENTIALS.clientSecret), 'no secret in the log');
    await f.agent.stop();
  });
});
