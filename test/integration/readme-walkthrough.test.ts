/**
 * The examples of docs/till-developers.md (once the README's), run as they are written:
 * - the walkthrough block ("Try it on your machine"): two bundled emulators, one agent with two accounts,
 *   `provision --stdin` and `token --account`, run with bash from the repository's folder (dist/ built), in a
 *   temporary TMPDIR. Its process group is ended afterwards whatever happened, so no emulator or agent is left.
 * - the Python client: its get_token against a real agent, with an account name that must be URL-encoded.
 * - the emulator's `--devices FILE` example: the guide's devices.json registered, each device answered as said.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, CLI, fixture, runCli, waitFor, type Fixture } from '../support/harness.js';

const REPO = resolve(import.meta.dirname, '../..');
const GUIDE_FILE = 'docs/till-developers.md';
const GUIDE = readFileSync(join(REPO, GUIDE_FILE), 'utf8');
const WALKTHROUGH_MARKER = '<!-- test/integration/readme-walkthrough.test.ts runs the next block as it is -->';
const OUTAGE_MARKER = '<!-- test/integration/readme-walkthrough.test.ts runs the next block as it is: queue, break the API, recover -->';
const LIMIT_MS = 90_000;

/** The fenced block of `language` that follows `after` in the till developers' guide. */
function blockAfter(after: string, language: string): string {
  const at = GUIDE.indexOf(after);
  assert.ok(at >= 0, `${GUIDE_FILE} has no ${JSON.stringify(after)}`);
  const open = GUIDE.indexOf(`\n\`\`\`${language}\n`, at);
  assert.ok(open >= 0, `no \`\`\`${language} block after ${JSON.stringify(after)}`);
  const start = open + `\n\`\`\`${language}\n`.length;
  const end = GUIDE.indexOf('\n```\n', start - 1);
  assert.ok(end > start, 'the block is not closed');
  return GUIDE.slice(start, end + 1);
}

const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

function jwtPayload(token: string): Record<string, unknown> {
  const parts = token.split('.');
  assert.equal(parts.length, 3, `a JWT: ${token.slice(0, 40)}`);
  return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function alive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Whether any process of the group was still there when bash had exited. */
  leftover: boolean;
}

