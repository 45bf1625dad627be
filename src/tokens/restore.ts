/**
 * Restore at start: whether a stored token (and refresh token) may be served again, and for how long.
 *
 * Within the same boot its age is measured on the boot's own time line (uptime, suspend included), which a
 * wall-clock step does not move, so a restart (kill -9, an upgrade) serves it login-free. Across a reboot only
 * the wall clock is left, and a box without an RTC (or with a dead battery) may boot with a saved or wrong
 * time until NTP runs: the token is served as the wall clock and its own `exp` allow, and marked unconfirmed,
 * so that the manager logs in at once in the background and the first login the network allows corrects it.
 * Pure: the caller passes the times in.
 */
import { decodeJwtClaims } from '../authorities/index.js';
import type { BootTime } from '../lib/clock.js';
import type { StoredToken } from '../store/index.js';
import type { HeldRefresh, HeldToken } from './account.js';
import { refreshDelayMs } from './policy.js';

/** Clock skew tolerated between when a token was obtained and the wall clock at restore. */
const RESTORE_SKEW_MS = 5_000;

export interface RestoreContext {
  fingerprint: string;
  /** Wall clock now. */
  wall: number;
  /** The token time line now (where the restored deadlines are placed). */
  now: number;
  boot: BootTime | undefined;
  random: () => number;
}

export type RestoreDecision =
  | { ok: true; token: HeldToken; refresh?: HeldRefresh; acrossReboot: boolean; leftMs: number }
  | { ok: false; why: string; refresh?: HeldRefresh };

export function decideRestore(stored: StoredToken, ctx: RestoreContext): RestoreDecision {
  const refresh = restoredRefresh(stored, ctx);
  const ageByBoot = sameBootAge(stored, ctx.boot);
  const why = rejection(stored, ctx, ageByBoot);
  if (why) return { ok: false, why, ...(refresh ? { refresh } : {}) };
  const lifetimeMs = stored.lifetimeS * 1000;
  let leftMs: number;
  let ageMs: number;
  if (ageByBoot !== undefined) {
    ageMs = ageByBoot;
    leftMs = statedLifetimeMs(stored) - ageByBoot;
  } else {
    let expiresAtWall = stored.expiresAt;
    const exp = decodeJwtClaims(stored.accessToken)?.exp;
    if (typeof exp === 'number') expiresAtWall = Math.min(expiresAtWall, exp * 1000);
    ageMs = ctx.wall - stored.obtainedAt;
    leftMs = expiresAtWall - ctx.wall;
  }
  const token: HeldToken = {
    accessToken: stored.accessToken,
    tokenType: stored.tokenType,
    ...(stored.scope !== undefined ? { scope: stored.scope } : {}),
    lifetimeMs,
    expiresAt: ctx.now + leftMs,
    refreshAt: ctx.now + refreshDelayMs(lifetimeMs, ctx.random) - ageMs,
  };
  return { ok: true, token, ...(refresh ? { refresh } : {}), acrossReboot: ageByBoot === undefined, leftMs };
}

function restoredRefresh(stored: StoredToken, ctx: RestoreContext): HeldRefresh | undefined {
  if (stored.refreshToken === undefined || stored.refreshExpiresAt === undefined) return undefined;
  if (stored.configFingerprint !== ctx.fingerprint) return undefined;
  if (ctx.wall >= stored.refreshExpiresAt || ctx.wall < stored.obtainedAt - RESTORE_SKEW_MS) return undefined;
  return { refreshToken: stored.refreshToken, accessToken: stored.accessToken, expiresAtWall: stored.refreshExpiresAt };
}

/** The token's age on this boot's time line, when it was obtained in this boot. */
function sameBootAge(stored: StoredToken, boot: BootTime | undefined): number | undefined {
  if (!boot || stored.bootId !== boot.id || stored.bootUptimeMs === undefined) return undefined;
  return boot.uptimeMs >= stored.bootUptimeMs ? boot.uptimeMs - stored.bootUptimeMs : undefined;
}

function rejection(t: StoredToken, ctx: RestoreContext, ageByBoot: number | undefined): string | undefined {
  if (t.configFingerprint !== ctx.fingerprint) return 'the account config changed since it was obtained';
  if (ageByBoot !== undefined) {
    return ageByBoot >= statedLifetimeMs(t) ? 'expired: its lifetime has passed since it was obtained in this boot' : undefined;
  }
  if (ctx.wall < t.obtainedAt - RESTORE_SKEW_MS) {
    return 'the wall clock reads earlier than when the token was obtained; the clock cannot be trusted';
  }
  if (ctx.wall >= t.expiresAt) return 'expired by the wall clock';
  const exp = decodeJwtClaims(t.accessToken)?.exp;
  if (typeof exp === 'number' && ctx.wall >= exp * 1000) return "expired by the token's own exp";
  return undefined;
}

/** The shorter of the lifetime the authority stated and, for a JWT, exp - iat (both clock-free). */
function statedLifetimeMs(t: StoredToken): number {
  const claims = decodeJwtClaims(t.accessToken);
  const lifetime = t.lifetimeS * 1000;
  if (typeof claims?.exp !== 'number' || typeof claims.iat !== 'number') return lifetime;
  return Math.min(lifetime, (claims.exp - claims.iat) * 1000);
}
