import {
  AUTHORITIES,
  createEmulator,
  DEMO_PRINCIPALS,
  type Emulator,
  type EmulatorAuthority,
  type EmulatorOptions,
} from '../../emulator/index.js';
import { createLogger } from '../../lib/log.js';
import { CliError, type Io, parse, println, UsageError } from '../common.js';
const { readFileSync } = process.getBuiltinModule('node:fs');

export const emulatorHelp = `Usage: pos-token-agent emulator [--authority NAME] [--port N] [--host ADDR]
                                [--lifetime S] [--devices FILE] [--lenient]

Runs the bundled identity-service emulator in the foreground, speaking one authority's wire
format: ${AUTHORITIES.join(', ')} (default eta-ereceipt).
It registers that authority's demo principal (printed at start) plus those in FILE (a JSON
array of devices for eta-ereceipt, companies {vat, apiKey} for impact-gr, clients for the
others), issues RS256 JWTs, answers the documented errors, and takes faults at
POST /_emulator/faults. --lenient tolerates deviations from the documented wire.
--lifetime defaults to the authority's (3600 s; impact-gr 900; sepay 86400).

It also serves the authority's submission API on the same port (an account's apiUrl is
the emulator's URL): ANY /api/... with a Bearer token it issued (else 401); eta-ereceipt's
POST /api/v1/receiptsubmissions; /api/_echo/... and /api/_large?bytes=N for tests. What
arrived: GET /_emulator/api/submissions; API faults: POST /_emulator/api/faults.`;

function isAuthority(name: string): name is EmulatorAuthority {
  return (AUTHORITIES as readonly string[]).includes(name);
}

function readPrincipals(file: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read principals from ${file}: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new CliError(`${file}: expected a JSON array`);
  return parsed;
}

/** A curl command line a till developer can paste; only demo fixtures go in it. */
function tryIt(emulator: Emulator): string {
  const demo = DEMO_PRINCIPALS[emulator.authority];
  const c = demo.credentials;
  const url = `${emulator.url}${emulator.paths.token}`;
  const basic = `-u '${c.clientId}:${c.clientSecret}'`;
  const form = `-d grant_type=client_credentials`;
  switch (emulator.authority) {
    case 'eta-ereceipt': {
      const id = demo.account.identity!;
      return (
        `curl ${url} -d grant_type=client_credentials -d client_id=${c.clientId} -d client_secret=${c.clientSecret} ` +
        `-H 'posserial: ${id.posserial}' -H 'pososversion: ${id.pososversion}' ` +
        `-H 'posmodelframework: ${id.posmodelframework}' -H 'presharedkey: ${c.presharedKey}'`
      );
    }
    case 'myinvois':
      return `curl ${url} ${form} -d client_id=${c.clientId} -d client_secret=${c.clientSecret} -d scope=InvoicingAPI`;
    case 'eta-einvoicing':
    case 'oauth2':
      return `curl ${url} ${basic} ${form}`;
    case 'sepay':
      return `curl -X POST ${url} ${basic}`;
    case 'impact-gr':
      return `curl ${url} -H 'content-type: application/json' -d '${JSON.stringify({ vat: c.vat, key: c.apiKey })}'`;
  }
}

export async function emulatorCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string' },
    authority: { type: 'string' },
    lifetime: { type: 'string' },
    devices: { type: 'string' },
    lenient: { type: 'boolean' },
  });
  if (values.help) return println(io.stdout, emulatorHelp), 0;
  const authority = values.authority ?? 'eta-ereceipt';
  if (!isAuthority(authority)) {
    throw new UsageError(`--authority takes one of ${AUTHORITIES.join(', ')}`);
  }
  const port = values.port === undefined ? 8085 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port takes 0 to 65535');
  const lifetimeS = values.lifetime === undefined ? undefined : Number(values.lifetime);
  if (lifetimeS !== undefined && (!Number.isInteger(lifetimeS) || lifetimeS < 1)) {
    throw new UsageError('--lifetime takes whole seconds');
  }
  const demo = DEMO_PRINCIPALS[authority];
  const [kind, builtIn] = Object.entries(demo.register)[0] as [keyof EmulatorOptions, unknown[]];
  const fromFile = values.devices ? readPrincipals(values.devices) : [];
  const principals = [...builtIn, ...fromFile];

  let emulator: Emulator;
  try {
    emulator = createEmulator({
      authority,
      host: values.host ?? '127.0.0.1',
      port,
      ...(lifetimeS !== undefined ? { lifetimeS } : {}),
      [kind]: principals,
      strict: !values.lenient,
      log: createLogger({ write: (l) => io.stderr.write(l) }),
    });
  } catch (err) {
    if (err instanceof TypeError) {
      if (!values.devices) throw new CliError(err.message);
      // Problems name `devices[i]` counting the demo principal first: name the file's own entries instead.
      const own = err.message.replace(new RegExp(`\\b${kind}\\[(\\d+)\\]`, 'g'), (_, i: string) => `[${Number(i) - builtIn.length}]`);
      throw new CliError(`invalid principals in ${values.devices}: ${own}`);
    }
    throw err;
  }
  await emulator.start();
  const { paths, url } = emulator;
  println(io.stdout, `${authority} emulator (${values.lenient ? 'lenient' : 'strict'}) listening on ${url}`);
  println(io.stdout, `token endpoint: POST ${url}${paths.token}`);
  if (paths.refresh) println(io.stdout, `refresh endpoint: POST ${url}${paths.refresh}`);
  println(io.stdout, `faults: POST ${url}/_emulator/faults   stats: GET ${url}/_emulator/stats`);
  println(io.stdout, `API (apiUrl): ${url}   received: GET /_emulator/api/submissions   faults: POST /_emulator/api/faults`);
  println(io.stdout, `demo credentials (fixtures, not real): ${JSON.stringify(demo.credentials)}`);
  const { tokenPath: _path, ...account } = demo.account;
  if (Object.keys(account).length > 0) println(io.stdout, `demo account settings: ${JSON.stringify(account)}`);
  println(io.stdout, `try it: ${tryIt(emulator)}`);
  return new Promise<number>((resolve) => {
    const stop = (): void => void emulator.stop().then(() => resolve(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