/** Runs `script` with bash in its own process group; ends the group after LIMIT_MS, and leaves none of it behind. */
async function runScript(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pgid = child.pid!;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => alive(pgid) && process.kill(-pgid, 'SIGKILL'), LIMIT_MS);
  try {
    const [code, signal] = await new Promise<[number | null, string | null]>((done, fail) => {
      child.on('error', fail);
      child.on('close', (c, s) => done([c, s]));
    });
    return { code, signal, stdout, stderr, leftover: alive(pgid) };
  } finally {
    clearTimeout(timer);
    // The emulators and the agent are in bash's process group: ended here even when the script failed midway.
    if (alive(pgid)) {
      process.kill(-pgid, 'SIGTERM');
      const deadline = Date.now() + 5_000;
      while (alive(pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (alive(pgid)) process.kill(-pgid, 'SIGKILL');
    }
  }
}

describe('till developers\' guide: the walkthrough', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'pta-readme-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('runs as written: two emulators, two accounts provisioned, a token from each, everything stopped', async () => {
    const script = blockAfter(WALKTHROUGH_MARKER, 'sh');
    assert.match(script, /provision --account default --stdin/);
    assert.match(script, /token --account my/);
    // Each account has its API (the emulator's own port), so the outbox and the proxy work from it too.
    assert.match(script, /"identityUrl": "http:\/\/127\.0\.0\.1:18085",\n\s*"apiUrl": "http:\/\/127\.0\.0\.1:18085"/);
    assert.match(script, /"identityUrl": "http:\/\/127\.0\.0\.1:18086", "apiUrl": "http:\/\/127\.0\.0\.1:18086"/);
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    for (const inherited of ['POS_TOKEN_AGENT_CONFIG', 'NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'WATCHDOG_USEC']) delete env[inherited];
    const r = await runScript(script, REPO, env);
    assert.equal(r.code, 0, `exit ${r.code} (${r.signal ?? 'no signal'})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    const lines = r.stdout.split('\n');

    assert.match(r.stdout, /^Stored credentials for account default \(eta-ereceipt\)\. Verified with a login/m);
    assert.match(r.stdout, /^Stored credentials for account my \(myinvois\)\. Verified with a login/m);
    // `token`: the bare token of the default account, from the eReceipt emulator, for the configured device.
    const bare = lines.find((l) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(l));
    assert.ok(bare, r.stdout);
    const ereceipt = jwtPayload(bare);
    assert.equal(ereceipt.iss, 'http://127.0.0.1:18085');
    assert.equal(ereceipt.posserial, 'DEMO-POS-0001');
    // `token --account my --json` (pretty-printed), then curl's one-line answer: MyInvois on the other port.
    const pretty = /^\{\n[\s\S]*?\n\}$/m.exec(r.stdout);
    assert.ok(pretty, r.stdout);
    const answer = JSON.parse(pretty[0]) as { account: string; access_token: string; token_type: string; scope: string };
    assert.equal(answer.account, 'my');
    assert.equal(answer.token_type, 'Bearer');
    assert.equal(answer.scope, 'InvoicingAPI');
    assert.equal(jwtPayload(answer.access_token).iss, 'http://127.0.0.1:18086');
    const curled = lines.find((l) => l.startsWith('{"access_token"'));
    assert.ok(curled, r.stdout);
    assert.equal((JSON.parse(curled) as { access_token: string }).access_token, answer.access_token, 'the same token, from memory');
    // `status`
    assert.match(r.stdout, /^default \(eta-ereceipt\): fresh$/m);
    assert.match(r.stdout, /^my \(myinvois\): fresh$/m);
    // The last step stopped what it started, and removed its folder.
    assert.equal(r.leftover, false, 'an emulator or the agent outlived the walkthrough');
    assert.deepEqual(readdirSync(tmp), []);
  });
});

describe('till developers\' guide: queue receipts, break the API, recover', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'pta-outage-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('runs as written: three receipts acknowledged while the API answers 503, waiting in order, delivered once it is back', async () => {
    const script = blockAfter(OUTAGE_MARKER, 'sh');
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    for (const inherited of ['POS_TOKEN_AGENT_CONFIG', 'NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'WATCHDOG_USEC']) delete env[inherited];
    const r = await runScript(script, REPO, env);
    assert.equal(r.code, 0, `exit ${r.code} (${r.signal ?? 'no signal'})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    const lines = r.stdout.split('\n');
    assert.match(r.stdout, /^Stored credentials for account default \(eta-ereceipt\)\. Verified with a login/m);
    // Acknowledged while the API is down: queued, one behind the other.
    const acks = lines.filter((l) => l.startsWith('{"id"')).map((l) => JSON.parse(l) as { id: string; state: string; position: number });
    assert.deepEqual(acks.map((a) => [a.state, a.position]), [['queued', 1], ['queued', 2], ['queued', 3]], r.stdout);
    // While it is down: all three still queued (the first tried, with the API's 503), and status says so.
    const listed = (id: string): string[] => lines.filter((l) => l.startsWith(`${id}  default  `));
    for (const a of acks) assert.equal(listed(a.id).length, 2, `listed before and after the recovery:\n${r.stdout}`);
    assert.match(listed(acks[0]!.id)[0]!, /queued/);
    assert.match(listed(acks[0]!.id)[0]!, /503/);
    assert.match(listed(acks[2]!.id)[0]!, /queued/);
    assert.match(r.stdout, /outbox: +3 queued, oldest \d+ s, last error: 503 from the API/);
    // `outbox retry` of the first: sent now, not after its backoff.
    assert.match(r.stdout, new RegExp(`^${acks[0]!.id}: queued for account default; it is sent in its turn, now if it is next`, 'm'));
    // Once it is back: delivered, and the API saw the 503s, then the three receipts once each, in order.
    for (const a of acks) assert.match(listed(a.id)[1]!, /delivered/);
    const submissions = JSON.parse(lines.find((l) => l.startsWith('{"submissions"'))!) as { submissions: Array<{ status: number; uuids: string[] }> };
    const accepted = submissions.submissions.filter((x) => x.status === 202);
    assert.deepEqual(accepted.map((x) => x.uuids), [['receipt-1'], ['receipt-2'], ['receipt-3']]);
    assert.ok(submissions.submissions.some((x) => x.status === 503), 'the API answered 503 first');
    assert.ok(submissions.submissions.findIndex((x) => x.status === 202) > submissions.submissions.findLastIndex((x) => x.status === 503));
    assert.equal(r.leftover, false, 'the emulator or the agent outlived the block');
    assert.deepEqual(readdirSync(tmp), []);
  });

  it('the emulator\'s fault examples use the port of its emulator', () => {
    const script = blockAfter(OUTAGE_MARKER, 'sh');
    assert.match(script, /emulator --authority eta-ereceipt --port 18087 /);
    const faults = [...GUIDE.matchAll(/curl [^\n]*?(?:localhost|127\.0\.0\.1):(\d+)\/_emulator/g)].map((m) => m[1]);
    assert.ok(faults.length >= 10, `the fault examples: ${faults.length}`);
    assert.deepEqual([...new Set(faults)], ['18087']);
  });
});

describe('till developers\' guide: the Python client', { skip: spawnSync('python3', ['--version']).status === 0 ? false : 'python3 is not installed' }, () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('get_token answers the token; a name that needs URL-encoding reaches the agent encoded', async () => {
    const client = blockAfter('**Python 3**', 'python');
    assert.match(client, /^SOCKET = "\/run\/pos-token-agent\/agent\.sock"$/m);
    const program = [
      client.replace(/^SOCKET = .*$/m, `SOCKET = ${JSON.stringify(f.socket)}`),
      'print(get_token())',
      'try:',
      '    get_token("a b&min_ttl=1")',
      'except RuntimeError as e:',
      '    print("refused:", e)',
      '',
    ].join('\n');
    const current = await ask(f.socket, '/v1/token');
    assert.equal(current.status, 200, current.text);
    // Not spawnSync: the emulator runs in this process and must keep answering.
    const py = await runScript(`exec python3 -c ${shellQuote(program)}`, REPO, process.env);
    assert.equal(py.code, 0, py.stderr);
    const [token, refused] = py.stdout.trim().split('\n');
    assert.equal(token, current.json.access_token);
    // Sent as account=a+b%26min_ttl%3D1: one account parameter, which the agent refuses as a name.
    assert.match(refused ?? '', /^refused: bad_request: account must be/);
  });
});

