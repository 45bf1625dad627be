/** The admin endpoints' collaborators and route shape, apart so that admin.ts and admin-api.ts both use them. */
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../lib/log.js';
import type { ApiFaultState } from './api-faults.js';
import type { ApiRecords } from './api-records.js';
import type { FaultState } from './faults.js';
import type { Answer } from './http.js';
import type { EmulatorStats } from './types.js';
import type { PrincipalRegistry } from './wire/types.js';

export interface AdminDeps {
  info(): Record<string, unknown>;
  stats(): EmulatorStats;
  resetStats(): void;
  faults: FaultState;
  principals: PrincipalRegistry;
  /** Present when the authority has refresh tokens. */
  expireRefreshTokens?: () => number;
  api: { faults: ApiFaultState; records: ApiRecords; revoke(): number };
  log: Logger;
}

/** One admin endpoint: `method` on ADMIN_PREFIX + `path`. A `json` route is given the parsed body as `input`. */
export interface AdminRoute {
  method: string;
  path: string;
  json?: boolean;
  answer(input: unknown, req: IncomingMessage): Answer;
}
