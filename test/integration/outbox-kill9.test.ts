/**
 * The outbox's promise under kill -9, end to end: the real CLI agent, its socket, its SQLite files and the bundled
 * eta-ereceipt emulator. A thousand receipts are acknowledged while the API answers 503, the API comes back, the
 * agent is killed with a delivery in flight, and after a restart every receipt reaches the authority once, in the
 * order the till handed them over; only the one in flight at the kill may arrive twice.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ask, fixture, waitFor, type Fixture } from '../support/harness.js';
import {
  apiInFlight,
  collapseRepeats,
  enqueueReceipt,
  firstArrivals,
  listEntries,
  metricSum,
  outboxIntegrity,
  pool,
  receiptArrivals,
  waitingCount,
} from '../support/outbox.js';

const ENTRIES = 1_000;
const CONCURRENCY = 16;
/** Delivered before the kill: enough that the kill lands deep inside a long run of deliveries. */
const KILL_AFTER = 300;

describe('outbox: 1,000 entries through an outage and a kill -9', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: f.emulator.url }, { logLevel: 'info' });
    const p = await f.provision();
    assert.equal(p.code, 0, p.stderr);
  });
  after(() => f.cleanup());

  it(`${ENTRIES} entries acknowledged with the API down are all delivered after a kill -9 mid-delivery: in enqueue order, at most one sent twice, outbox.db intact`, async () => {
    // Proves: a 202 means durably stored and delivered eventually (kill -9 included); one lane delivers in the
    // order of enqueue; a kill costs at most one resend (the entry in flight); the file survives the kill.
    // Fails when: an acknowledged entry is missing or not delivered, the authority saw them out of order or saw
    // any entry but the one in flight twice, the resend counter says more, or integrity_check is not ok.
    const t0 = Date.now();
    f.emulator.setApiFaults({ fail5xx: 1_000_000 });
    f.agent.start();
    await f.agent.ready();

    // Enqueue, 16 at a time. `events` orders sends and acknowledgements: an entry acknowledged before another
    // was sent must come before it in the outbox.
    let events = 0;
    const uuids: string[] = [];
    const ids: string[] = [];
    const sentAt: number[] = [];
    const ackAt: number[] = [];
    await pool(ENTRIES, CONCURRENCY, async (i) => {
      uuids[i] = randomUUID();
      sentAt[i] = events++;
      const a = await enqueueReceipt(f.socket, uuids[i]!, i);
      assert.equal(a.status, 202, `entry ${i}: ${a.text}`);
      assert.equal(a.json.state, 'queued');
      ids[i] = String(a.json.id);
      ackAt[i] = events++;
    });
    const enqueueMs = Date.now() - t0;

    // All queued (the head may be between two 503s, in state sending: wait for it to be queued again).
    const queued = await waitFor('all entries queued', async () => {
      const list = await listEntries(f.socket, { state: 'queued' });
      return list.length === ENTRIES ? list : undefined;
    });
    const order = queued.map((e) => e.id);
    assert.deepEqual(new Set(order), new Set(ids), 'the queued entries are the acknowledged ones');
    const position = new Map(order.map((id, p) => [id, p]));
    for (let b = 0; b < ENTRIES; b++) {
      for (let a = 0; a < ENTRIES; a++) {
        if (ackAt[a]! < sentAt[b]!) {
          assert.ok(position.get(ids[a]!)! < position.get(ids[b]!)!, `entry ${a} was acknowledged before ${b} was sent, so it goes first`);
        }
      }
    }
    const uuidOf = new Map(ids.map((id, i) => [id, uuids[i]!]));
    const enqueueOrder = order.map((id) => uuidOf.get(id)!);
    const refusedDuringOutage = receiptArrivals(f.emulator).length;
    assert.ok(receiptArrivals(f.emulator).every((r) => r.status === 503 && r.uuid === enqueueOrder[0]), 'during the outage only the head was tried');

    // The API comes back, a little slow; the head's backoff is lifted so delivery starts now.
    f.emulator.clearApiFaults();
    f.emulator.setApiFaults({ latencyMs: 5 });
    // A head caught in flight (409, sending) may still get a 503 taken before the faults were cleared and go
    // back to its backoff: ask again until the retry is taken (200) or the head is delivered.
    await waitFor('the head sent without its backoff', async () => {
      const kick = await ask(f.socket, `/v1/outbox/${order[0]}/retry`, { method: 'POST' });
      if (kick.status === 200 || kick.json.state === 'delivered') return true;
      assert.equal(kick.json.state, 'sending', kick.text);
      return undefined;
    });
    const backAt = Date.now();
    await waitFor(`${KILL_AFTER} delivered`, () => receiptArrivals(f.emulator).filter((r) => r.status === 202).length >= KILL_AFTER, 30_000);

    // Kill with a delivery in flight: the API turns slow, and the kill comes once a request is inside it.
    f.emulator.setApiFaults({ latencyMs: 300 });
    await waitFor('a delivery in flight', () => apiInFlight(f.emulator) > 0, 5_000);
    const deliveredBeforeKill = (await listEntries(f.socket, { state: 'delivered' })).length;
    await f.agent.kill9();
    assert.equal(outboxIntegrity(f.stateDir), 'ok', 'integrity_check of outbox.db after kill -9');
    // The request in flight is answered into a closed connection: the emulator accepts it all the same.
    await waitFor('the request in flight handled', () => apiInFlight(f.emulator) === 0, 5_000);
    const atKill = receiptArrivals(f.emulator);
    const inFlightUuid = atKill.at(-1)!.uuid;

    f.emulator.setApiFaults({ latencyMs: 5 });
    await f.agent.restart();
    // Polling the small status, not the list of a thousand entries, so the test does not slow the agent down.
    await waitFor('nothing left waiting', async () => (await waitingCount(f.socket)) === 0, 40_000);
    const doneAt = Date.now();
    const resends = await metricSum(f.socket, 'pos_token_agent_outbox_resends_total');

    const delivered = await listEntries(f.socket, { state: 'delivered' });
    assert.deepEqual(
      delivered.map((e) => e.id),
      order,
      'every acknowledged entry is delivered (the list is in enqueue order)',
    );
    const arrivals = receiptArrivals(f.emulator);
    const arrived = arrivals.map((r) => r.uuid);
    assert.deepEqual(firstArrivals(arrived), enqueueOrder, 'first arrivals at the authority in enqueue order');
    assert.deepEqual(collapseRepeats(arrived), enqueueOrder, 'an entry is sent again only right after itself (it stays the head)');
    assert.ok(arrivals.every((r) => r.fault === undefined || r.fault === 'fail5xx'), 'no other fault acted');
    const accepted = arrivals.filter((r) => r.status === 202);
    const twice = new Map<string, number>();
    for (const r of accepted) twice.set(r.uuid, (twice.get(r.uuid) ?? 0) + 1);
    const sentTwice = [...twice].filter(([, n]) => n > 1).map(([uuid]) => uuid);
    assert.ok(sentTwice.length <= 1, `at most one entry reached the working API twice; saw ${sentTwice.length}`);
    if (sentTwice.length === 1) assert.equal(sentTwice[0], inFlightUuid, 'the entry sent twice is the one in flight at the kill');
    assert.equal(arrivals.filter((r) => r.duplicate).length, sentTwice.length, 'the emulator flagged the same duplicates');
    assert.ok(resends <= 1, `pos_token_agent_outbox_resends_total after the restart: ${resends}`);
    assert.ok([...twice.values()].every((n) => n <= 2));

    const one = await ask(f.socket, `/v1/outbox/${order.at(-1)}`);
    assert.equal(one.json.state, 'delivered');
    assert.equal((one.json.response as { status: number }).status, 202);

    console.log(
      `# outbox kill -9: ${ENTRIES} enqueued in ${enqueueMs} ms (${CONCURRENCY} at a time); ${refusedDuringOutage} 503s during the outage; ` +
        `${deliveredBeforeKill} delivered before the kill; ${sentTwice.length} sent twice; resends metric ${resends}; ` +
        `all delivered ${doneAt - backAt} ms after the API came back`,
    );
  });
});

