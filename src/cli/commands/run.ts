import { startAgent } from '../../agent.js';
import { ConfigError, loadConfig, resolveConfigPath } from '../../config/index.js';
import { createLogger } from '../../lib/log.js';
import { configOption, type Io, parse, println } from '../common.js';

export const runHelp = `Usage: pos-token-agent run [--config FILE]

Runs the agent in the foreground (systemd's ExecStart): keeps a token for every account
and serves it on the Unix socket. Logs are JSON lines on standard error.
Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads the config (a bad config is
reported and the running one kept).`;

export async function runCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, configOption);
  if (values.help) return println(io.stdout, runHelp), 0;
  const path = resolveConfigPath(values.config, io.env);
  const config = loadConfig(path, io.env);
  const log = createLogger({ level: config.logLevel, write: (l) => io.stderr.write(l) });
  process.umask(0o027);
  const agent = await startAgent(config, { log });
  log.info('agent started', { config: path, accounts: Object.keys(config.accounts), pid: process.pid });

  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info('stopping', { signal });
      process.off('SIGHUP', reload);
      const force = setTimeout(() => {
        log.error('stop took too long; exiting');
        resolve(1);
      }, 10_000);
      force.unref();
      void agent.stop().then(() => {
        clearTimeout(force);
        resolve(0);
      });
    };
    const reload = (): void => {
      try {
        agent.reload(loadConfig(path, io.env));
      } catch (err) {
        const problems = err instanceof ConfigError ? err.problems : [String(err)];
        log.error('config reload refused; keeping the running config', { config: path, problems });
      }
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', reload);
  });
}
