import { createAgentClient } from '../../api/index.js';
import { resolveConfigPath } from '../../config/index.js';
import { runDoctor, type DoctorCheck } from '../../doctor/index.js';
import { configOption, type Io, parse, println } from '../common.js';

export const doctorHelp = `Usage: pos-token-agent doctor [--json] [--no-login] [--config FILE]

Checks the config, the state directory and key, each account's device identity, stored
credentials, DNS, TCP, TLS and clock against its token service (through the proxy when one
is set), whether the credentials are accepted, the agent's socket, and whether the running
agent runs the config file as it is now (a warning, saying to reload, when it does not).
Every failure says how to fix it. Exit 0 when nothing failed, 1 otherwise (warnings do not
fail). On an installed box run it as root (sudo pos-token-agent doctor): the config and
the state directory are open to root and the agent only.

Whether the credentials are accepted is taken from the running agent; when no agent
answers, doctor logs in once (unless --no-login).`;

const MARK: Record<DoctorCheck['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skipped: '--  ' };

export async function doctorCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { ...configOption, json: { type: 'boolean' }, 'no-login': { type: 'boolean' } });
  if (values.help) return println(io.stdout, doctorHelp), 0;
  const report = await runDoctor({
    configPath: resolveConfigPath(values.config, io.env),
    env: io.env,
    noLogin: values['no-login'] ?? false,
    agent: (socket) => createAgentClient({ socket, timeoutMs: 5_000 }),
    ...(values.config !== undefined ? { configFlag: values.config } : {}),
  });
  if (values.json) {
    println(io.stdout, JSON.stringify(report, null, 2));
  } else {
    for (const c of report.checks) {
      println(io.stdout, `${MARK[c.status]} ${c.name}: ${c.detail}`);
      if (c.fix && (c.status === 'fail' || c.status === 'warn')) println(io.stdout, `       fix: ${c.fix}`);
    }
    const failed = report.checks.filter((c) => c.status === 'fail').length;
    const warned = report.checks.filter((c) => c.status === 'warn').length;
    println(io.stdout, failed ? `\n${failed} problem(s) to fix${warned ? `, ${warned} warning(s)` : ''}.` : `\nAll checks passed${warned ? ` (${warned} warning(s))` : ''}.`);
  }
  return report.ok ? 0 : 1;
}
