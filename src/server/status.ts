/**
 * The token manager's view of its accounts in the socket API's shape (`/v1/status`), field by field: a field
 * the manager drops or renames is a compile error here, and one it adds does not reach the wire until the wire
 * type has it. Times become ISO 8601 UTC.
 */
import type { AccountStatusBody, IdentityStatusBody, OutboxStatusBody } from '../api/index.js';
import type { OutboxAccountStatus } from '../outbox/index.js';
import type { AccountStatus, IdentityStatus } from '../tokens/index.js';

/** Every account's token status, with its outbox where it has one (`nowWall` ages the oldest entry). */
export function statusBodies(
  accounts: Record<string, AccountStatus>,
  outbox?: Record<string, OutboxAccountStatus>,
  nowWall = Date.now(),
): Record<string, AccountStatusBody> {
  const out: Record<string, AccountStatusBody> = {};
  for (const [name, a] of Object.entries(accounts)) {
    const o = outbox?.[name];
    out[name] = o ? { ...accountStatusBody(a), outbox: outboxStatusBody(o, nowWall) } : accountStatusBody(a);
  }
  return out;
}

export function outboxStatusBody(o: OutboxAccountStatus, nowWall: number): OutboxStatusBody {
  return {
    queued: o.queued,
    oldest_queued_s: o.oldestQueuedAtWall === null ? null : Math.max(0, Math.floor((nowWall - o.oldestQueuedAtWall) / 1000)),
    last_delivered_at: iso(o.lastDeliveredAtWall),
    last_error: o.lastError,
  };
}

export function accountStatusBody(a: AccountStatus): AccountStatusBody {
  return {
    authority: a.authority,
    state: a.state,
    expires_at: iso(a.expiresAtWall),
    last_login_at: iso(a.lastLoginAtWall),
    last_success_at: iso(a.lastSuccessAtWall),
    last_error: a.lastError ? { reason: a.lastError.reason, message: a.lastError.message, at: iso(a.lastError.atWall) } : null,
    identity: identityBody(a.identity),
    next_attempt_in_s: a.nextAttemptInS,
  };
}

function identityBody(i: IdentityStatus): IdentityStatusBody {
  return {
    posserial: i.posserial,
    pososversion: i.pososversion,
    posmodelframework: i.posmodelframework,
    profile: i.profile,
    sources: i.sources,
    degraded: i.degraded,
    problems: i.problems,
    read_at: iso(i.readAtWall),
  };
}

/** Wall-clock ms as ISO 8601 UTC (null stays null). */
export function iso(wall: number): string;
export function iso(wall: number | null): string | null;
export function iso(wall: number | null): string | null {
  return wall === null ? null : new Date(wall).toISOString();
}
