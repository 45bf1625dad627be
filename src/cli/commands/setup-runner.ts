/**
 * Running the agent's CLI for a step of set-up: as the invoking user, or where the agent's state is its own
 * (as the agent's user, or in the service's context through systemd-run when the unit has its key as a systemd
 * credential); every step bounded in time.
 */
import { CliError, type Io } from '../common.js';
const { spawn, spawnSync } = process.getBuiltinModule('node:child_process');
const { existsSync } = process.getBuiltinModule('node:fs');

export const NAME = 'pos-token-agent';
const SYSTEM_BUS = '/run/dbus/system_bus_socket';

export interface Runner {
  /** The CLI as the invoking user. */
  self: string[];
  /** The CLI where the agent's state is its own: in the credential's context, else as the agent's user. */
  agent: string[];
  /** `runuser -u USER --` when set-up runs as root for another agent user, else empty. */
  asAgent: string[];
}

export function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export const systemdRunning = (): boolean => existsSync('/run/systemd/system') && commandExists('systemctl');

function cliCommand(io: Io): string[] {
  const bin = io.env.POS_TOKEN_AGENT_BIN;
  if (!bin) return [process.execPath, process.argv[1]!];
  if (bin.endsWith('.js')) {
    if (!existsSync(bin)) throw new CliError(`${bin} not found (set POS_TOKEN_AGENT_BIN)`);
    return [process.execPath, bin];
  }
  if (!bin.includes('/') ? !commandExists(bin) : !existsSync(bin)) throw new CliError(`${bin} not found (set POS_TOKEN_AGENT_BIN)`);
  return [bin];
}

/** The unit's LoadCredential(Encrypted)= entries for the key, as systemd has the unit (drop-ins included). */
function credentialProperties(): string[] {
  const r = spawnSync('systemctl', ['cat', `${NAME}.service`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  const props: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (/^LoadCredential(Encrypted)?=pos-token-agent\.key(:.*)?$/.test(line.trim())) props.push('-p', line.trim());
  }
  return props;
}

/** How set-up runs the CLI: `root` (--root DIR) runs everything as the invoking user, without systemd. */
export function makeRunner(io: Io, options: { user: string; root: string; systemctl: boolean }): Runner {
  const cli = cliCommand(io);
  const isRoot = process.getuid?.() === 0;
  let asAgent: string[] = [];
  if (isRoot && !options.root) {
    if (spawnSync('id', ['-u', options.user], { stdio: 'ignore' }).status !== 0) throw new CliError(`there is no user ${options.user}; run install.sh first`);
    if (options.user !== 'root') {
      if (!commandExists('runuser')) throw new CliError('runuser not found (util-linux)');
      asAgent = ['runuser', '-u', options.user, '--'];
    }
  }
  const credProps = !options.root && options.systemctl && isRoot && systemdRunning() ? credentialProperties() : [];
  if (credProps.length && !io.env.DBUS_SYSTEM_BUS_ADDRESS && !existsSync(SYSTEM_BUS)) {
    // systemd-run --wait and --pipe talk to systemd through D-Bus (without them it would use systemd's own socket).
    throw new CliError(
      `the service takes its key from a systemd credential, so the steps that open the state run in its context with systemd-run --wait, ` +
        `which needs the D-Bus system bus (${SYSTEM_BUS} is missing): install dbus (apt-get install dbus), then run this again`,
    );
  }
  const inService = [
    'systemd-run', '--quiet', '--pipe', '--wait', '--collect', '--service-type=exec',
    '-p', `User=${options.user}`, '-p', `Group=${options.user}`, '-p', 'SupplementaryGroups=dialout', '-p', 'UMask=0077',
    '-p', `StateDirectory=${NAME}`, '-p', 'StateDirectoryMode=0700', ...credProps, '--', ...cli,
  ];
  return { self: cli, agent: credProps.length ? inService : [...asAgent, ...cli], asAgent };
}

export interface StepResult {
  code: number;
  stdout: string;
}

/** Runs one step, bounded in time; its stderr goes to ours unless `quiet`; `stdin` is written and closed. */
export function runStep(
  command: string[],
  args: string[],
  io: Io,
  options: { stdin?: string; quiet?: boolean; timeoutMs: number; stdoutTo?: NodeJS.WritableStream },
): Promise<StepResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], {
      stdio: ['pipe', 'pipe', options.quiet ? 'ignore' : 'pipe'],
      env: io.env,
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => {
      if (options.stdoutTo) options.stdoutTo.write(c);
      else stdout += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => io.stderr.write(c));
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CliError(`cannot run ${command.join(' ')}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 1 : 0), stdout });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.stdin ?? '');
  });
}
