/**
 * Egypt ETA eReceipt, "Authenticate POS": POST /connect/token with a form body (grant_type, client_id,
 * client_secret; no scope) and the device headers posserial, pososversion, posmodelframework, presharedkey.
 * Errors are 400 {error, error_description} with the eReceipt codes (invalid_clientsecret, invalid_posserial,
 * ...); a per-posserial 429. The decision is pure: no I/O, no time.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { headerValue } from '../http.js';
import type { EmulatorDevice } from '../types.js';
import { validateDevice } from '../validate.js';
import {
  basicCredentials,
  checkContentType,
  FORM_TYPE,
  matchesAny,
  OAUTH_ERRORS,
  oauthError,
  oauthToken,
  openidDocuments,
  parseForm,
  sameSecret,
} from './oauth.js';
import { createRegistry, type Registry } from './registry.js';
import type { Wire, WireContext, WireSpec } from './types.js';

const TOKEN_PATH = '/connect/token';
const AUDIENCE = 'InvoicingAPI';
const DEFAULT_SCOPE = 'InvoicingAPI';
const FIELDS = ['grant_type', 'client_id', 'client_secret'] as const;
type Field = (typeof FIELDS)[number];
const FIELD_MAX: Record<Field, number> = { grant_type: 20, client_id: 100, client_secret: 100 };

export const HEADER_MAX = { posserial: 100, pososversion: 50, posmodelframework: 10, presharedkey: 200 } as const;

export type DeviceCheck = { ok: true; device: EmulatorDevice } | { ok: false; error: string; description: string };

export interface DeviceRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
  strict: boolean;
  devices: Pick<Registry<EmulatorDevice>, 'get' | 'secrets'>;
}

type Refusal = Extract<DeviceCheck, { ok: false }>;
type Step<T> = { ok: true; value: T } | Refusal;

function reject(error: string, description: string): Refusal {
  return { ok: false, error, description };
}

type Form = Partial<Record<Field, string>>;

/** Which device a token request authenticates, or which documented error it earns. */
export function checkDeviceRequest(req: DeviceRequest): DeviceCheck {
  const form = readDeviceForm(req);
  if (!form.ok) return form;
  const device = checkCredentials(form.value, req.devices);
  if (!device.ok) return device;
  const refused = checkDeviceHeaders(req.headers, device.value);
  return refused ?? { ok: true, device: device.value };
}

/** The wire: Content-Type and no Authorization header (strict), the form, every field present and short enough. */
function readDeviceForm(req: DeviceRequest): Step<Form> {
  const { headers, strict } = req;
  const secrets = req.devices.secrets();
  if (strict) {
    const deviation = checkContentType(headerValue(headers, 'content-type'), FORM_TYPE, secrets);
    if (deviation) return reject('invalid_request', deviation);
    if (headerValue(headers, 'authorization') !== undefined) {
      return reject(
        'invalid_request',
        'Authorization header is not part of the eReceipt token request; send client_id and client_secret in the form body',
      );
    }
  }
  const form = parseForm(req.body, {
    fields: FIELDS,
    refuseUnknown: strict,
    takes: 'the eReceipt token request takes only grant_type, client_id and client_secret',
    secrets,
  });
  if (!form.ok) return reject('invalid_request', form.description);
  const values = form.values;
  if (!strict && (values.client_id === undefined || values.client_secret === undefined)) {
    // Tolerated outside strict mode: client_secret_basic.
    const basic = basicCredentials(headerValue(headers, 'authorization'));
    if (basic?.ok) {
      values.client_id ??= basic.id;
      values.client_secret ??= basic.secret;
    }
  }
  for (const field of FIELDS) {
    const value = values[field];
    if (value === undefined || value === '') return reject('invalid_request', `missing form field ${field}`);
    if (value.length > FIELD_MAX[field]) {
      return reject('invalid_request', `form field ${field} is longer than ${FIELD_MAX[field]} characters`);
    }
  }
  if (values.grant_type !== 'client_credentials') {
    return reject('unsupported_grant_type', 'grant_type must be client_credentials');
  }
  return { ok: true, value: values };
}

