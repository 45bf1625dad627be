/**
 * The public types of the eReceipt identity-service emulator. See `index.ts` for the face.
 */
import type { JsonWebKey } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';

export type DeviceStatus = 'active' | 'blocked' | 'deactivated';

export interface EmulatorDevice {
  clientId: string;
  /** The portal issues two secrets; either works. */
  clientSecrets: string[];
  posserial: string;
  /** If set, the header must equal it; if unset any value (<= 50 chars) or absence is accepted. */
  pososversion?: string;
  /** Same rule as pososversion, <= 10 chars. */
  posmodelframework?: string;
  /** If set, header `presharedkey` must equal it; if unset any value (<= 200 chars) or absence is accepted. */
  presharedKey?: string;
  /** Scope put in the answer and the token, default "InvoicingAPI". */
  scope?: string;
  status?: DeviceStatus;
}

export interface EmulatorFaults {
  /** Delay before every answer to /connect/token. */
  latencyMs?: number;
  /** The next N token requests answer 5xx (status5xx, default 503), alternately with a JSON and an HTML body. */
  fail5xx?: number;
  status5xx?: number;
  /**
   * The next `count` token requests answer 429 with that Retry-After header value (seconds or an HTTP
   * date; any header-safe text is accepted so that clients' handling of odd values can be tested).
   */
  rateLimit?: { count: number; retryAfter: string };
  /** The next N token requests: the socket is destroyed without any answer. */
  drop?: number;
  /** The next N token requests answer 200 with, alternately, a body that is not JSON and one lacking access_token. */
  malformed?: number;
  /** Answer 400 {error, error_description}; count omitted = until faults are cleared. */
  error?: { code: string; description?: string; count?: number };
  /** Overrides expires_in / the token lifetime while set. */
  lifetimeS?: number;
}

export interface EmulatorStats {
  /** Requests to /connect/token (any method), including dropped ones. */
  requests: number;
  /** Tokens issued (200 answers carrying a real token; `malformed` answers are not counted). */
  issued: number;
  /** Token requests answered 4xx (400, 405, 413, 429). */
  rejected: number;
  /** Token requests by HTTP status ("200", "400", ...); dropped connections under "dropped". */
  byStatus: Record<string, number>;
  /** Headers of the last token request; lower-case names; presharedkey and authorization are "[redacted]". */
  lastRequestHeaders?: Record<string, string>;
}

export interface EmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** Token lifetime in seconds, default 3600. */
  lifetimeS?: number;
  devices?: EmulatorDevice[];
  /** Per posserial, sliding 60 s window; default 30; 0 disables. */
  rateLimitPerMinute?: number;
  /** Default true: deviations from the documented wire are refused with 400 invalid_request. */
  strict?: boolean;
  clock?: Clock;
  log?: Logger;
}

export interface Emulator {
  /** e.g. http://127.0.0.1:41234; throws before the first start(). */
  readonly url: string;
  /** The port listened on; 0 before the first start(). */
  readonly port: number;
  /** Listens; after stop() it listens again on the same port. Calling it while running does nothing. */
  start(): Promise<void>;
  /** Closes the listener and destroys all open connections. Calling it while stopped does nothing. */
  stop(): Promise<void>;
  /** Merges into the current faults; a key set to undefined removes that fault. Throws TypeError when invalid. */
  setFaults(faults: EmulatorFaults): void;
  clearFaults(): void;
  /** Adds a device, replacing one with the same clientId. Throws TypeError when invalid. */
  addDevice(device: EmulatorDevice): void;
  stats(): EmulatorStats;
  resetStats(): void;
  publicJwk(): JsonWebKey;
}
