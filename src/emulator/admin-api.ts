/**
 * The submission API's admin endpoints under /_emulator/api/: its faults, what reached it, and revoking the
 * access tokens issued so far. Routes of the table in admin.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { AdminDeps, AdminRoute } from './admin.js';
import { type Answer, jsonAnswer } from './http.js';
import { validateApiFaults } from './validate.js';
import { oauthError } from './wire/oauth.js';

type Deps = Pick<AdminDeps, 'api' | 'log'>;

export function apiAdminRoutes(deps: Deps): AdminRoute[] {
  const { faults } = deps.api;
  return [
    { method: 'GET', path: 'api/faults', answer: () => jsonAnswer(200, { faults: faults.current() }) },
    { method: 'POST', path: 'api/faults', json: true, answer: (input) => setApiFaults(deps, input) },
    { method: 'DELETE', path: 'api/faults', answer: () => clearApiFaults(deps) },
    { method: 'GET', path: 'api/submissions', answer: (_input, req) => submissions(deps, req) },
    { method: 'DELETE', path: 'api/submissions', answer: () => clearSubmissions(deps) },
    { method: 'POST', path: 'api/revoke', answer: () => revoke(deps) },
  ];
}

function clearApiFaults(deps: Deps): Answer {
  deps.api.faults.clear();
  return jsonAnswer(200, { faults: deps.api.faults.current() });
}

function clearSubmissions(deps: Deps): Answer {
  deps.api.records.clear();
  return jsonAnswer(200, { submissions: [], duplicates: 0, total: 0 });
}

function setApiFaults(deps: Deps, input: unknown): Answer {
  const { faults } = deps.api;
  const result = validateApiFaults(input, 'faults');
  if (!result.ok) return oauthError(400, 'invalid_request', result.problems.join('; '));
  faults.apply(result.value);
  deps.log.info('API faults set', { faults: Object.keys(faults.current()) });
  return jsonAnswer(200, { faults: faults.current() });
}

function submissions(deps: Pick<AdminDeps, 'api'>, req: IncomingMessage): Answer {
  const { records } = deps.api;
  const since = queryInt(req, 'since', 0);
  const limit = queryInt(req, 'limit', Number.MAX_SAFE_INTEGER);
  if (since === undefined || limit === undefined) {
    return oauthError(400, 'invalid_request', 'since and limit take non-negative integers');
  }
  const list = records.list(since, limit);
  return jsonAnswer(200, { submissions: list, duplicates: records.duplicates, total: records.total });
}

function revoke(deps: Deps): Answer {
  const revoked = deps.api.revoke();
  deps.log.info('access tokens revoked', { revoked });
  return jsonAnswer(200, { revoked });
}

/** A non-negative integer query parameter, or the fallback when absent; undefined when malformed. */
function queryInt(req: IncomingMessage, name: string, fallback: number): number | undefined {
  const value = new URL(req.url ?? '/', 'http://emulator.invalid').searchParams.get(name);
  if (value === null) return fallback;
  return /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}
