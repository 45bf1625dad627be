/**
 * Logins per simulated day: the real token manager and SQLite store on a FakeClock, against a scripted
 * authority that answers one-hour tokens. A till asks for a token (min_ttl 60) every minute for 24 hours;
 * the figure is how many times the manager logged in. Nothing sleeps: the clock is advanced.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Authority, LoginRequest, LoginResult } from '../src/authorities/index.js';
import { parseConfig } from '../src/authorities/index.js';
import { FakeClock, flushMicrotasks } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/log.js';
import { openStore } from '../src/store/index.js';
import { createTokenManager } from '../src/tokens/index.js';

const LIFETIME_S = 3600;
const DAY_MS = 24 * 3600 * 1000;
const ASK_EVERY_MS = 60_000;

class OneHourAuthority implements Authority {
  readonly name = 'eta-ereceipt';
  readonly credentialFields = [];
  logins = 0;
  async login(_req: LoginRequest): Promise<LoginResult> {
    this.logins++;
    return { ok: true, token: { accessToken: `tok-${this.logins}`, tokenType: 'Bearer', expiresInS: LIFETIME_S, scope: 'InvoicingAPI' } };
  }
}

/** A small seeded PRNG (mulberry32), so that a run's jitter can be repeated. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DayResult {
  logins: number;
  requests: number;
  failedRequests: number;
}

export async function simulateDay(seed: number): Promise<DayResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pta-bench-day-'));
  const store = openStore({ dir });
  store.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 's', presharedKey: 'k' });
  const clock = new FakeClock();
  const authority = new OneHourAuthority();
  const { accounts } = parseConfig(
    { accounts: { default: { authority: 'eta-ereceipt', identityUrl: 'https://id.example', identity: { posserial: 'SN-1' } } } },
    'bench',
  );
  const manager = createTokenManager(
    { store, authority: () => authority, log: silentLogger, clock, random: seeded(seed) },
    accounts,
  );
  let requests = 0;
  let failedRequests = 0;
  try {
    manager.start();
    await flushMicrotasks();
    for (let t = 0; t < DAY_MS; t += ASK_EVERY_MS) {
      await clock.advance(ASK_EVERY_MS);
      const answer = await manager.getToken('default', 60);
      requests++;
      if (!answer.ok) failedRequests++;
    }
    return { logins: authority.logins, requests, failedRequests };
  } finally {
    await manager.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
