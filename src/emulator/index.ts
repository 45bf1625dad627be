/**
 * A faithful emulator of Egypt ETA eReceipt's identity service ("Authenticate POS",
 * POST {identity}/connect/token), with fault injection, for integration tests, the `demo`
 * command and till developers.
 *
 * Routes: POST /connect/token, GET /.well-known/openid-configuration(/jwks), and the admin
 * endpoints under /_emulator/ (stats, stats/reset, faults, devices).
 */
import type { EmulatorDevice } from './types.js';

export { createEmulator } from './emulator.js';
export type {
  DeviceStatus,
  Emulator,
  EmulatorDevice,
  EmulatorFaults,
  EmulatorOptions,
  EmulatorStats,
} from './types.js';

/** A fixed device for the demo command and till developers. Not a real credential. */
export const DEMO_DEVICE: EmulatorDevice = Object.freeze({
  clientId: '5b0f4c1e-8d2a-4c6b-9e3f-de0000000001',
  clientSecrets: Object.freeze([
    '2c9d7e4a-1f6b-4a8c-b5d3-de0000000001',
    '8e3a5b9c-7d2f-4e1a-a6c4-de0000000002',
  ]) as string[],
  posserial: 'DEMO-POS-0001',
  pososversion: 'os',
  posmodelframework: '1',
  presharedKey: '03ac6742-16f3-4e1a-9c5d-de00000000a1',
  scope: 'InvoicingAPI',
  status: 'active',
});
