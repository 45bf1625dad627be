/**
 * pos-token-agent <command> [options]: exit 0 success, 1 failure, 2 usage error (an unknown account too). Output
 * into a pipe closed early (`status | head -2`) is dropped quietly; the exit status stays the command's.
 */
import { ConfigError } from '../config/index.js';
import { SecretKeyError, StoreError } from '../store/index.js';
import { VERSION } from '../version.js';
import { CliError, type Io, println, quietOnClosedPipe, UnknownAccountError, UsageError } from './common.js';
type Command = (argv: string[], io: Io) => Promise<number>;

// Commands are loaded when used: `run` (the service, started at every boot) must not pay for the
// emulator, doctor or provisioning code, in start time or in resident memory.
const COMMANDS: Record<string, { load: () => Promise<Command>; summary: string }> = {
  run: { load: async () => (await import('./commands/run.js')).runCommand, summary: 'the agent in the foreground (systemd ExecStart)' },
  provision: {
    load: async () => (await import('./commands/provision.js')).provisionCommand,
    summary: "store an account's credentials (hidden prompt or --stdin JSON)",
  },
  token: { load: async () => (await import('./commands/token.js')).tokenCommand, summary: 'ask the running agent for a token' },
  status: { load: async () => (await import('./commands/token.js')).statusCommand, summary: 'what the running agent reports' },
  reload: {
    load: async () => (await import('./commands/reload.js')).reloadCommand,
    summary: 'make the running agent read its config again, and wait for its answer (systemd ExecReload)',
  },
  outbox: {
    load: async () => (await import('./commands/outbox.js')).outboxCommand,
    summary: "list, show, retry or cancel what the agent delivers to the authority's API",
  },
  setup: {
    load: async () => (await import('./commands/setup.js')).setupCommand,
    summary: 'guided set-up for technicians: account, identity, credentials, units (pos-token-agent-provision)',
  },
  identity: {
    load: async () => (await import('./commands/identity.js')).identityCommand,
    summary: "read the device identity with the account's device profile",
  },
  doctor: {
    load: async () => (await import('./commands/doctor.js')).doctorCommand,
    summary: 'check config, identity, clock, network, TLS, credentials, permissions',
  },
  emulator: { load: async () => (await import('./commands/emulator.js')).emulatorCommand, summary: 'the bundled identity-service emulator' },
  demo: {
    load: async () => (await import('./commands/demo.js')).demoCommand,
    summary: 'emulator + agent in a temporary directory; prints a token',
  },
};

export const HELP = `Usage: pos-token-agent <command> [options]

Keeps a valid tax-authority token for point-of-sale software and serves it on a local
Unix socket.

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Every command takes --help. Config: --config FILE, else $POS_TOKEN_AGENT_CONFIG,
else /etc/pos-token-agent/config.json.`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    println(name ? io.stdout : io.stderr, HELP);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    println(io.stdout, VERSION);
    return 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    return await (await command.load())(rest, io);
  } catch (err) {
    if (err instanceof UnknownAccountError) {
      // Its message says where the accounts are listed; the command's help would not.
      println(io.stderr, `pos-token-agent: ${err.message}`);
      return 2;
    }
    if (err instanceof UsageError) {
      println(io.stderr, `pos-token-agent: ${err.message}\nSee: pos-token-agent ${command ? `${name} ` : ''}--help`);
      return 2;
    }
    if (err instanceof CliError || err instanceof ConfigError || err instanceof SecretKeyError || err instanceof StoreError) {
      println(io.stderr, `pos-token-agent: ${err.message}`);
      return 1;
    }
    println(io.stderr, `pos-token-agent: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

quietOnClosedPipe(process.stdout);
quietOnClosedPipe(process.stderr);
const io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
    // Commands close what they open; a lingering handle must not keep a finished command alive.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    println(process.stderr, `pos-token-agent: ${String(err)}`);
    process.exit(1);
  },
);
