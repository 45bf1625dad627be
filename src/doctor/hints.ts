/**
 * The words of doctor's fixes that depend on this box: which command sets the box up, whether `sudo` is needed,
 * which group gives access, which time-sync and DNS tools and files there are. Pure functions of `BoxFacts`, so
 * that each cause maps to one fix, tested as a table.
 */
import { RESTART_SETTINGS } from '../config/index.js';
import { serviceHints, UNIT_NAME } from '../lib/service.js';
import type { BoxFacts, Denial } from './box.js';

/** The technician's set-up, as install.sh and the .deb install it (a wrapper that runs `pos-token-agent setup`). */
export const SETUP_COMMAND = 'pos-token-agent-provision';

/** How doctor's own checks are run again with more rights. */
const DOCTOR = 'pos-token-agent doctor';

/** `command` run as root: as it is for root, with sudo for anyone else, or "as root" where there is no sudo. */
export function asRoot(command: string, box: BoxFacts): string {
  if (box.uid === 0 || box.uid === undefined) return command;
  return box.command('sudo') ? `sudo ${command}` : `${command} (as root)`;
}

/** The set-up command with `args`: pos-token-agent-provision where installed, else the command it runs. */
export function setupCommand(box: BoxFacts, args = ''): string {
  const command = box.command(SETUP_COMMAND) ? SETUP_COMMAND : 'pos-token-agent setup';
  return asRoot(args ? `${command} ${args}` : command, box);
}

export interface ProvisionContext {
  box: BoxFacts;
  /** systemd runs the agent of this config: credentials are stored as the agent's user, which the set-up does. */
  managed: boolean;
}

/**
 * How to store an account's credentials. Where systemd runs the agent, the set-up (run as root, it runs provision
 * as the agent's user, in the service's context): `provision` run as root would leave a database the agent's user
 * cannot open. Elsewhere `provision`, as the user that runs the agent.
 */
export function provisionHint(account: string, ctx: ProvisionContext): string {
  return ctx.managed ? setupCommand(ctx.box, `--account ${account}`) : `pos-token-agent provision --account ${account}`;
}

/** How to start, restart and reload the agent: systemctl (as root) where systemd runs it, else by hand. */
export interface AgentHints {
  /** Starts it (and at boot, under systemd). */
  enable: string;
  /** Restarts it and says where its log is. */
  restart: string;
  /** Makes it read its config again. */
  reload: string;
  /** A reload applies the accounts; these settings need a restart. */
  restartNote: string;
}

export function agentHints(configPath: string, managed: boolean, box: BoxFacts): AgentHints {
  const settings = `${RESTART_SETTINGS.slice(0, -1).join(', ')} and ${RESTART_SETTINGS.at(-1)}`;
  if (!managed) {
    const byHand = serviceHints(configPath, false);
    return {
      enable: byHand.enable,
      restart: byHand.restart,
      reload: 'send the agent SIGHUP (kill -HUP with its process id)',
      restartNote: `a change of ${settings} takes effect only when the agent is started again`,
    };
  }
  return {
    enable: asRoot(`systemctl enable --now ${UNIT_NAME}.socket ${UNIT_NAME}.service`, box),
    restart: `${asRoot(`systemctl restart ${UNIT_NAME}`, box)}; then ${asRoot(`journalctl -u ${UNIT_NAME}`, box)}`,
    reload: asRoot(`systemctl reload ${UNIT_NAME}`, box),
    restartNote: `a change of ${settings} takes effect only with a restart: ${asRoot(`systemctl restart ${UNIT_NAME}`, box)}`,
  };
}

/** The user doctor runs as, for a message. */
function me(box: BoxFacts): string {
  if (box.uid === undefined) return 'this user';
  const name = box.userName(box.uid);
  return name ? `user ${name}` : `uid ${box.uid}`;
}

/** The group tills join to reach the socket (systemd/pos-token-agent.sysusers, the socket unit's SocketGroup=). */
export const CLIENT_GROUP = 'pos-token-clients';

export interface PermissionHint {
  /** Suggest joining this group when it is the one that gives access (the clients group; never root's or another). */
  joinGroup?: string;
}

/**
 * A permission denied on `path` (`verb`: "read", "connect to", "look inside"), explained: what refuses it and who
 * may, and how to run doctor so that it may.
 */
export function permissionDenied(
  verb: string,
  path: string,
  denial: Denial | undefined,
  box: BoxFacts,
  hint: PermissionHint = {},
): { detail: string; fix: string } {
  let why = '';
  if (denial) {
    const owner = denial.ownerMay && denial.owner !== 'root' ? [denial.owner] : [];
    const who = ['root', ...owner, ...(denial.groupMay ? [`the group ${denial.group}`] : [])];
    const list = who.length > 1 ? `${who.slice(0, -1).join(', ')} and ${who.at(-1)}` : 'root';
    why = `: ${denial.onTheWay ? `the directory ${denial.path}` : denial.path} is ${denial.shown} (only ${list} may)`;
  }
  const detail = `permission denied: doctor, running as ${me(box)}, cannot ${verb} ${path}${why}`;
  if (box.uid === 0) {
    return { detail, fix: `check the owner and mode of ${denial?.path ?? path} (ls -ld ${denial?.path ?? path}): root is refused, so something other than its mode refuses it` };
  }
  const rerun = `run doctor as root: ${box.command('sudo') ? `sudo ${DOCTOR}` : DOCTOR}`;
  if (!(denial?.groupMay && denial.group === hint.joinGroup)) return { detail, fix: rerun };
  const join = box.command('usermod') ? ` (${asRoot(`usermod -aG ${denial.group} $USER`, box)}, then log in again)` : ', then log in again';
  return { detail, fix: `add your user to the group ${denial.group}${join}, or ${rerun}` };
}

/** Where this box's DNS server is set, and how to try a name by hand (nothing where there is no getent). */
export function dnsHint(box: BoxFacts): { server: string; tryName(name: string, before: string, after?: string): string } {
  const getent = box.command('getent');
  return {
    server: box.exists('/etc/resolv.conf') ? 'check the DNS server in /etc/resolv.conf' : "check this box's DNS server setting",
    tryName: (name, before, after = '') => (getent ? `${before}getent hosts ${name}${after}` : ''),
  };
}

/** How to see, sync and set this box's time: timedatectl where there is one, else what any box has. */
export function clockHint(box: BoxFacts): { see: string; sync: string; set: string; brief: string } {
  if (box.command('timedatectl')) {
    const server = box.exists('/etc/systemd/timesyncd.conf') ? ' (and check the NTP server in /etc/systemd/timesyncd.conf is reachable)' : '';
    return {
      see: 'timedatectl status should say "System clock synchronized: yes"',
      sync: `enable NTP with timedatectl set-ntp true${server}`,
      set: 'timedatectl set-time',
      brief: 'timedatectl status; timedatectl set-ntp true',
    };
  }
  const ntp = "start this box's NTP client (chrony, ntpd or systemd-timesyncd) and check that it reaches its NTP server";
  return { see: 'date shows the time this box has', sync: ntp, set: "date -s 'YYYY-MM-DD HH:MM:SS'", brief: `date shows it; ${ntp}` };
}

/** How to give this box a machine id (/etc/machine-id). */
export function machineIdHint(box: BoxFacts): string {
  if (box.command('systemd-machine-id-setup')) return asRoot('systemd-machine-id-setup', box);
  if (box.command('dbus-uuidgen')) return asRoot('dbus-uuidgen --ensure=/etc/machine-id', box);
  return '32 lowercase hex digits, made once when the box is installed';
}
