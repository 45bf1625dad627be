/**
 * The socket under abuse, against the real agent with its default socket limits (maxConnections 1024,
 * headersTimeoutMs 5000, idleTimeoutMs 30000): 10,000 random or malformed requests, 1,000 idle connections
 * held at once (and some past the limit), slow writers, pipelining clients that do not read, and
 * slowloris-style partial headers; afterwards the agent answers correctly and its memory and file
 * descriptors are back near idle.
 *
 * Memory bound: VmRSS at most 40 MB above the idle figure, both taken as the lowest over 3 s of settling. The
 * idle figure is that of an agent which has served a short warm-up of the same traffic (2,000 of these
 * requests, 1,100 connections opened and closed, two pipelining clients), not of a fresh process: V8 sizes its
 * heap to the load it has seen and collects the old generation lazily (with --trace-gc, the only mark-compact
 * in a whole run is the one at start-up), so a fresh agent's figure (about 87 MB here) would measure heap
 * sizing and uncollected garbage (30-60 MB after this abuse), not what the agent keeps. Against the warmed-up
 * figure, a leak of a few kilobytes per request or connection (10,000 requests, 2,000+ connections) exceeds
 * 40 MB, while V8's and malloc's normal slack stays under it: seven clean-clone runs measured +12 to +32 MB
 * (the bound was 30 MB until a CI run measured +32 MB with no leak: the figure depends on when V8 collects).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ask, fixture, waitFor, type Fixture } from '../support/harness.js';
import { openFds, rssKb, seededRandom, settledRssKb, sleep, type Random } from './support.js';

const REQUESTS = 10_000;
const CONCURRENCY = 64;
const IDLE_CONNECTIONS = 1_000;
const RSS_BOUND_KB = 40 * 1024;
const HEADERS_TIMEOUT_MS = 5_000;
const IDLE_TIMEOUT_MS = 30_000;
/** Slowloris observers kept open through the whole file: fewer than 1024 - 1000 - 1. */
const OBSERVERS = 8;

interface RawResult {
  status: number | undefined;
  head: string;
  hung: boolean;
}

/** One connection: writes the payload (then half-closes unless `keepOpen`), reads until the agent closes. */
function raw(path: string, payload: Buffer, timeoutMs = 10_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let hung = false;
    const s = connect(path, () => s.end(payload));
    const timer = setTimeout(() => {
      hung = true;
      s.destroy();
    }, timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, head: text.slice(0, 60), hung });
    });
  });
}

type Kind =
  | 'garbage'
  | 'badRequestLine'
  | 'hugeHeaders'
  | 'badMethod'
  | 'badPath'
  | 'badJson'
  | 'wrongContentType'
  | 'bodyTooLarge'
  | 'missingXPosAgent'
  | 'forbiddenHeader'
  | 'valid';

const KINDS: readonly Kind[] = [
  'garbage',
  'garbage',
  'badRequestLine',
  'hugeHeaders',
  'badMethod',
  'badPath',
  'badJson',
  'badJson',
  'wrongContentType',
  'bodyTooLarge',
  'missingXPosAgent',
  'forbiddenHeader',
  'valid',
];

/** What each kind may be answered with; no answer at all (the agent just closes) is allowed only for garbage. */
const EXPECTED: Record<Kind, readonly (number | 'none')[]> = {
  garbage: [400, 'none'],
  badRequestLine: [400, 404, 505],
  hugeHeaders: [431],
  badMethod: [400, 405],
  badPath: [400, 404],
  badJson: [400],
  wrongContentType: [415],
  bodyTooLarge: [413],
  missingXPosAgent: [412],
  forbiddenHeader: [403],
  valid: [200],
};

const AGENT = 'Host: agent\r\nX-Pos-Agent: 1\r\n';

