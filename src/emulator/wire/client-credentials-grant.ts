/**
 * One client-credentials token request (RFC 6749 section 4.4) under a profile, as steps in the order the
 * service checks them: the wire (Content-Type, form, where the credentials go), who claims to be calling, the
 * limiter, the grant type, the credentials, what the client asks for (scope, audience, onbehalfof), the token.
 * Each step either passes a value on or refuses with the answer. Pure apart from ctx's limiter and clock.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { headerValue, type Answer } from '../http.js';
import type { ClientAuthMethod, EmulatorClient } from '../types.js';
import type { ClientCredentialsProfile } from './client-credentials.js';
import {
  basicCredentials,
  checkContentType,
  FORM_TYPE,
  type FormSpec,
  matchesAny,
  OAUTH_ERRORS,
  oauthError,
  oauthToken,
  parseForm,
  quotable,
} from './oauth.js';
import type { Registry } from './registry.js';
import type { WireContext, WireRequest } from './types.js';

/** IdentityServer's input length limits. */
const MAX = { grant_type: 100, client_id: 100, client_secret: 200, scope: 300, audience: 500, onbehalfof: 100 } as const;
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/;

type Field = 'grant_type' | 'client_id' | 'client_secret' | 'scope' | 'audience';
type Form = Partial<Record<Field, string>>;
type Step<T> = { ok: true; value: T } | { ok: false; answer: Answer };

/** One request as the steps see it. */
interface Call {
  p: ClientCredentialsProfile;
  strict: boolean;
  headers: IncomingHttpHeaders;
  /** Every secret registered, so that no message quotes one. */
  secrets: string[];
}

/** Who claims to be calling, and how. */
interface Caller {
  method: ClientAuthMethod;
  id: string;
  secret: string | undefined;
}

/** What the token will say beyond the client. */
interface Grant {
  scope: string | undefined;
  audience: string | undefined;
  onbehalfof: string | undefined;
}

const pass = <T>(value: T): Step<T> => ({ ok: true, value });
const refuse = (answer: Answer): { ok: false; answer: Answer } => ({ ok: false, answer });
const invalid = (description: string): Answer => oauthError(400, 'invalid_request', description);

/** invalid_client: 401 with a Basic challenge after a Basic attempt where the profile says so, else 400. */
function invalidClient(p: ClientCredentialsProfile, description: string, viaBasic: boolean): Answer {
  return p.basicChallenge && viaBasic
    ? oauthError(401, 'invalid_client', description, { 'www-authenticate': 'Basic realm="token", charset="UTF-8"' })
    : oauthError(400, 'invalid_client', description);
}

/** The token endpoint's handler for profile `p`. */
export function clientCredentialsHandler(
  p: ClientCredentialsProfile,
  ctx: WireContext,
  clients: Registry<EmulatorClient>,
): (req: WireRequest) => Answer {
  const fields: readonly Field[] = p.audience
    ? ['grant_type', 'client_id', 'client_secret', 'scope', 'audience']
    : ['grant_type', 'client_id', 'client_secret', 'scope'];
  const takes = `${p.label} takes only ${fields.join(', ')}`;
  return ({ headers, body }) => {
    const call: Call = { p, strict: ctx.strict, headers, secrets: clients.secrets() };
    const form = readForm(call, body, { fields, refuseUnknown: ctx.strict && p.refuseUnknown, takes, secrets: call.secrets });
    if (!form.ok) return form.answer;
    const caller = identify(call, form.value);
    if (!caller.ok) return caller.answer;
    const verdict = ctx.limit(caller.value.id);
    if (!verdict.allowed) {
      return OAUTH_ERRORS.rateLimited(
        String(verdict.retryAfterS),
        `too many token requests for this client ID; retry after ${verdict.retryAfterS} s`,
      );
    }
    const refused = checkGrantType(form.value);
    if (refused) return refused;
    const client = authenticate(call, caller.value, clients);
    if (!client.ok) return client.answer;
    const grant = grantOf(call, client.value, form.value);
    if (!grant.ok) return grant.answer;
    const { token, lifetimeS } = ctx.accessToken(claims(client.value, grant.value));
    return oauthToken(token, lifetimeS, grant.value.scope);
  };
}

