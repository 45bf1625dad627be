/**
 * A fixed principal per authority for the demo command, till developers and tests. Fixtures, not real
 * credentials: every value is made up and marked "de(mo)".
 */
import type { DemoPrincipal, EmulatorAuthority, EmulatorClient, EmulatorCompany, EmulatorDevice } from './types.js';
import { WIRES } from './wire/index.js';

/** The eta-ereceipt demo POS. */
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

function client(n: number, extra: Partial<EmulatorClient> = {}): EmulatorClient {
  return Object.freeze({
    clientId: `5b0f4c1e-8d2a-4c6b-9e3f-de00000000${n}1`,
    clientSecrets: Object.freeze([`2c9d7e4a-1f6b-4a8c-b5d3-de00000000${n}1`]) as string[],
    ...extra,
  });
}

function fromClient(authority: EmulatorAuthority, c: EmulatorClient, account: Partial<DemoPrincipal['account']> = {}): DemoPrincipal {
  return Object.freeze({
    authority,
    credentials: Object.freeze({ clientId: c.clientId, clientSecret: c.clientSecrets[0]! }),
    register: Object.freeze({ clients: Object.freeze([c]) as EmulatorClient[] }),
    account: Object.freeze({ tokenPath: WIRES[authority].paths.token, ...account }),
  });
}

const DEMO_COMPANY: EmulatorCompany = Object.freeze({ vat: 'EL999999999', apiKey: 'demo-impact-api-key-de0000000001' });

export const DEMO_PRINCIPALS: Readonly<Record<EmulatorAuthority, DemoPrincipal>> = Object.freeze({
  'eta-ereceipt': Object.freeze({
    authority: 'eta-ereceipt',
    credentials: Object.freeze({
      clientId: DEMO_DEVICE.clientId,
      clientSecret: DEMO_DEVICE.clientSecrets[0]!,
      presharedKey: DEMO_DEVICE.presharedKey!,
    }),
    register: Object.freeze({ devices: Object.freeze([DEMO_DEVICE]) as EmulatorDevice[] }),
    account: Object.freeze({
      identity: Object.freeze({
        posserial: DEMO_DEVICE.posserial,
        pososversion: DEMO_DEVICE.pososversion!,
        posmodelframework: DEMO_DEVICE.posmodelframework!,
      }),
      tokenPath: WIRES['eta-ereceipt'].paths.token,
    }),
  }),
  'eta-einvoicing': fromClient('eta-einvoicing', client(2, { scopes: ['InvoicingAPI'] })),
  myinvois: fromClient('myinvois', client(3, { scopes: ['InvoicingAPI'] })),
  sepay: fromClient('sepay', client(4)),
  oauth2: fromClient('oauth2', client(5, { authMethod: 'client_secret_basic', scopes: ['api'] }), {
    clientAuth: 'client_secret_basic',
  }),
  'impact-gr': Object.freeze({
    authority: 'impact-gr',
    credentials: Object.freeze({ vat: DEMO_COMPANY.vat, apiKey: DEMO_COMPANY.apiKey }),
    register: Object.freeze({ companies: Object.freeze([DEMO_COMPANY]) as EmulatorCompany[] }),
    account: Object.freeze({ tokenPath: WIRES['impact-gr'].paths.token }),
  }),
});
