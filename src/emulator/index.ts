/**
 * A faithful emulator of the token services the agent talks to, with fault injection, for integration
 * tests, the `demo` command and till developers. One wire module per authority (wire/<name>.ts):
 *
 *   eta-ereceipt    POST /connect/token               (+ /.well-known/openid-configuration(/jwks))
 *   eta-einvoicing  POST /connect/token               (+ discovery)
 *   myinvois        POST /connect/token               (+ discovery)
 *   impact-gr       POST /Authentication/login, POST /Authentication/refresh
 *   sepay           POST /v1/token
 *   oauth2          POST /oauth2/token                (+ /.well-known/oauth-authorization-server, /oauth2/jwks)
 *
 * and, for every authority, the admin endpoints under /_emulator/ (see admin.ts), and the authority's submission
 * API under /api/ on the same port, bearer tokens it issued required (see api.ts): eta-ereceipt's
 * POST /api/v1/receiptsubmissions, eta-einvoicing's and myinvois' POST /api/v1.0/documentsubmissions, a generic
 * JSON endpoint on every other path, and /api/_large and /api/_echo/ for tests.
 */
export { AUTHORITIES, createEmulator, TOKEN_PATHS } from './emulator.js';
export { DEMO_DEVICE, DEMO_PRINCIPALS } from './demo-principals.js';
export type {
  ApiSubmission,
  ClientAuthMethod,
  ClientStatus,
  DemoPrincipal,
  DeviceStatus,
  Emulator,
  EmulatorApiFaults,
  EmulatorApiStats,
  EmulatorAuthority,
  EmulatorClient,
  EmulatorCompany,
  EmulatorDevice,
  EmulatorFaults,
  EmulatorOptions,
  EmulatorPaths,
  EmulatorStats,
  ImpactProblem,
  ImpactTokenAnswer,
  PrincipalKind,
  SepayError,
} from './types.js';
