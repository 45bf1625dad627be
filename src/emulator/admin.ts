/**
 * The emulator's own endpoints under /_emulator/ (the same for every authority):
 *   GET  info                   authority, strict, token paths, principal kind
 *   GET  stats, POST stats/reset
 *   GET|POST|DELETE faults      read, merge (a key set to null removes it), clear
 *   GET|POST <kind>             devices (eta-ereceipt), clients (eta-einvoicing, myinvois, sepay, oauth2),
 *                               companies (impact-gr): list without secrets, add or replace one
 *   POST refresh-tokens/expire  impact-gr: every refresh token issued so far stops working
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/log.js';
import type { FaultState } from './faults.js';
import { BODY_CAP, cleanPath, jsonAnswer, readBody, send } from './http.js';
import type { EmulatorStats, PrincipalKind } from './types.js';
import { validateFaults } from './validate.js';
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
  log: Logger;
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
  let input: unknown;
  if (method === 'POST' && (route === 'faults' || route === kind)) {
    const body = await readBody(req);
    if (body.kind === 'aborted') return;
    if (body.kind === 'too_large') {
      send(res, { ...oauthError(413, 'invalid_request', `body is larger than ${BODY_CAP} bytes`), close: !body.drained });
      return;
    }
    try {
      input = JSON.parse(body.body.toString('utf8'));
    } catch {
      send(res, oauthError(400, 'invalid_request', 'body is not valid JSON'));
      return;
    }
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