/** The wire: Content-Type (strict), the form, and where the profile wants the credentials (strict). */
function readForm(call: Call, body: Buffer, spec: FormSpec<Field>): Step<Form> {
  const { p, strict } = call;
  if (strict) {
    const deviation = checkContentType(headerValue(call.headers, 'content-type'), FORM_TYPE, call.secrets);
    if (deviation) return refuse(invalid(deviation));
  }
  const form = parseForm<Field>(body, spec);
  if (!form.ok) return refuse(invalid(form.description));
  const v = form.values;
  if (strict && p.strictAuth === 'client_secret_basic' && (v.client_id !== undefined || v.client_secret !== undefined)) {
    return refuse(invalid(`${p.label} takes the client credentials in an Authorization: Basic header, not in the form body`));
  }
  if (strict && p.strictAuth === 'client_secret_post' && headerValue(call.headers, 'authorization') !== undefined) {
    return refuse(invalid(`Authorization header is not part of ${p.label}; send client_id and client_secret in the form body`));
  }
  return pass(v);
}

/** Who claims to be calling: the Basic header, else the form body. */
function identify(call: Call, v: Form): Step<Caller> {
  const { p, strict } = call;
  const basic = basicCredentials(headerValue(call.headers, 'authorization'));
  if (basic && !basic.ok) return refuse(invalidClient(p, 'Authorization header is not valid Basic client credentials', true));
  let method: ClientAuthMethod;
  let id: string | undefined;
  let secret: string | undefined;
  if (basic) {
    if (strict && v.client_secret !== undefined) {
      return refuse(invalid('the client authenticates with more than one method (Authorization header and client_secret)'));
    }
    if (strict && v.client_id !== undefined && v.client_id !== basic.id) {
      return refuse(invalid('client_id in the form body is not the one in the Authorization header'));
    }
    [method, id, secret] = ['client_secret_basic', basic.id, basic.secret];
  } else {
    [method, id, secret] = ['client_secret_post', v.client_id, v.client_secret];
  }
  if (id === undefined || id === '') {
    return refuse(invalidClient(p, 'no client authentication: missing client credentials', p.strictAuth !== 'client_secret_post'));
  }
  if (id.length > MAX.client_id) return refuse(invalid(`client_id is longer than ${MAX.client_id} characters`));
  return pass({ method, id, secret });
}

/** The request: field lengths and grant_type; undefined when it passes. */
function checkGrantType(v: Form): Answer | undefined {
  for (const field of ['grant_type', 'scope', 'audience'] as const) {
    const value = v[field];
    if (value !== undefined && value.length > MAX[field]) {
      return invalid(`form field ${field} is longer than ${MAX[field]} characters`);
    }
  }
  if (v.grant_type === undefined || v.grant_type === '') return invalid('missing form field grant_type');
  if (v.grant_type !== 'client_credentials') {
    return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
  }
  return undefined;
}

/** The credentials: a known client, one of its secrets, its registered method (strict), its status. */
function authenticate(call: Call, caller: Caller, clients: Registry<EmulatorClient>): Step<EmulatorClient> {
  const { p } = call;
  const { method, id, secret } = caller;
  const viaBasic = method === 'client_secret_basic';
  if (secret === undefined || secret === '') return refuse(invalidClient(p, 'missing client_secret', viaBasic));
  if (secret.length > MAX.client_secret) return refuse(invalid(`client_secret is longer than ${MAX.client_secret} characters`));
  const client = clients.get(id);
  if (!client) return refuse(invalidClient(p, 'unknown client_id', viaBasic));
  if (!matchesAny(secret, client.clientSecrets)) {
    return refuse(invalidClient(p, 'client_secret does not match any secret of this client', viaBasic));
  }
  const registered = client.authMethod ?? 'client_secret_basic';
  if (call.strict && p.strictAuth === 'registered' && method !== registered) {
    return refuse(invalidClient(p, `this client is registered for ${registered}, not ${method}`, viaBasic));
  }
  if (client.status === 'blocked') return refuse(oauthError(400, p.unauthorizedClient, 'User blocked'));
  if (client.status === 'expired') return refuse(oauthError(400, p.unauthorizedClient, 'User expired'));
  return pass(client);
}

