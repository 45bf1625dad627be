/**
 * The emulator's own endpoints under /_emulator/ (the same for every authority):
 *   GET  info                   authority, strict, token paths, principal kind
 *   GET  stats, POST stats/reset
 *   GET|POST|DELETE faults      read, merge (a key set to null removes it), clear
 *   GET|POST <kind>             devices (eta-ereceipt), clients (eta-einvoicing, myinvois, sepay, oauth2),
 *                               companies (impact-gr): list without secrets, add or replace one
 *   POST refresh-tokens/expire  impact-gr: every refresh token issued so far stops working
 *   GET|POST|DELETE api/faults  the submission API's faults: read, merge, clear
 *   GET|DELETE api/submissions  what reached the API (`?since=SEQ&limit=N`), or forget it
 *   POST api/revoke             every access token issued so far stops working at the API
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/log.js';
import type { ApiFaultState } from './api-faults.js';
import type { ApiRecords } from './api-records.js';
import type { FaultState } from './faults.js';
import { BODY_CAP, cleanPath, jsonAnswer, readBody, send } from './http.js';
import type { EmulatorStats, PrincipalKind } from './types.js';
import { validateApiFaults, validateFaults } from './validate.js';
import { oauthError } from './wire/oauth.js';
import type { PrincipalRegistry } from './wire/types.js';

export const ADMIN_PREFIX = '/_emulator/';

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

const API_ROUTES: Record<string, string[]> = {
  'api/faults': ['GET', 'POST', 'DELETE'],
  'api/submissions': ['GET', 'DELETE'],
  'api/revoke': ['POST'],
};

/** Reads an admin JSON body; answers 413 or 400 itself and returns undefined then. */
async function readJson(req: IncomingMessage, res: ServerResponse): Promise<{ value: unknown } | undefined> {
  const body = await readBody(req);
  if (body.kind === 'aborted') return undefined;
  if (body.kind === 'too_large') {
    send(res, { ...oauthError(413, 'invalid_request', `body is larger than ${BODY_CAP} bytes`), close: !body.drained });
    return undefined;
  }
  try {
    return { value: JSON.parse(body.body.toString('utf8')) };
  } catch {
    send(res, oauthError(400, 'invalid_request', 'body is not valid JSON'));
    return undefined;
  }
}