describe('till developers\' guide: sending a receipt through the outbox and the proxy (Python and TypeScript, as written)', () => {
  let f: Fixture;
  let tmp: string;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: f.emulator.url });
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
    tmp = mkdtempSync(join(tmpdir(), 'pta-readme-'));
  });
  after(async () => {
    await f.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  const delivered = (uuid: string) =>
    waitFor(`${uuid} delivered`, () => (f.emulator.apiSubmissions().some((s) => s.uuids.includes(uuid) && s.status === 202) ? true : undefined));

  it('Python: submit_receipt queues it once (the same key again is the same entry) and it is delivered', { skip: spawnSync('python3', ['--version']).status === 0 ? false : 'python3 is not installed' }, async () => {
    const client = blockAfter('**Python 3**', 'python').replace(/^SOCKET = .*$/m, `SOCKET = ${JSON.stringify(f.socket)}`);
    const outbox = blockAfter('**Python 3** (with `_ask`', 'python');
    const program = [
      client,
      outbox,
      'r = {"header": {"uuid": "readme-py-1", "receiptNumber": "R-1"}}',
      'first = submit_receipt(r)',
      'print(first, submit_receipt(r))',
      'print(outbox_entry(first)["account"])',
      '',
    ].join('\n');
    const py = await runScript(`exec python3 -c ${shellQuote(program)}`, REPO, process.env);
    assert.equal(py.code, 0, py.stderr);
    const [ids, account] = py.stdout.trim().split('\n');
    const [a, b] = ids!.split(' ');
    assert.match(a!, /^[0-9a-f-]{36}$/);
    assert.equal(b, a, 'the receipt UUID as key: enqueued once');
    assert.equal(account, 'default');
    await delivered('readme-py-1');
  });

  it('TypeScript: submitReceipt queues it and it is delivered; submissionDetails reaches the API through the proxy', async () => {
    const client = blockAfter('**TypeScript / Node** (no dependencies)', 'ts').replace(/^const SOCKET = .*$/m, `const SOCKET = ${JSON.stringify(f.socket)};`);
    const outbox = blockAfter('**TypeScript / Node** (with `ask`', 'ts');
    const file = join(tmp, 'till.mts'); // an ES module, as the guide's code is
    writeFileSync(
      file,
      [client, outbox, 'const id = await submitReceipt({ header: { uuid: "readme-ts-1" } });', 'console.log(id);', 'console.log(JSON.stringify(await submissionDetails("S-1")));', ''].join('\n'),
    );
    const ts = await runScript(`exec ${shellQuote(process.execPath)} --import tsx ${shellQuote(file)}`, REPO, process.env);
    assert.equal(ts.code, 0, ts.stderr);
    const [id, details] = ts.stdout.trim().split('\n');
    assert.match(id!, /^[0-9a-f-]{36}$/);
    // The emulator's generic API answers what reached it: the path under apiUrl, with the account's token.
    assert.equal(JSON.parse(details!).path, '/api/v1/receiptsubmissions/S-1/details');
    await delivered('readme-ts-1');
  });
});