describe('outbox: an answer lost after the API accepted the entry', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    f.writeConfig({ apiUrl: f.emulator.url }, { logLevel: 'info' });
    const p = await f.provision();
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  it('is sent again once, as a counted attempt (attempts 2, the resend metric 1), even on a kept-alive connection', async () => {
    // Proves: the sender does not silently repeat a POST whose connection was reset after the request went out
    // (a reused keep-alive socket looks like a server closing an idle connection, but the API may have handled
    // it); the outbox sends it again itself, so its attempts and resend metric tell the truth.
    // Fails when: the entry reaches the API twice with attempts 1 / resends 0 (a second copy nobody counted).
    const warm = await enqueueReceipt(f.socket, randomUUID(), 0);
    assert.equal(warm.status, 202);
    await waitFor('the first entry delivered', async () => (await waitingCount(f.socket)) === 0);
    // The next delivery takes the connection just used (kept alive): the API handles it, then drops the answer.
    f.emulator.setApiFaults({ drop: 1 });
    const uuid = randomUUID();
    const a = await enqueueReceipt(f.socket, uuid, 1);
    assert.equal(a.status, 202);
    await waitFor('delivered after the lost answer', async () => (await waitingCount(f.socket)) === 0);
    const mine = receiptArrivals(f.emulator).filter((r) => r.uuid === uuid);
    assert.deepEqual(
      mine.map((r) => [r.status, r.fault ?? null, r.duplicate]),
      [
        [202, 'drop', false],
        [202, null, true],
      ],
      'accepted, its answer lost, then sent once more (a duplicate to the API)',
    );
    const entry = await ask(f.socket, `/v1/outbox/${a.json.id}`);
    assert.equal(entry.json.state, 'delivered');
    assert.equal(entry.json.attempts, 2, 'the second copy is an attempt of the outbox');
    assert.equal(await metricSum(f.socket, 'pos_token_agent_outbox_resends_total'), 1);
  });
});