/** The credentials: a known client, one of its secrets, a device neither blocked nor deactivated. */
function checkCredentials(values: Form, devices: DeviceRequest['devices']): Step<EmulatorDevice> {
  const device = devices.get(values.client_id as string);
  if (!device) return reject('invalid_client', 'unknown client_id');
  if (!matchesAny(values.client_secret as string, device.clientSecrets)) {
    return reject('invalid_clientsecret', 'client_secret does not match any secret of this client');
  }
  if (device.status === 'blocked') return reject('unauthorized_client', 'User blocked');
  if (device.status === 'deactivated') return reject('unauthorized_client', 'POS deactivated');
  return { ok: true, value: device };
}

/** The device headers: posserial, pososversion, posmodelframework, presharedkey as registered; undefined when they pass. */
function checkDeviceHeaders(headers: IncomingHttpHeaders, device: EmulatorDevice): Refusal | undefined {
  const posserial = headerValue(headers, 'posserial');
  if (posserial === undefined || posserial === '') return reject('invalid_posserial', 'missing header posserial');
  if (posserial.length > HEADER_MAX.posserial) {
    return reject('invalid_posserial', `header posserial is longer than ${HEADER_MAX.posserial} characters`);
  }
  if (posserial !== device.posserial) {
    return reject('invalid_posserial', 'header posserial is not the serial registered for this client');
  }
  for (const name of ['pososversion', 'posmodelframework'] as const) {
    const value = headerValue(headers, name);
    const expected = device[name];
    if (value !== undefined && value.length > HEADER_MAX[name]) {
      return reject(`invalid_${name}`, `header ${name} is longer than ${HEADER_MAX[name]} characters`);
    }
    if (expected !== undefined && value !== expected) {
      return reject(
        `invalid_${name}`,
        value === undefined ? `missing header ${name}` : `header ${name} is not the value registered for this POS`,
      );
    }
  }
  return checkPresharedKey(headerValue(headers, 'presharedkey'), device);
}

function checkPresharedKey(psk: string | undefined, device: EmulatorDevice): Refusal | undefined {
  if (psk !== undefined && psk.length > HEADER_MAX.presharedkey) {
    return reject('invalid_presharedkey', `header presharedkey is longer than ${HEADER_MAX.presharedkey} characters`);
  }
  if (device.presharedKey === undefined) return undefined;
  if (psk === undefined) return reject('invalid_presharedkey', 'missing header presharedkey');
  if (!sameSecret(psk, device.presharedKey)) {
    return reject('invalid_presharedkey', 'header presharedkey does not match the key registered for this POS');
  }
  return undefined;
}

function create(ctx: WireContext): Wire {
  const devices = createRegistry<EmulatorDevice>({
    kind: 'devices',
    validate: validateDevice,
    id: (d) => d.clientId,
    summary: (d) => ({
      clientId: d.clientId,
      posserial: d.posserial,
      status: d.status ?? 'active',
      scope: d.scope ?? DEFAULT_SCOPE,
    }),
    secrets: (d) => [...d.clientSecrets, ...(d.presharedKey ? [d.presharedKey] : [])],
  });

  return {
    principals: devices,
    errors: OAUTH_ERRORS,
    documents: (base: string) =>
      openidDocuments(base, ctx.key.publicJwk(), {
        tokenPath: TOKEN_PATH,
        authMethods: ['client_secret_post'],
        scopes: [DEFAULT_SCOPE],
      }),
    endpoints: [
      {
        path: TOKEN_PATH,
        handle({ headers, body }) {
          const posserial = headerValue(headers, 'posserial');
          if (posserial !== undefined && posserial !== '' && posserial.length <= HEADER_MAX.posserial) {
            const verdict = ctx.limit(posserial);
            if (!verdict.allowed) {
              return OAUTH_ERRORS.rateLimited(
                String(verdict.retryAfterS),
                `too many token requests for this POS; retry after ${verdict.retryAfterS} s`,
              );
            }
          }
          const check = checkDeviceRequest({ headers, body, strict: ctx.strict, devices });
          if (!check.ok) return oauthError(400, check.error, check.description);
          const { device } = check;
          const scope = device.scope ?? DEFAULT_SCOPE;
          const { token, lifetimeS } = ctx.accessToken({
            sub: device.clientId,
            client_id: device.clientId,
            aud: AUDIENCE,
            posserial: device.posserial,
            scope,
          });
          return oauthToken(token, lifetimeS, scope);
        },
      },
    ],
  };
}

export const etaEreceipt: WireSpec = {
  authority: 'eta-ereceipt',
  paths: { token: TOKEN_PATH },
  principalKind: 'devices',
  defaultLifetimeS: 3600,
  defaultRateLimitPerMinute: 30,
  create,
};
