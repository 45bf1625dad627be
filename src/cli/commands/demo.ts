import { startAgent } from '../../agent.js';
import { createAgentClient } from '../../api/index.js';
import { authorities, loadConfig } from '../../authorities/index.js';
import { createEmulator, DEMO_DEVICE } from '../../emulator/index.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { type Io, parse, println } from '../common.js';
import { provisionAccount } from './provision.js';
const { mkdtempSync, rmSync, writeFileSync } = process.getBuiltinModule('node:fs');
const { tmpdir } = process.getBuiltinModule('node:os');
const { join } = process.getBuiltinModule('node:path');

export const demoHelp = `Usage: pos-token-agent demo [--keep] [--verbose]

Starts the bundled emulator and the agent in a temporary directory, provisions the demo
device, and prints a token fetched through the agent's Unix socket, then the agent's status.
The demo account's API (apiUrl) is the emulator's, on the same port, so the outbox and the
proxy work too. With --keep both keep running until Ctrl-C, so you can try the socket
yourself: it prints curl lines for a token, a receipt queued to the outbox, its state, and
the proxy.`;

/** The curl lines --keep prints: a token, a receipt through the outbox and its state, the proxy. */
export function demoTryLines(socket: string): string[] {
  const curl = `curl -s --unix-socket ${socket} -H 'X-Pos-Agent: 1'`;
  const json = `${curl} -H 'Content-Type: application/json'`;
  const receipt = (uuid: string, n: string): string => `{"header": {"uuid": "${uuid}", "receiptNumber": "${n}"}}`;
  return [
    `${curl} http://agent/v1/token; echo`,
    '# a receipt queued to the outbox (202 once it is on disk), then its state: "delivered", with the API\'s answer',
    `${json} http://agent/v1/outbox -d '{"account": "default", "path": "${RECEIPTS_PATH}", "key": "demo-receipt-1", "body": {"receipts": [${receipt('demo-receipt-1', 'R-1')}]}}'; echo`,
    `${curl} http://agent/v1/outbox/ID; echo      # ID: the "id" the line above answered`,
    '# the same API through the proxy, answered at once',
    `${json} http://agent/v1/proxy/default${RECEIPTS_PATH} -d '{"receipts": [${receipt('demo-receipt-2', 'R-2')}]}'; echo`,
  ];
}

const RECEIPTS_PATH = '/api/v1/receiptsubmissions';

export async function demoCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { keep: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' } });
  if (values.help) return println(io.stdout, demoHelp), 0;
  const dir = mkdtempSync(join(tmpdir(), 'pos-token-agent-demo-'));
  const log = values.verbose ? createLogger({ write: (l) => io.stderr.write(l), secretKeys: authorities.secretFields }) : silentLogger;
  const emulator = createEmulator({ devices: [DEMO_DEVICE], lifetimeS: 3600, log });
  await emulator.start();
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    const configPath = join(dir, 'config.json');
    const socket = join(dir, 'run', 'agent.sock');
    writeFileSync(
      configPath,
      JSON.stringify(
        {
          socket,
          stateDir: join(dir, 'state'),
          accounts: {
            default: {
              authority: 'eta-ereceipt',
              identityUrl: emulator.url,
              // The emulator serves the authority's API on the same port: the outbox and the proxy work.
              apiUrl: emulator.url,
              identity: {
                posserial: DEMO_DEVICE.posserial,
                pososversion: DEMO_DEVICE.pososversion,
                posmodelframework: DEMO_DEVICE.posmodelframework,
              },
            },
          },
        },
        null,
        2,
      ),
    );
    const config = loadConfig(configPath, {});
    println(io.stdout, `1. Emulator of the eReceipt identity service and API at ${emulator.url}`);
    println(io.stdout, `2. Config written to ${configPath}`);
    await provisionAccount(
      config,
      'default',
      { clientId: DEMO_DEVICE.clientId, clientSecret: DEMO_DEVICE.clientSecrets[0]!, presharedKey: DEMO_DEVICE.presharedKey! },
      { verify: false },
    );
    println(io.stdout, '3. Demo credentials provisioned (encrypted in the state database)');
    agent = await startAgent(config, { log });
    println(io.stdout, `4. Agent listening on ${socket}`);
    const client = createAgentClient({ socket });
    const res = await client.token({ account: 'default' });
    println(io.stdout, `\nGET /v1/token over the socket -> ${res.ok ? 200 : res.status}`);
    println(io.stdout, JSON.stringify(res.ok ? res.token : res.error, null, 2));
    const status = await client.status();
    println(io.stdout, '\nGET /v1/status -> 200');
    println(io.stdout, JSON.stringify(status, null, 2));
    println(io.stdout, `\nLogins the emulator saw: ${emulator.stats().issued}`);
    if (values.keep) {
      println(io.stdout, `\nTry:\n${demoTryLines(socket).join('\n')}`);
      println(io.stdout, 'Ctrl-C stops the demo.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return res.ok ? 0 : 1;
  } finally {
    await agent?.stop();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
