/**
 * `spa-knockd doctor [--config FILE] [--json]`: the classic reasons a knock "works" but the port stays closed, one
 * finding per line with its severity and what to change; exit 0 when there is none, 1 otherwise (docs/operations.md).
 * The data comes from server/doctor-gather.ts; each check is a pure function (server/doctor-checks.ts,
 * server/doctor-chains.ts with server/doctor-nft.ts and server/doctor-iptables.ts).
 * @module
 */
import { dedupeAccesses, formatAccess } from '../shared/access.js';
import { isSpaError } from '../shared/errors.js';
import type { Config } from './config.js';
import { loadConfig } from './config-file.js';
import { type DropTarget, type Finding, dropFindings } from './doctor-chains.js';
import { clockFindings, configFinding, daemonFinding, familyFindings, gateFindings } from './doctor-checks.js';
import { type GatherDeps, type Gathered, gather } from './doctor-gather.js';
import { iptablesSaveTable } from './doctor-iptables.js';
import { nftTables } from './doctor-nft.js';
import { CHAIN_PRIO } from './firewall/nft-script.js';

/** Every finding for a config and what was gathered (pure). */
export function diagnose(config: Config, g: Gathered): Finding[] {
  const out: Finding[] = [];
  if (!g.status.ok) out.push(daemonFinding(g.status.why));
  if ('error' in g.gate)
    out.push({
      severity: 'error',
      code: 'gate-missing',
      message: `cannot check the gate: ${g.gate.error}`,
      fix: `install the tools of backend ${config.firewall.backend} and run doctor as root`,
    });
  else out.push(...gateFindings(g.gate.problems, g.status.ok));
  const targets: DropTarget[] = [
    ...config.firewall.protect.map((access) => ({ access, role: 'protected' as const })),
    { access: { proto: 'udp', port: config.listen.port }, role: 'knock' },
    // fixed classic sequences with nftables: a chain before ours that drops a step hides it from our rules
    ...(config.firewall.backend === 'nftables'
      ? config.sequences.flatMap((q) =>
          dedupeAccesses(q.steps).map((access) => ({
            access,
            role: 'step' as const,
            before: CHAIN_PRIO,
            sequence: q.name,
          })),
        )
      : []),
  ];
  const own = { backend: config.firewall.backend, table: config.firewall.table };
  const ownChains = new Set(
    config.firewall.backend === 'iptables' ? [own.table, `${own.table}_OUT`, `${own.table}_PRE`] : [],
  );
  const tables = [
    ...(g.nftRuleset !== undefined ? nftTables(g.nftRuleset, own) : []),
    ...[
      g.legacy4 !== undefined ? iptablesSaveTable(g.legacy4, 4, ownChains, 'iptables-legacy') : undefined,
      g.legacy6 !== undefined ? iptablesSaveTable(g.legacy6, 6, ownChains, 'ip6tables-legacy') : undefined,
    ].filter((t) => t !== undefined),
  ];
  for (const u of g.unreadable)
    out.push({
      severity: 'warning',
      code: 'not-checked',
      message: `cannot read ${u}: rules there that drop the ports were not looked at`,
      fix: 'run spa-knockd doctor as root',
    });
  out.push(...dropFindings(tables, targets));
  out.push(
    ...familyFindings({
      backend: config.firewall.backend,
      listenAddress: config.listen.address,
      listenPort: config.listen.port,
      host: g.host,
      ip6tablesWorks: g.ip6tablesWorks,
      bindV6Only: g.bindV6Only,
    }),
  );
  out.push(
    ...clockFindings(
      g.status.ok ? (g.status.value.clock?.stale ?? []) : [],
      config.replay.window,
      g.ntp,
      g.status.ok ? (g.status.value.rejects.by['unknown-key'] ?? 0) : 0,
    ),
  );
  return out;
}

const isProblem = (f: Finding) => f.severity !== 'note';

/** The text output: one line per finding (`error [code] message; fix: …`), then a summary line. */
export function formatFindings(config: Config | undefined, findings: readonly Finding[]): string {
  const lines = findings.map(
    (f) => `${f.severity.padEnd(7)} [${f.code}] ${f.message}${f.fix ? `; fix: ${f.fix}` : ''}`,
  );
  const n = findings.filter(isProblem).length;
  const what = config
    ? ` (${config.firewall.backend}, protects ${config.firewall.protect.map(formatAccess).join(' ')}, udp port ${config.listen.port})`
    : '';
  lines.push(n === 0 ? `doctor: no problems found${what}` : `doctor: ${n} finding${n === 1 ? '' : 's'}${what}`);
  return `${lines.join('\n')}\n`;
}

/** `spa-knockd doctor`: exit status 0 when clean, 1 with findings (set on process.exitCode). */
export async function doctorCommand(configPath: string, json: boolean, deps: GatherDeps = {}): Promise<number> {
  let config: Config | undefined;
  let all: Finding[];
  try {
    config = loadConfig(configPath);
    all = diagnose(config, await gather(config, deps));
  } catch (e) {
    if (!isSpaError(e) || config !== undefined) throw e;
    all = [configFinding(`[${e.code}] ${e.message}`)];
  }
  const problems = all.filter(isProblem).length;
  process.stdout.write(
    json
      ? `${JSON.stringify({ ok: problems === 0, config: configPath, findings: all }, null, 2)}\n`
      : formatFindings(config, all),
  );
  return problems === 0 ? 0 : 1;
}
