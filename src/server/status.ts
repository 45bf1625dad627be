/**
 * The token manager's view of its accounts in the socket API's shape (`/v1/status`), field by field: a field
 * the manager drops or renames is a compile error here, and one it adds does not reach the wire until the wire
 * type has it. Times become ISO 8601 UTC. And the routes that report: `/v1/status`, `/v1/health`, `/metrics`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccountStatusBody, HealthBody, IdentityStatusBody, OutboxStatusBody, StatusBody } from '../api/index.js';
import type { OutboxAccountStatus } from '../outbox/index.js';
import type { AccountStatus, IdentityStatus } from '../tokens/index.js';
import type { ServerContext } from './context.js';
import { send } from './http.js';

/** GET /v1/status: version, uptime, which config runs, and every account. Never a secret or a token. */
export function getStatus(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse): void {
  const { options, clock } = ctx;
  const body: StatusBody = {
    version: options.version,
    uptime_s: Math.floor((clock.monotonic() - ctx.startedMono) / 1000),
    ...(options.config ? { config: options.config() } : {}),
    accounts: statusBodies(ctx.source.status(), options.outbox?.view.status(), clock.now()),
  };
  send(res, 200, body);
}

/**
 * GET /v1/health: 200 while every account holds a usable token and no outbox is stalled, else 503 naming them.
 * The 503 is the health report, not an error of the request: it carries no `X-Pos-Agent-Error`.
 */
export function getHealth(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse): void {
  const noToken = ctx.source.unhealthy();
  const stalled = ctx.options.outbox?.view.stalled() ?? [];
  const failing = [...new Set([...noToken, ...stalled])];
  const body: HealthBody =
    failing.length === 0 ? { status: 'ok' } : { status: 'unhealthy', failing, ...(stalled.length ? { outbox_stalled: stalled } : {}) };
  send(res, failing.length === 0 ? 200 : 503, body);
}

/** GET /metrics: Prometheus text. */
export function getMetrics(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
  res.end(ctx.options.metrics?.render() ?? '');
}

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
