const { existsSync } = process.getBuiltinModule('node:fs');
/**
 * How the agent is run on this box, for the fix hints commands print: by systemd only when systemd runs
 * the box, the unit is installed and the config in use is the unit's; otherwise by hand, with that config.
 */

export const UNIT_NAME = 'pos-token-agent';
/** The config the unit runs with (Environment=POS_TOKEN_AGENT_CONFIG= in systemd/pos-token-agent.service). */
export const UNIT_CONFIG_PATH = '/etc/pos-token-agent/config.json';
/** Where install.sh and the .deb put the unit, and where an admin may. */
const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

export interface ServiceProbe {
  /** Default: the file system. */
  exists?: (path: string) => boolean;
}

/** Whether systemd runs the agent that uses `configPath` (sd_booted(3): /run/systemd/system exists). */
export function managedBySystemd(configPath: string, probe: ServiceProbe = {}): boolean {
  const exists = probe.exists ?? existsSync;
  return (
    configPath === UNIT_CONFIG_PATH &&
    exists('/run/systemd/system') &&
    UNIT_DIRS.some((dir) => exists(`${dir}/${UNIT_NAME}.service`))
  );
}

export interface ServiceHints {
  /** Starts the agent. */
  start: string;
  /** Starts it and keeps it running (at boot, under systemd). */
  enable: string;
  /** Restarts it and says where its log is. */
  restart: string;
}

export function serviceHints(configPath: string, managed: boolean): ServiceHints {
  if (managed) {
    return {
      start: `systemctl start ${UNIT_NAME}`,
      enable: `systemctl enable --now ${UNIT_NAME}.socket ${UNIT_NAME}.service`,
      restart: `systemctl restart ${UNIT_NAME}; then journalctl -u ${UNIT_NAME}`,
    };
  }
  const run = `pos-token-agent run --config ${shellQuote(configPath)}`;
  return {
    start: run,
    enable: run,
    restart: `stop the agent and start it again with: ${run}; it logs to its standard error`,
  };
}

/** A path as one shell word: as it is when that is safe, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
