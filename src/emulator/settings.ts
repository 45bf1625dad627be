/**
 * The emulator's options read once, defaults filled in from the authority's wire, bad values refused with the
 * option's name.
 */
import { type Clock, systemClock } from '../lib/clock.js';
import { type Logger, silentLogger } from '../lib/log.js';
import { DEFAULT_API_BODY_CAP } from './api.js';
import type { EmulatorAuthority, EmulatorOptions } from './types.js';
import { WIRES } from './wire/index.js';
import type { WireSpec } from './wire/types.js';

const DEFAULT_REFRESH_LIFETIME_S = 7 * 24 * 3600;

export interface EmulatorSettings {
  authority: EmulatorAuthority;
  spec: WireSpec;
  host: string;
  /** The port asked for; 0 for an ephemeral one. */
  port: number;
  clock: Clock;
  log: Logger;
  strict: boolean;
  lifetimeS: number;
  refreshLifetimeS: number;
  /** Logins per key per minute; 0 disables the limiter. */
  perMinute: number;
  /** The authority has refresh tokens (impact-gr). */
  hasRefresh: boolean;
  apiMaxBodyBytes: number;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name}: expected a non-negative integer`);
  return value;
}

/** Throws TypeError naming the option when one is invalid. */
export function readSettings(options: EmulatorOptions): EmulatorSettings {
  const authority = options.authority ?? 'eta-ereceipt';
  if (!Object.hasOwn(WIRES, authority)) throw new TypeError(`authority: expected one of ${Object.keys(WIRES).join(', ')}`);
  const spec: WireSpec = WIRES[authority];
  const clock = options.clock ?? systemClock;
  const log = (options.log ?? silentLogger).child({ component: 'emulator', authority });
  const lifetimeS = nonNegativeInt('lifetimeS', options.lifetimeS ?? spec.defaultLifetimeS);
  const refreshLifetimeS = nonNegativeInt('refreshLifetimeS', options.refreshLifetimeS ?? DEFAULT_REFRESH_LIFETIME_S);
  const perMinute = nonNegativeInt('rateLimitPerMinute', options.rateLimitPerMinute ?? spec.defaultRateLimitPerMinute);
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError('port: expected an integer from 0 to 65535');
  }
  return {
    authority,
    spec,
    host: options.host ?? '127.0.0.1',
    port,
    clock,
    log,
    strict: options.strict ?? true,
    lifetimeS,
    refreshLifetimeS,
    perMinute,
    hasRefresh: spec.paths.refresh !== undefined,
    apiMaxBodyBytes: nonNegativeInt('apiMaxBodyBytes', options.apiMaxBodyBytes ?? DEFAULT_API_BODY_CAP),
  };
}