/** What the client asks for and may have. */
function grantOf(call: Call, client: EmulatorClient, v: Form): Step<Grant> {
  const scope = grantedScope(call, client, v.scope);
  if (!scope.ok) return scope;
  const audience = grantedAudience(call.p, client, v.audience);
  if (!audience.ok) return audience;
  const onbehalfof = actingFor(call, client);
  if (!onbehalfof.ok) return onbehalfof;
  return pass({ scope: scope.value, audience: audience.value, onbehalfof: onbehalfof.value });
}

/** The scopes asked for, each allowed for the client; without `scope` all of the client's. */
function grantedScope(call: Call, client: EmulatorClient, asked: string | undefined): Step<string | undefined> {
  const allowed = client.scopes ?? call.p.defaultScopes;
  if (asked === undefined || asked.trim() === '') return pass(allowed.length > 0 ? allowed.join(' ') : undefined);
  const requested = [...new Set(asked.trim().split(/\s+/))];
  for (const s of requested) {
    if (!SCOPE_TOKEN.test(s)) return refuse(invalid('scope holds characters RFC 6749 does not allow'));
    if (!allowed.includes(s)) {
      const shown = quotable(s, call.secrets, SCOPE_TOKEN);
      const name = shown === undefined ? '(not shown)' : JSON.stringify(shown);
      return refuse(oauthError(400, 'invalid_scope', `scope ${name} is not allowed for this client`));
    }
  }
  return pass(requested.join(' '));
}

/** The audience asked for (oauth2: one of the client's), else its first, else the profile's default. */
function grantedAudience(p: ClientCredentialsProfile, client: EmulatorClient, asked: string | undefined): Step<string | undefined> {
  if (!p.audience) return pass(p.defaultAudience);
  if (asked === undefined || asked === '') return pass(client.audiences?.[0]);
  if (client.audiences && !client.audiences.includes(asked)) {
    return refuse(oauthError(400, 'invalid_target', 'the requested audience is not allowed for this client'));
  }
  return pass(asked);
}

/** Header onbehalfof, where the profile has it: required of an intermediary, covered by the client's entries. */
function actingFor(call: Call, client: EmulatorClient): Step<string | undefined> {
  const { p, strict } = call;
  const rule = p.onbehalfof;
  if (!rule) return pass(undefined);
  const value = headerValue(call.headers, 'onbehalfof');
  if (value === undefined || value === '') {
    return client.intermediary ? refuse(invalid('an intermediary must send header onbehalfof')) : pass(undefined);
  }
  if (value.length > MAX.onbehalfof) return refuse(invalid(`header onbehalfof is longer than ${MAX.onbehalfof} characters`));
  if (strict && !rule.pattern.test(value)) return refuse(invalid(`header onbehalfof must be ${rule.format}`));
  if (client.onbehalfof && !client.onbehalfof.some((entry) => rule.matches(value, entry))) {
    return refuse(oauthError(400, p.unauthorizedClient, 'this client may not act on behalf of that taxpayer'));
  }
  return pass(value);
}

function claims(client: EmulatorClient, grant: Grant): Record<string, unknown> {
  const out: Record<string, unknown> = { sub: client.clientId, client_id: client.clientId };
  if (grant.audience !== undefined) out.aud = grant.audience;
  if (grant.scope !== undefined) out.scope = grant.scope;
  if (grant.onbehalfof !== undefined) out.onbehalfof = grant.onbehalfof;
  return out;
}