describe('till developers\' guide: the emulator\'s --devices example', () => {
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'pta-devices-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const login = async (url: string, form: Record<string, string>, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${url}/connect/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...form }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('registers the example devices beside the demo one: the active one logs in with its values, the blocked one is refused', async () => {
    const file = join(tmp, 'devices.json');
    const example = blockAfter('`devices.json`:', 'json');
    writeFileSync(file, example);
    const devices = JSON.parse(example) as Array<Record<string, unknown>>;
    assert.equal(devices.length, 2);
    const child = spawn(process.execPath, [CLI, 'emulator', '--devices', file, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const url = await waitFor('the emulator', () => {
        if (child.exitCode !== null) throw new Error(`the emulator exited ${child.exitCode}`);
        return /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      });
      const [till1, till2] = devices as [Record<string, string>, Record<string, string>];
      const ok = await login(url, { client_id: till1.clientId!, client_secret: (till1.clientSecrets as unknown as string[])[0]! }, {
        posserial: till1.posserial!, pososversion: till1.pososversion!, posmodelframework: till1.posmodelframework!, presharedkey: till1.presharedKey!,
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const otherOs = await login(url, { client_id: till1.clientId!, client_secret: (till1.clientSecrets as unknown as string[])[0]! }, {
        posserial: till1.posserial!, pososversion: 'Debian GNU/Linux 11', posmodelframework: till1.posmodelframework!, presharedkey: till1.presharedKey!,
      });
      assert.equal(otherOs.body.error, 'invalid_pososversion');
      const blocked = await login(url, { client_id: till2.clientId!, client_secret: (till2.clientSecrets as unknown as string[])[0]! }, { posserial: till2.posserial! });
      assert.deepEqual([blocked.body.error, blocked.body.error_description], ['unauthorized_client', 'User blocked']);
      const listed = (await (await fetch(`${url}/_emulator/devices`, { signal: AbortSignal.timeout(10_000) })).json()) as { devices: Array<{ clientId: string }> };
      assert.deepEqual(listed.devices.map((d) => d.clientId).slice(1), [till1.clientId, till2.clientId], 'after the demo device');
      assert.ok(!JSON.stringify(listed).includes('till-1-secret'), 'listed without secrets');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    }
  });

  it('a wrong entry stops it at start, naming the file\'s entry and key', async () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify([{ clientId: 'a', clientSecrets: ['s'] }]));
    const r = await runCli(['emulator', '--devices', file, '--port', '0']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim(), `pos-token-agent: invalid principals in ${file}: [0].posserial: expected a string, got undefined`);
    writeFileSync(file, JSON.stringify([{ clientId: 'b', clientSecrets: ['a-secret'], posserial: 'S' }]));
    const sepay = await runCli(['emulator', '--authority', 'sepay', '--devices', file, '--port', '0']);
    assert.equal(sepay.code, 1);
    assert.match(sepay.stderr, /: \[0\]\.posserial: unknown key$/m);
    assert.ok(!sepay.stderr.includes('a-secret'));
  });
});
