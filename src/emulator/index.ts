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
 * and, for every authority, the admin endpoints under /_emulator/ (see admin.ts).
 */
export { AUTHORITIES, createEmulator, TOKEN_PATHS } from './emulator.js';
export { DEMO_DEVICE, DEMO_PRINCIPALS } from './demo-principals.js';
export type {
  ClientAuthMethod,
  ClientStatus,
  DemoPrincipal,
  DeviceStatus,
  Emulator,
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