function post(path: string, body: Buffer | string, type = 'application/json'): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\n${AGENT}Content-Type: ${type}\r\nContent-Length: ${b.length}\r\n\r\n`), b]);
}

function printable(rnd: Random, n: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@%/?';
  return Array.from({ length: n }, () => alphabet[rnd.int(0, alphabet.length - 1)]).join('');
}

function request(kind: Kind, rnd: Random): Buffer {
  switch (kind) {
    case 'garbage':
      return rnd.bytes(rnd.int(1, 600));
    case 'badRequestLine':
      return Buffer.from(
        rnd.pick([
          'GET\r\n\r\n',
          'GET /v1/token HTTP/9.9\r\n\r\n',
          'GET /v1/token HTTP/1.1 extra\r\n\r\n',
          ' / HTTP/1.1\r\n\r\n',
          'GET /v1/token HTTP/1.1\r\nNo-Colon-Header\r\n\r\n',
          `GET /v1/token HTTP/1.1\r\n${AGENT}`, // the blank line never comes: the half-close ends it
          'GET /v1/token HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
          'GET /v1/token HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
          `\r\n\r\n${printable(rnd, 20)}\r\n\r\n`,
          `GET /${printable(rnd, 10)} HTTP/1.1\r\nHost: a\r\nX-Pos-Agent: 1\r\nBad\u0001Header: x\r\n\r\n`,
        ]),
      );
    case 'hugeHeaders':
      return Buffer.from(`GET /v1/token HTTP/1.1\r\n${AGENT}X-Big: ${'a'.repeat(rnd.int(9_000, 64_000))}\r\n\r\n`);
    case 'badMethod': {
      const method = rnd.pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'POST', 'FOO', 'GETT', 'get', printable(rnd, 6).toUpperCase()]);
      const path = rnd.pick(['/v1/token', '/v1/status', '/v1/health', '/metrics']);
      return Buffer.from(`${method} ${path} HTTP/1.1\r\n${AGENT}Content-Length: 0\r\n\r\n`);
    }
    case 'badPath': {
      const path = rnd.pick([
        `/${printable(rnd, rnd.int(1, 200))}`,
        `/v1/token/${printable(rnd, 8)}`,
        '/%zz%00%ff',
        `/v1/token?min_ttl=${rnd.pick(['abc', '-5', '1e3', '99999999', '', '0x10'])}`,
        `/v1/token?account=${rnd.pick(['../etc', 'a'.repeat(65), '%00', 'x y', '.hidden'])}`,
        `/${'a'.repeat(rnd.int(1_000, 7_000))}`,
        '/v1/../v1/token/..',
        '*',
      ]);
      return Buffer.from(`GET ${path} HTTP/1.1\r\n${AGENT}\r\n`);
    }
    case 'badJson':
      return post(
        '/v1/token/refresh',
        rnd.pick<Buffer | string>([
          rnd.bytes(rnd.int(1, 200)),
          '[]',
          'null',
          '1',
          '"token"',
          '{"rejected_token": 5}',
          '{"rejected_token": ""}',
          '{"account": "../x", "rejected_token": "t"}',
          '{"account": 7, "rejected_token": "t"}',
          '{"rejected_token": "t", "min_ttl": "5"}',
          '{"rejected_token": "t", "min_ttl": -1}',
          '{}',
          '{"rejected_token": "t"',
          `${'['.repeat(5_000)}${']'.repeat(5_000)}`,
          Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
        ]),
      );
    case 'wrongContentType':
      return post('/v1/token/refresh', '{"rejected_token": "t"}', rnd.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'json']));
    case 'bodyTooLarge':
      return post('/v1/token/refresh', `{"rejected_token": "${'t'.repeat(rnd.int(17_000, 200_000))}"}`);
    case 'missingXPosAgent':
      return Buffer.from(`GET /v1/token HTTP/1.1\r\nHost: agent\r\n${rnd.pick(['', 'X-Pos-Agent: 0\r\n', 'X-Pos-Agent: true\r\n', 'X-Pos-Agent:\r\n'])}\r\n`);
    case 'forbiddenHeader':
      return Buffer.from(`GET /v1/token HTTP/1.1\r\n${AGENT}${rnd.pick(['Origin', 'Forwarded', 'X-Forwarded-For'])}: ${printable(rnd, 12)}\r\n\r\n`);
    case 'valid':
      return Buffer.from(`${rnd.pick(['GET /v1/token', 'GET /v1/token?min_ttl=120', 'GET /v1/status', 'GET /v1/health', 'GET /metrics', 'HEAD /v1/token'])} HTTP/1.1\r\n${AGENT}\r\n`);
  }
}

/** Opens `n` connections (100 at a time) and resolves once each is connected or already closed. */
async function openMany(path: string, n: number): Promise<Array<{ socket: Socket; closedAt?: number }>> {
  const out: Array<{ socket: Socket; closedAt?: number }> = [];
  for (let i = 0; i < n; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, () => {
        const entry: { socket: Socket; closedAt?: number } = { socket: connect(path) };
        out.push(entry);
        entry.socket.on('error', () => {});
        // Read whatever comes (a 408, say): unread data holds back 'end' and with it 'close'.
        entry.socket.resume();
        entry.socket.on('close', () => (entry.closedAt = Date.now()));
        return new Promise<void>((r) => {
          entry.socket.once('connect', () => r());
          entry.socket.once('close', () => r());
        });
      }),
    );
  }
  return out;
}

/** `count` requests of random kinds, CONCURRENCY at a time; what each kind was answered, and what was unexpected. */
async function abuse(path: string, count: number, rnd: Random): Promise<{ table: Record<string, Record<string, number>>; unexpected: string[] }> {
  const table: Record<string, Record<string, number>> = {};
  const unexpected: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      const kind = rnd.pick(KINDS);
      const r = await raw(path, request(kind, rnd));
      const key = r.hung ? 'hung' : r.status === undefined ? 'none' : String(r.status);
      (table[kind] ??= {})[key] = (table[kind]![key] ?? 0) + 1;
      const allowed = EXPECTED[kind] as readonly (number | string)[];
      if ((r.hung || !allowed.includes(r.status ?? 'none')) && unexpected.length < 20) {
        unexpected.push(`${kind} -> ${key} ${JSON.stringify(r.head)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { table, unexpected };
}

