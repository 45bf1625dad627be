import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../../agent.js';
import { createAgentClient } from '../../api/index.js';
import { authorities, loadConfig } from '../../authorities/index.js';
import { createEmulator, DEMO_DEVICE } from '../../emulator/index.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { type Io, parse, println } from '../common.js';
import { provisionAccount } from './provision.js';

export const demoHelp = `Usage: pos-token-agent demo [--keep] [--verbose]

Starts the bundled emulator and the agent in a temporary directory, provisions the demo
device, and prints a token fetched through the agent's Unix socket, then the agent's status.
With --keep both keep running until Ctrl-C, so you can try the socket yourself.`;

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
    println(io.stdout, `1. Emulator of the eReceipt identity service at ${emulator.url}`);
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
      println(io.stdout, `\nTry: curl --unix-socket ${socket} -H 'X-Pos-Agent: 1' http://agent/v1/token`);
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
