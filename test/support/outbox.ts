/**
 * Support for the outbox tests against the real agent: enqueueing eReceipt submissions through the socket,
 * reading entries and metrics back, a read-only integrity check of outbox.db after a kill, and what the emulator's
 * submission API received, in arrival order.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiSubmission, Emulator } from '../../src/emulator/index.js';
import { openDatabase } from '../../src/store/sqlite.js';
import { ask, type Answer } from './harness.js';

export const RECEIPTS_PATH = '/api/v1/receiptsubmissions';

/** POST /v1/outbox: one eReceipt submission carrying `uuid` and the test's own index. */
export function enqueueReceipt(socket: string, uuid: string, index: number, account = 'default'): Promise<Answer> {
  return ask(socket, '/v1/outbox', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      account,
      path: RECEIPTS_PATH,
      body: { receipts: [{ header: { uuid, receiptNumber: `R-${index}` }, index }] },
    }),
  });
}

export interface WireEntry {
  id: string;
  account: string;
  state: string;
  attempts: number;
  last_error: string | null;
}

/** GET /v1/outbox, one page: the waiting entries, then the finished ones, each in seq order; throws unless 200. */
export async function listEntries(socket: string, filter: { state?: string; account?: string } = {}, limit = 1000): Promise<WireEntry[]> {
  const q = new URLSearchParams({ ...filter, limit: String(limit) });
  const a = await ask(socket, `/v1/outbox?${q}`);
  if (a.status !== 200) throw new Error(`GET /v1/outbox?${q}: ${a.status} ${a.text}`);
  return (a.json as { entries: WireEntry[] }).entries;
}

/** The sum of a metric's samples in /metrics (every label set), 0 when absent. */
export async function metricSum(socket: string, name: string): Promise<number> {
  const a = await ask(socket, '/metrics');
  if (a.status !== 200) throw new Error(`GET /metrics: ${a.status}`);
  let sum = 0;
  for (const line of a.text.split('\n')) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[2]);
  }
  return sum;
}

/**
 * PRAGMA integrity_check of stateDir/outbox.db, opened read-only as a killed agent left it (WAL included);
 * 'absent' when there is no such file yet (an agent killed before it opened the outbox).
 */
export function outboxIntegrity(stateDir: string): string {
  const path = join(stateDir, 'outbox.db');
  if (!existsSync(path)) return 'absent';
  const db = openDatabase(path, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

/** The receipt submissions the emulator recorded (each carries one uuid here), in arrival order. */
export function receiptArrivals(emulator: Emulator): Array<ApiSubmission & { uuid: string }> {
  return emulator
    .apiSubmissions()
    .filter((s) => s.path === RECEIPTS_PATH)
    .map((s) => {
      if (s.uuids.length !== 1) throw new Error(`submission ${s.seq} carries ${s.uuids.length} uuids`);
      return { ...s, uuid: s.uuids[0]! };
    });
}

/** The sequence with consecutive repeats collapsed: [a, a, b, a] -> [a, b, a]. */
export function collapseRepeats<T>(items: readonly T[]): T[] {
  return items.filter((x, i) => i === 0 || items[i - 1] !== x);
}

/** The first arrival of each value, in order: [a, b, a, c] -> [a, b, c]. */
export function firstArrivals<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

/**
 * Requests the emulator's API has taken in but not yet recorded (arrived, still in their injected latency):
 * every request passing the bearer check is recorded once handled; those refused at the bearer check never are.
 * (Not exact with the revoke401 fault, whose requests are both recorded and counted unauthorized.)
 */
export function apiInFlight(emulator: Emulator): number {
  const api = emulator.stats().api;
  return (api?.requests ?? 0) - (api?.unauthorized ?? 0) - emulator.apiSubmissions().length;
}

/** Runs `task(i)` for i in 0..n-1 with at most `width` running at once; resolves when all have settled. */
export async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

/** What /v1/status says of the account's outbox: entries still waiting (queued or in flight). */
export async function waitingCount(socket: string, account = 'default'): Promise<number> {
  const a = await ask(socket, '/v1/status');
  if (a.status !== 200) throw new Error(`GET /v1/status: ${a.status}`);
  const outbox = (a.json.accounts as Record<string, { outbox?: { queued: number } }>)[account]?.outbox;
  if (!outbox) throw new Error(`no outbox in /v1/status for ${account}`);
  return outbox.queued;
}