/** A client that sends `n` GETs in one write, does not read for `pauseMs`, then counts the 200 answers. */
function pipeliner(path: string, n: number, pauseMs: number): Promise<number> {
  return new Promise((resolve) => {
    let text = '';
    const one = `GET /v1/token?min_ttl=0 HTTP/1.1\r\n${AGENT}\r\n`;
    const s = connect(path, () => {
      s.pause();
      s.write(one.repeat(n - 1) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
      setTimeout(() => s.resume(), pauseMs);
    });
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => resolve((text.match(/HTTP\/1\.1 200 /g) ?? []).length));
  });
}

describe('reliability: the socket under abuse', () => {
  let f: Fixture;
  let pid: number;
  let idleRssKb: number;
  let idleFds: number;
  let rnd: Random;
  const observers: Array<{ openedAt: number; closedAt?: number; socket: Socket }> = [];
  const timers: NodeJS.Timeout[] = [];

  before(async () => {
    f = await fixture();
    f.writeConfig({}, { logLevel: 'info' });
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
    assert.equal((await ask(f.socket, '/v1/token')).status, 200);
    pid = f.agent.child!.pid!;
    idleFds = openFds(pid);
    const coldRssKb = await settledRssKb(pid, 2_000);
    // The warm-up (see the file comment): the same kinds of traffic, on a smaller scale.
    rnd = seededRandom('socket abuse');
    const warm = await abuse(f.socket, 2_000, rnd);
    assert.deepEqual(warm.unexpected, []);
    const conns = await openMany(f.socket, 1_100);
    for (const c of conns) c.socket.destroy();
    assert.deepEqual(await Promise.all([pipeliner(f.socket, 200, 500), pipeliner(f.socket, 200, 500)]), [200, 200]);
    await waitFor('the warm-up connections to go', () => openFds(pid) <= idleFds + 2 || undefined, 10_000);
    idleRssKb = await settledRssKb(pid, 3_000);
    console.log(`# idle agent: VmRSS ${coldRssKb} kB fresh, ${idleRssKb} kB after the warm-up; ${idleFds} fds`);
    // Slowloris observers, watched until the end of the file: partial headers, a header line a second.
    for (let i = 0; i < OBSERVERS; i++) {
      const o: (typeof observers)[number] = { openedAt: Date.now(), socket: connect(f.socket) };
      o.socket.on('error', () => {});
      o.socket.on('data', () => {});
      o.socket.on('close', () => (o.closedAt = Date.now()));
      o.socket.once('connect', () => o.socket.write('GET /v1/token HTTP/1.1\r\nHost: agent\r\n'));
      timers.push(
        setInterval(() => {
          if (!o.socket.destroyed) o.socket.write(`X-Slow-${Date.now()}: 1\r\n`);
        }, 1_000),
      );
      observers.push(o);
    }
  });
  after(async () => {
    for (const t of timers) clearInterval(t);
    for (const o of observers) o.socket.destroy();
    await f.cleanup();
  });

  it(`${REQUESTS} random and malformed requests (garbage, bad request lines, huge headers, bad methods, paths and JSON, bodies too large, no X-Pos-Agent, forbidden headers) mixed with real ones: each gets the right 4xx or a closed connection, never a 5xx or a hang, and real ones 200`, async () => {
    // Proves the parser and the handlers reject abuse precisely and cheaply while serving real clients.
    // Fails on any 5xx, any request left hanging for 10 s, a real request not answered 200, or a malformed
    // one answered with something other than its expected status.
    const t0 = Date.now();
    const { table, unexpected } = await abuse(f.socket, REQUESTS, rnd);
    console.log(`# ${REQUESTS} abusive requests in ${Date.now() - t0} ms: ${JSON.stringify(table)}`);
    const total = Object.values(table).reduce((n, byStatus) => n + Object.values(byStatus).reduce((a, b) => a + b, 0), 0);
    assert.equal(total, REQUESTS);
    assert.deepEqual(unexpected, [], 'every request got the answer its kind calls for');
    assert.equal(f.agent.child!.exitCode, null, 'the agent is still running');
    assert.equal((await ask(f.socket, '/v1/token')).status, 200);
  });

  it(`${IDLE_CONNECTIONS} idle connections held at once: a real client is still answered; past maxConnections (1024) the excess is refused; once they go, a real client is answered at once`, async () => {
    // Proves idle connections cost the agent nothing it cannot afford, the connection cap holds, and the agent
    // is fully usable again when they close. Fails if the held connections are refused below the cap, starve a
    // real client below the cap, or the agent does not answer once they are gone.
    const held = await openMany(f.socket, IDLE_CONNECTIONS);
    await sleep(300);
    assert.equal(held.filter((h) => h.closedAt !== undefined).length, 0, 'all held (the cap is 1024)');
    const t0 = Date.now();
    const real = await ask(f.socket, '/v1/token');
    assert.equal(real.status, 200, real.text);
    console.log(`# with ${IDLE_CONNECTIONS} idle connections held: a real answer in ${Date.now() - t0} ms; agent fds ${openFds(pid)}`);
    const extra = await openMany(f.socket, 100);
    await sleep(500);
    const refused = extra.filter((h) => h.closedAt !== undefined).length;
    assert.ok(refused > 0 && refused < 100, `${refused} of 100 connections past ${IDLE_CONNECTIONS} were refused`);
    for (const h of [...held, ...extra]) h.socket.destroy();
    await waitFor('the agent to drop the closed connections', () => openFds(pid) <= idleFds + OBSERVERS + 2 || undefined, 10_000);
    const again = await ask(f.socket, '/v1/token');
    assert.equal(again.status, 200, again.text);
  });

  it('slow clients: 50 writing a request a byte every 20 ms, 10 pipelining 200 requests each and not reading for 2 s: every request answered 200', async () => {
    // Proves slow writers are served once their request is complete, and that a client not reading its
    // answers (backpressure) neither loses answers nor stalls others. Fails on a missing or non-200 answer.
    const line = `GET /v1/token HTTP/1.1\r\n${AGENT}Connection: close\r\n\r\n`;
    const slowWriter = (): Promise<number | undefined> =>
      new Promise((resolve) => {
        let text = '';
        const s = connect(f.socket, () => {
          let i = 0;
          const t = setInterval(() => {
            if (s.destroyed || i >= line.length) return clearInterval(t);
            s.write(line[i++]!);
          }, 20);
        });
        s.on('data', (d: Buffer) => (text += d.toString('latin1')));
        s.on('error', () => {});
        s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) || undefined));
      });
    const [writers, pipelined] = await Promise.all([
      Promise.all(Array.from({ length: 50 }, slowWriter)),
      Promise.all(Array.from({ length: 10 }, () => pipeliner(f.socket, 200, 2_000))),
    ]);
    assert.deepEqual([...new Set(writers)], [200], 'every slow writer got 200');
    assert.deepEqual([...new Set(pipelined)], [200], 'each pipelining client got all 200 answers');
  });

  it(`afterwards: the agent answers correctly, its file descriptors are back to idle and VmRSS is within +${RSS_BOUND_KB / 1024} MB of idle`, async () => {
    // Proves the abuse left nothing behind. Fails on a wrong answer, leaked descriptors or memory growth past the bound.
    const token = await ask(f.socket, '/v1/token');
    assert.equal(token.status, 200, token.text);
    const status = await ask(f.socket, '/v1/status');
    assert.equal(status.status, 200);
    assert.equal((status.json.accounts as Record<string, { state: string }>).default?.state, 'fresh');
    const liveObservers = observers.filter((o) => o.closedAt === undefined && !o.socket.destroyed).length;
    await waitFor('descriptors back to idle', () => openFds(pid) <= idleFds + liveObservers + 2 || undefined, 10_000);
    const peak = rssKb(pid);
    const settled = await settledRssKb(pid, 3_000);
    console.log(`# VmRSS: idle ${idleRssKb} kB, right after ${peak} kB, settled ${settled} kB (+${settled - idleRssKb} kB); fds ${openFds(pid)} (idle ${idleFds})`);
    assert.ok(settled - idleRssKb <= RSS_BOUND_KB, `VmRSS ${settled} kB is ${settled - idleRssKb} kB above idle (${idleRssKb} kB)`);
  });

  it(`slowloris: a connection trickling partial headers is cut within headersTimeoutMs (${HEADERS_TIMEOUT_MS / 1000} s) + 1.5 s`, async () => {
    // Proves: the headers deadline the config promises is kept (it was ~30 s before connectionsCheckingInterval was set).
    const partial = observers;
    await waitFor('the partial-header connections to close', () => partial.every((o) => o.closedAt !== undefined) || undefined, 40_000).catch(() => {});
    const held = partial.map((o) => (o.closedAt ?? Date.now()) - o.openedAt);
    console.log(`# partial headers held for ${held.join('/')} ms`);
    assert.ok(Math.max(...held) <= HEADERS_TIMEOUT_MS + 1_500, `held for up to ${Math.max(...held)} ms`);
  });
});
