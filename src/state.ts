/**
 * Where the state lives and what seals it, the same way for the agent, `provision` and `doctor`:
 * the state directory from the config, the key from a systemd credential when the unit passes one
 * (LoadCredentialEncrypted=pos-token-agent.key:...) or else `secret.key` in the state directory,
 * bound to this machine's id.
 */
import type { AgentConfig } from './config/index.js';
import { checkMachineId, defaultMachineId } from './identity/index.js';
import { KEY_CREDENTIAL_NAME, KEY_FILE, type KeySource, type OpenStoreOptions } from './store/index.js';
const { existsSync } = process.getBuiltinModule('node:fs');
const { hostname } = process.getBuiltinModule('node:os');
const { join } = process.getBuiltinModule('node:path');

export interface StateAccess {
  options: OpenStoreOptions;
  keyFile: string;
  keySource: KeySource;
  /** Why the key is not bound to the machine id, when it cannot be. */
  machineIdProblem?: string;
}

export interface StateDeps {
  env?: NodeJS.ProcessEnv;
  machineId?: () => Promise<string>;
  hostname?: () => string;
}

export async function stateAccess(config: AgentConfig, deps: StateDeps = {}): Promise<StateAccess> {
  const env = deps.env ?? process.env;
  const credentialsDir = env.CREDENTIALS_DIRECTORY;
  const credential = credentialsDir ? join(credentialsDir, KEY_CREDENTIAL_NAME) : undefined;
  const fromCredential = credential !== undefined && existsSync(credential);
  const keyFile = fromCredential ? credential : join(config.stateDir, KEY_FILE);
  let machineId: string | undefined;
  let machineIdProblem: string | undefined;
  try {
    const checked = checkMachineId(await (deps.machineId ?? defaultMachineId)(), (deps.hostname ?? hostname)());
    if (checked.ok) machineId = checked.value;
    else machineIdProblem = checked.reason;
  } catch (err) {
    machineIdProblem = `cannot read the machine id: ${(err as Error).message}`;
  }
  return {
    options: {
      dir: config.stateDir,
      keySource: fromCredential ? 'systemd credential' : 'key file',
      ...(fromCredential ? { keyFile } : {}),
      ...(machineId !== undefined ? { machineId } : {}),
    },
    keyFile,
    keySource: fromCredential ? 'systemd credential' : 'key file',
    ...(machineIdProblem !== undefined ? { machineIdProblem } : {}),
  };
}
