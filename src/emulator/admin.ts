/**
 * The emulator's own endpoints under /_emulator/ (the same for every authority), as a table of routes:
 *   GET  info                   authority, strict, token paths, principal kind
 *   GET  stats, POST stats/reset
 *   GET|POST|DELETE faults      read, merge (a key set to null removes it), clear
 *   GET|POST <kind>             devices (eta-ereceipt), clients (eta-einvoicing, myinvois, sepay, oauth2),
 *                               companies (impact-gr): list without secrets, add or replace one
 *   POST refresh-tokens/expire  impact-gr: every refresh token issued so far stops working
 *   GET|POST|DELETE api/faults  the submission API's faults: read, merge, clear (admin-api.ts)
 *   GET|DELETE api/submissions  what reached the API (`?since=SEQ&limit=N`), or forget it
 *   POST api/revoke             every access token issued so far stops working at the API
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/log.js';
import { apiAdminRoutes } from './admin-api.js';
import type { ApiFaultState } from './api-faults.js';
import type { ApiRecords } from './api-records.js';
import type { FaultState } from './faults.js';
import { type Answer, BODY_CAP, cleanPath, jsonAnswer, readBody, send } from './http.js';
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

export interface Admin {
  /** Answers a request whose path starts with ADMIN_PREFIX. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

const SINGULAR: Record<PrincipalKind, string> = { devices: 'device', clients: 'client', companies: 'company' };
const ID_FIELD: Record<PrincipalKind, string> = { devices: 'clientId', clients: 'clientId', companies: 'vat' };
const PRINCIPAL_KINDS: readonly string[] = ['devices', 'clients', 'companies'];

export function createAdmin(deps: AdminDeps): Admin {
  const routes = [...emulatorRoutes(deps), ...apiAdminRoutes(deps)];
  return { handle: (req, res, path) => dispatch(routes, deps.principals.kind, req, res, path) };
}

/** Finds the route (404 for an unknown path, 405 for a method it does not take), reads its body, answers. */
async function dispatch(
  routes: readonly AdminRoute[],
  kind: PrincipalKind,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const name = path.slice(ADMIN_PREFIX.length);
  const onPath = routes.filter((r) => r.path === name);
  if (onPath.length === 0) return void send(res, notFound(name, path, kind));
  const route = onPath.find((r) => r.method === (req.method ?? ''));
  if (!route) return void send(res, methodNotAllowed(onPath.map((r) => r.method)));
  let input: unknown;
  if (route.json) {
    const parsed = await readJson(req, res);
    if (!parsed) return;
    input = parsed.value;
  }
  send(res, route.answer(input, req));
}

function notFound(name: string, path: string, kind: PrincipalKind): Answer {
  const description = PRINCIPAL_KINDS.includes(name)
    ? `this emulator registers ${kind}: use ${ADMIN_PREFIX}${kind}`
    : `no such path ${cleanPath(path)}`;
  return jsonAnswer(404, { error: 'not_found', error_description: description });
}

function methodNotAllowed(methods: readonly string[]): Answer {
  return jsonAnswer(405, { error: 'method_not_allowed', error_description: `use ${methods.join(' or ')}` }, {
    allow: methods.join(', '),
  });
}

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

function invalidRequest(problems: string[]): Answer {
  return oauthError(400, 'invalid_request', problems.join('; '));
}

/** The token side's endpoints: info, stats, faults, principals, refresh tokens. */
function emulatorRoutes(deps: AdminDeps): AdminRoute[] {
  const kind = deps.principals.kind;
  const faults = (): Answer => jsonAnswer(200, { faults: deps.faults.current() });
  const routes: AdminRoute[] = [
    { method: 'GET', path: 'info', answer: () => jsonAnswer(200, deps.info()) },
    { method: 'GET', path: 'stats', answer: () => jsonAnswer(200, deps.stats()) },
    { method: 'POST', path: 'stats/reset', answer: () => resetStats(deps) },
    { method: 'GET', path: 'faults', answer: faults },
    { method: 'POST', path: 'faults', json: true, answer: (input) => setFaults(deps, input) },
    { method: 'DELETE', path: 'faults', answer: () => clearFaults(deps) },
    { method: 'GET', path: kind, answer: () => jsonAnswer(200, { [kind]: deps.principals.list() }) },
    { method: 'POST', path: kind, json: true, answer: (input) => addPrincipal(deps, input) },
  ];
  if (deps.expireRefreshTokens) {
    routes.push({ method: 'POST', path: 'refresh-tokens/expire', answer: () => expireRefreshTokens(deps) });
  }
  return routes;
}

function resetStats(deps: AdminDeps): Answer {
  deps.resetStats();
  return jsonAnswer(200, { ok: true });
}

function clearFaults(deps: AdminDeps): Answer {
  deps.faults.clear();
  return jsonAnswer(200, { faults: deps.faults.current() });
}

function setFaults(deps: AdminDeps, input: unknown): Answer {
  const result = validateFaults(input, 'faults', { refresh: deps.expireRefreshTokens !== undefined });
  if (!result.ok) return invalidRequest(result.problems);
  deps.faults.apply(result.value);
  deps.log.info('faults set', { faults: Object.keys(deps.faults.current()) });
  return jsonAnswer(200, { faults: deps.faults.current() });
}

function addPrincipal(deps: AdminDeps, input: unknown): Answer {
  const kind = deps.principals.kind;
  const result = deps.principals.add(input, SINGULAR[kind]);
  if (!result.ok) return invalidRequest(result.problems);
  deps.log.info(`${SINGULAR[kind]} added`, { [ID_FIELD[kind]]: result.value });
  return jsonAnswer(201, { [ID_FIELD[kind]]: result.value });
}

function expireRefreshTokens(deps: AdminDeps): Answer {
  const expired = deps.expireRefreshTokens?.() ?? 0;
  deps.log.info('refresh tokens expired', { expired });
  return jsonAnswer(200, { expired });
}
