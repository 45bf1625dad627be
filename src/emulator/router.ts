/**
 * Which part of the emulator answers a request: the submission API (/api/), a token endpoint of the wire, the
 * admin endpoints (/_emulator/), a document of the wire (discovery, JWKS), or 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ADMIN_PREFIX, type Admin } from './admin.js';
import { API_PREFIX, type ApiServer } from './api.js';
import { cleanPath, jsonAnswer, send } from './http.js';
import type { RequestHandler } from './listener.js';
import type { TokenEndpoint, Wire } from './wire/types.js';

export interface RouterDeps {
  api: Pick<ApiServer, 'handle'>;
  admin: Admin;
  wire: Pick<Wire, 'endpoints' | 'documents'>;
  tokenRequest(endpoint: TokenEndpoint, req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void>;
  /** The emulator's base URL, which the documents name. */
  baseUrl(): string;
}

export function createRouter(deps: RouterDeps): RequestHandler {
  const endpoints = new Map<string, TokenEndpoint>(deps.wire.endpoints.map((e) => [e.path, e]));
  return async (req, res, signal) => {
    // The API first: the benchmark's hot path skips URL parsing.
    if (req.url?.startsWith(API_PREFIX)) return deps.api.handle(req, res, signal);
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://emulator.invalid').pathname;
    } catch {
      send(res, jsonAnswer(400, { error: 'invalid_request', error_description: 'bad request target' }));
      return;
    }
    const endpoint = endpoints.get(path);
    if (endpoint) return deps.tokenRequest(endpoint, req, res, signal);
    if (path.startsWith(ADMIN_PREFIX)) return deps.admin.handle(req, res, path);
    serveDocument(deps, req, res, path);
  };
}

/** A document of the wire on GET (or HEAD), else 404. */
function serveDocument(deps: RouterDeps, req: IncomingMessage, res: ServerResponse, path: string): void {
  const documents = deps.wire.documents(deps.baseUrl());
  if (!Object.hasOwn(documents, path)) {
    send(res, jsonAnswer(404, { error: 'not_found', error_description: `no such path ${cleanPath(path)}` }));
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, jsonAnswer(405, { error: 'method_not_allowed', error_description: 'use GET' }, { allow: 'GET' }));
    return;
  }
  send(res, { ...jsonAnswer(200, documents[path]), headers: { 'cache-control': 'max-age=60' } });
}
