import { readFileSync } from 'node:fs';
import { createEmulator, DEMO_DEVICE, type EmulatorDevice } from '../../emulator/index.js';
import { createLogger } from '../../lib/log.js';
import { CliError, type Io, parse, println, UsageError } from '../common.js';

export const emulatorHelp = `Usage: pos-token-agent emulator [--port N] [--host ADDR] [--authority eta-ereceipt]
                                [--lifetime S] [--devices FILE] [--lenient]

Runs the bundled identity-service emulator in the foreground. It registers the demo
device (printed at start) plus the devices in FILE (a JSON array), issues RS256 JWTs,
answers the documented errors, and takes faults at POST /_emulator/faults.`;

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
  if (values.authority && values.authority !== 'eta-ereceipt') {
    throw new UsageError(`--authority ${values.authority} is not emulated by this version (eta-ereceipt only)`);
  }
  const port = values.port === undefined ? 8085 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port takes 0 to 65535');
  const lifetimeS = values.lifetime === undefined ? 3600 : Number(values.lifetime);
  if (!Number.isInteger(lifetimeS) || lifetimeS < 1) throw new UsageError('--lifetime takes whole seconds');
  const devices: EmulatorDevice[] = [DEMO_DEVICE];
  if (values.devices) {
    try {
      devices.push(...(JSON.parse(readFileSync(values.devices, 'utf8')) as EmulatorDevice[]));
    } catch (err) {
      throw new CliError(`cannot read devices from ${values.devices}: ${(err as Error).message}`);
    }
  }
  const emulator = createEmulator({
    host: values.host ?? '127.0.0.1',
    port,
    lifetimeS,
    devices,
    strict: !values.lenient,
    log: createLogger({ write: (l) => io.stderr.write(l) }),
  });
  await emulator.start();
  println(io.stdout, `eReceipt identity-service emulator listening on ${emulator.url}`);
  println(io.stdout, `token endpoint: ${emulator.url}/connect/token   faults: POST ${emulator.url}/_emulator/faults`);
  println(io.stdout, `demo device (a fixture, not a real credential): ${JSON.stringify(DEMO_DEVICE)}`);
  return new Promise<number>((resolve) => {
    const stop = (): void => void emulator.stop().then(() => resolve(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
