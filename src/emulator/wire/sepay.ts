/**
 * Vietnam SePay eInvoice, "Create Authentication Token": POST /v1/token with `Authorization: Basic
 * base64(client_id:client_secret)` and an empty body; 200 `{success: true, data: {access_token, token_type,
 * expires_in: 86400}}`. Errors `{success: false, error: {code, message}}` with the message in Vietnamese:
 * 400 bad parameters, 401 bad credentials, the 401 carrying code BAD_REQUEST as the doc's example does.
 */
import { headerValue, jsonAnswer, type Answer } from '../http.js';
import type { EmulatorClient, SepayError } from '../types.js';
import { validateClient } from '../validate.js';
import { basicCredentials, matchesAny } from './oauth.js';
import { createRegistry } from './registry.js';
import type { Wire, WireContext, WireErrors, WireRequest, WireSpec } from './types.js';

const TOKEN_PATH = '/v1/token';

/** The first is the doc's own text; the others are the emulator's, where the doc shows none. */
export const SEPAY_MESSAGES = {
  /** "Missing or wrongly formatted required field." */
  badRequest: 'Thiếu hoặc sai định dạng trường bắt buộc.',
  /** "The authentication information is not valid." */
  badCredentials: 'Thông tin xác thực không hợp lệ.',
  /** "The account has been locked." */
  locked: 'Tài khoản đã bị khóa.',
  /** "The account has expired." */
  expired: 'Tài khoản đã hết hạn.',
  /** "Too many requests, please try again later." */
  tooMany: 'Quá nhiều yêu cầu, vui lòng thử lại sau.',
  /** "The system is having trouble, please try again later." */
  server: 'Hệ thống đang gặp sự cố, vui lòng thử lại sau.',
  /** "Method not supported." */
  method: 'Phương thức không được hỗ trợ.',
  /** "The data sent is too large." */
  tooLarge: 'Dữ liệu gửi lên quá lớn.',
} as const;

const SERVER_CODES: Record<number, string> = {
  500: 'INTERNAL_SERVER_ERROR',
  502: 'BAD_GATEWAY',
  503: 'SERVICE_UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

function sepayError(status: number, code: string, message: string, headers?: Record<string, string>): Answer {
  const body: SepayError = { success: false, error: { code, message } };
  return { ...jsonAnswer(status, body, headers), error: code };
}

const ERRORS: WireErrors = Object.freeze({
  methodNotAllowed: () => sepayError(405, 'METHOD_NOT_ALLOWED', SEPAY_MESSAGES.method, { allow: 'POST' }),
  tooLarge: () => sepayError(413, 'PAYLOAD_TOO_LARGE', SEPAY_MESSAGES.tooLarge),
  rateLimited: (retryAfter: string) =>
    sepayError(429, 'TOO_MANY_REQUESTS', SEPAY_MESSAGES.tooMany, { 'retry-after': retryAfter }),
  serverError: (status: number) => sepayError(status, SERVER_CODES[status] ?? 'SERVER_ERROR', SEPAY_MESSAGES.server),
  injected: (status: number, code: string, description: string) => sepayError(status, code, description),
  tokenless: () => JSON.stringify({ success: true, data: { token_type: 'Bearer', expires_in: 86400 } }),
});

function create(ctx: WireContext): Wire {
  const clients = createRegistry<EmulatorClient>({
    kind: 'clients',
    validate: (input, path) => validateClient(input, path, ['clientId', 'clientSecrets', 'status']),
    id: (c) => c.clientId,
    summary: (c) => ({ clientId: c.clientId, status: c.status ?? 'active' }),
    secrets: (c) => c.clientSecrets,
  });

  function handle({ headers, body }: WireRequest): Answer {
    if (ctx.strict && body.length > 0) return sepayError(400, 'BAD_REQUEST', SEPAY_MESSAGES.badRequest);
    // RFC 7617 Basic: the parts are taken as they are, no form decoding.
    const basic = basicCredentials(headerValue(headers, 'authorization'), false);
    if (!basic?.ok || basic.id === '' || basic.secret === '') {
      return sepayError(401, 'BAD_REQUEST', SEPAY_MESSAGES.badRequest);
    }
    const verdict = basic.id.length <= 100 ? ctx.limit(basic.id) : { allowed: true as const };
    if (!verdict.allowed) return ERRORS.rateLimited(String(verdict.retryAfterS), '');
    const client = clients.get(basic.id);
    if (!client || !matchesAny(basic.secret, client.clientSecrets)) {
      return sepayError(401, 'BAD_REQUEST', SEPAY_MESSAGES.badCredentials);
    }
    if (client.status === 'blocked') return sepayError(401, 'BAD_REQUEST', SEPAY_MESSAGES.locked);
    if (client.status === 'expired') return sepayError(401, 'BAD_REQUEST', SEPAY_MESSAGES.expired);
    const { token, lifetimeS } = ctx.accessToken({ sub: client.clientId, client_id: client.clientId });
    return {
      ...jsonAnswer(200, { success: true, data: { access_token: token, token_type: 'Bearer', expires_in: lifetimeS } }),
      issued: true,
    };
  }

  return {
    principals: clients,
    errors: ERRORS,
    documents: () => ({}),
    endpoints: [{ path: TOKEN_PATH, handle }],
  };
}

export const sepay: WireSpec = {
  authority: 'sepay',
  paths: { token: TOKEN_PATH },
  principalKind: 'clients',
  defaultLifetimeS: 86400,
  defaultRateLimitPerMinute: 0,
  create,
};