/** A non-negative integer query parameter, or the fallback when absent; undefined when malformed. */
function queryInt(req: IncomingMessage, name: string, fallback: number): number | undefined {
  const value = new URL(req.url ?? '/', 'http://emulator.invalid').searchParams.get(name);
  if (value === null) return fallback;
  return /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** The submission API's admin endpoints (api/...). */
async function handleApiAdmin(req: IncomingMessage, res: ServerResponse, route: string, deps: AdminDeps): Promise<void> {
  const { faults, records } = deps.api;
  switch (`${req.method ?? ''} ${route}`) {
    case 'GET api/faults':
      send(res, jsonAnswer(200, { faults: faults.current() }));
      return;
    case 'POST api/faults': {
      const input = await readJson(req, res);
      if (!input) return;
      const result = validateApiFaults(input.value, 'faults');
      if (!result.ok) return void send(res, oauthError(400, 'invalid_request', result.problems.join('; ')));
      faults.apply(result.value);
      deps.log.info('API faults set', { faults: Object.keys(faults.current()) });
      send(res, jsonAnswer(200, { faults: faults.current() }));
      return;
    }
    case 'DELETE api/faults':
      faults.clear();
      send(res, jsonAnswer(200, { faults: faults.current() }));
      return;
    case 'GET api/submissions': {
      const since = queryInt(req, 'since', 0);
      const limit = queryInt(req, 'limit', Number.MAX_SAFE_INTEGER);
      if (since === undefined || limit === undefined) {
        return void send(res, oauthError(400, 'invalid_request', 'since and limit take non-negative integers'));
      }
      const submissions = records.list(since, limit);
      send(res, jsonAnswer(200, { submissions, duplicates: records.duplicates, total: records.total }));
      return;
    }
    case 'DELETE api/submissions':
      records.clear();
      send(res, jsonAnswer(200, { submissions: [], duplicates: 0, total: 0 }));
      return;
    case 'POST api/revoke': {
      const revoked = deps.api.revoke();
      deps.log.info('access tokens revoked', { revoked });
      send(res, jsonAnswer(200, { revoked }));
      return;
    }
  }
}

const SINGULAR: Record<PrincipalKind, string> = { devices: 'device', clients: 'client', companies: 'company' };
const ID_FIELD: Record<PrincipalKind, string> = { devices: 'clientId', clients: 'clientId', companies: 'vat' };

export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, deps: AdminDeps): Promise<void> {
  const method = req.method ?? '';
  const route = path.slice(ADMIN_PREFIX.length);
  const kind = deps.principals.kind;
  const allowed: Record<string, string[]> = {
    info: ['GET'],
    stats: ['GET'],
    'stats/reset': ['POST'],
    faults: ['GET', 'POST', 'DELETE'],
    [kind]: ['GET', 'POST'],
  };
  if (deps.expireRefreshTokens) allowed['refresh-tokens/expire'] = ['POST'];
  Object.assign(allowed, API_ROUTES);
  const methods = allowed[route];
  if (!methods) {
    const other = (['devices', 'clients', 'companies'] as const).includes(route as PrincipalKind);
    const description = other
      ? `this emulator registers ${kind}: use ${ADMIN_PREFIX}${kind}`
      : `no such path ${cleanPath(path)}`;
    send(res, jsonAnswer(404, { error: 'not_found', error_description: description }));
    return;
  }
  if (!methods.includes(method)) {
    send(
      res,
      jsonAnswer(405, { error: 'method_not_allowed', error_description: `use ${methods.join(' or ')}` }, {
        allow: methods.join(', '),
      }),
    );
    return;
  }
  if (route.startsWith('api/')) return handleApiAdmin(req, res, route, deps);
  let input: unknown;
  if (method === 'POST' && (route === 'faults' || route === kind)) {
    const parsed = await readJson(req, res);
    if (!parsed) return;
    input = parsed.value;
  }
  const invalid = (problems: string[]): void => {
    send(res, oauthError(400, 'invalid_request', problems.join('; ')));
  };
  switch (`${method} ${route}`) {
    case 'GET info':
      send(res, jsonAnswer(200, deps.info()));
      return;
    case 'GET stats':
      send(res, jsonAnswer(200, deps.stats()));
      return;
    case 'POST stats/reset':
      deps.resetStats();
      send(res, jsonAnswer(200, { ok: true }));
      return;
    case 'GET faults':
      send(res, jsonAnswer(200, { faults: deps.faults.current() }));
      return;
    case 'POST faults': {
      const result = validateFaults(input, 'faults', { refresh: deps.expireRefreshTokens !== undefined });
      if (!result.ok) return invalid(result.problems);
      deps.faults.apply(result.value);
      deps.log.info('faults set', { faults: Object.keys(deps.faults.current()) });
      send(res, jsonAnswer(200, { faults: deps.faults.current() }));
      return;
    }
    case 'DELETE faults':
      deps.faults.clear();
      send(res, jsonAnswer(200, { faults: deps.faults.current() }));
      return;
    case `GET ${kind}`:
      send(res, jsonAnswer(200, { [kind]: deps.principals.list() }));
      return;
    case `POST ${kind}`: {
      const result = deps.principals.add(input, SINGULAR[kind]);
      if (!result.ok) return invalid(result.problems);
      deps.log.info(`${SINGULAR[kind]} added`, { [ID_FIELD[kind]]: result.value });
      send(res, jsonAnswer(201, { [ID_FIELD[kind]]: result.value }));
      return;
    }
    case 'POST refresh-tokens/expire': {
      const expired = deps.expireRefreshTokens?.() ?? 0;
      deps.log.info('refresh tokens expired', { expired });
      send(res, jsonAnswer(200, { expired }));
      return;
    }
  }
}
