/**
 * Option schemas that several authorities share, and the credential fields they share. Each authority
 * module lists the ones it takes; the registry merges them into the config schema.
 */
import { z } from 'zod';
import { baseUrlSchema, endpointUrlSchema, headerValue, nonEmpty, type AccountConfig } from '../config/index.js';
import type { CredentialField } from './types.js';

/** A token service's base URL (the endpoint's path is the authority's). */
export const identityUrl = baseUrlSchema.optional();
/** A token endpoint itself, query string kept. */
export const tokenUrl = endpointUrlSchema.optional();
/** The OAuth `scope` form parameter. */
export const scope = headerValue(500).min(1, 'expected a non-empty string').optional();
/** An intermediary's `onbehalfof` header (the taxpayer's TIN). */
export const onbehalfof = nonEmpty(100).regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces').optional();
/** The `audience` form parameter (Auth0 style). */
export const audience = nonEmpty(500).optional();
/** How the client authenticates (RFC 6749 section 2.3.1). */
export const clientAuth = z.enum(['client_secret_basic', 'client_secret_post']).optional();
/**
 * How client_secret_basic encodes the client ID and secret: `auto` (the default) tries the authority's usual
 * encoding, or the one the server last accepted, and the other once when the server refuses; `rfc6749`
 * (form-encoded, RFC 6749 section 2.3.1) and `plain` (as they are, RFC 7617) fix it.
 */
export const basicAuthEncoding = z.enum(['auto', 'rfc6749', 'plain']).optional();

/** One RFC 8707 resource indicator: an absolute URI without a fragment. */
const resourceUri = z
  .string()
  .max(500, 'expected at most 500 characters')
  .superRefine((value, ctx) => {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (!url || !/^[a-z][a-z0-9+.-]*:/i.test(value) || !/^[\x21-\x7e]+$/.test(value)) {
      ctx.addIssue({ code: 'custom', message: 'expected an absolute URI (RFC 8707), e.g. https://api.example.com/' });
    } else if (value.includes('#')) {
      ctx.addIssue({ code: 'custom', message: 'expected a URI without a fragment (#...), as RFC 8707 requires' });
    }
  });
/** The RFC 8707 `resource` form parameter: one URI, or several (each sent as its own `resource`). */
export const resource = z.union([resourceUri, z.array(resourceUri).min(1, 'expected at least one URI').max(10, 'expected at most 10 URIs')]).optional();

export const CLIENT_ID: CredentialField = Object.freeze({ name: 'clientId', label: 'Client ID', secret: false, required: true, env: 'POS_CLIENT_ID' });
export const CLIENT_SECRET: CredentialField = Object.freeze({
  name: 'clientSecret',
  label: 'Client secret',
  secret: true,
  required: true,
  env: 'POS_CLIENT_SECRET',
});

/** The ETA's identity services, shown when a technician is asked for the URL. */
export const ETA_HINT = 'ETA identity service: pre-production https://id.preprod.eta.gov.eg, production https://id.eta.gov.eg';

/** The options an authority's schemas produce: what its module may read from an account. */
export type OptionsOf<S extends Readonly<Record<string, z.ZodType>>> = { readonly [K in keyof S]?: Exclude<z.output<S[K]>, undefined> };

/**
 * An account's options, typed by the schemas its authority declared. Config validation checked them with
 * those same schemas (the registry merges them), so the view is what the file held, defaults aside.
 */
export function optionsOf<S extends Readonly<Record<string, z.ZodType>>>(account: AccountConfig, _schemas: S): OptionsOf<S> {
  return account as unknown as OptionsOf<S>;
}
