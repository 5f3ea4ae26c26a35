/**
 * `spa-knockd doctor`: read everything the checks look at — the nft ruleset, the iptables-legacy dumps, whether
 * ip6tables works, the host's addresses, net.ipv6.bindv6only, NTP state, the daemon's status over its control socket,
 * and the backend's own read-only `check(plan)`. Commands run with argument arrays through `run`
 * (server/firewall/process.ts), each behind the `wrap` prefix (tests: `['ip', 'netns', 'exec', NS]`). A tool that is
 * absent gives `undefined`, never an error: the checks decide what absence means.
 * @module
 */
import { networkInterfaces } from 'node:os';
import type { Config } from './config.js';
import { controlPath, controlRequest } from './control.js';
import { planOf } from './daemon.js';
import { type HostAddresses, isReachable } from './doctor-checks.js';
import type { FirewallBackend } from './firewall/backend.js';
import { IptablesBackend } from './firewall/iptables.js';
import { NftablesBackend } from './firewall/nftables.js';
import { type RunResult, run as realRun, withWrap } from './firewall/process.js';
import type { Status } from './status.js';

export interface GatherDeps {
  readonly run?: (argv: readonly string[], opts?: { timeoutMs?: number }) => Promise<RunResult>;
  /** Prefix for every command (not for the control socket, a file in state_dir). */
  readonly wrap?: readonly string[];
  readonly request?: (path: string, command: string) => Promise<unknown>;
  readonly backend?: (config: Config) => FirewallBackend;
}

export interface Gathered {
  /** `nft -j list ruleset` parsed; undefined when nft is absent or fails. */
  readonly nftRuleset?: unknown;
  /** `iptables-legacy-save` / `ip6tables-legacy-save` stdout; undefined when absent. */
  readonly legacy4?: string | undefined;
  readonly legacy6?: string | undefined;
  /** iptables backend only: does `ip6tables -S INPUT` work? */
  readonly ip6tablesWorks?: boolean | undefined;
  readonly host: HostAddresses;
  readonly bindV6Only?: boolean | undefined;
  /** `timedatectl show -p NTPSynchronized --value`: 'yes' | 'no', undefined when it cannot be read. */
  readonly ntp?: string | undefined;
  /** What could not be read although the tool is there (e.g. `nft -j list ruleset: Operation not permitted`). */
  readonly unreadable: readonly string[];
  /** The daemon's status, or why it could not be had. */
  readonly status: { readonly ok: true; readonly value: Status } | { readonly ok: false; readonly why: string };
  /** backend.check(plan): the differences from the plan, or the failure of the check itself. */
  readonly gate: { readonly problems: readonly string[] } | { readonly error: string };
}

const TOOL_TIMEOUT_MS = 5000;

const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Addresses from `ip -j addr` (scope global), or from os.networkInterfaces() without `ip`. */
function hostAddresses(r: RunResult | undefined): HostAddresses {
  const v4: string[] = [];
  const v6: string[] = [];
  const add = (a: string) => {
    if (!isReachable(a)) return;
    (a.includes(':') ? v6 : v4).push(a);
  };
  if (r !== undefined && r.code === 0) {
    try {
      const links = JSON.parse(r.stdout) as { addr_info?: { local?: string; scope?: string }[] }[];
      for (const l of links)
        for (const ai of l.addr_info ?? []) if (ai.scope === 'global' && typeof ai.local === 'string') add(ai.local);
      return { v4, v6 };
    } catch {
      // fall through to the process's own view
    }
  }
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) add(i.address);
  return { v4, v6 };
}

/** iptables backend: false when ip6tables is absent or fails for a reason other than permissions (not root). */
function ip6tablesWorks(config: Config, r: RunResult | undefined): boolean | undefined {
  if (config.firewall.backend !== 'iptables') return undefined;
  if (r === undefined) return false;
  if (r.code === 0) return true;
  return /permission denied|must be root/i.test(r.stderr) ? undefined : false;
}

export async function gather(config: Config, deps: GatherDeps = {}): Promise<Gathered> {
  const runner = deps.run ?? realRun;
  const wrap = deps.wrap ?? [];
  const tool = async (argv: readonly string[]): Promise<RunResult | undefined> => {
    const r = await runner(withWrap(wrap, argv), { timeoutMs: TOOL_TIMEOUT_MS });
    return r.spawnError !== undefined || r.code === 127 ? undefined : r;
  };
  const ok = (r: RunResult | undefined) => (r !== undefined && r.code === 0 ? r.stdout : undefined);

  const [nft, l4, l6, ip6, addrs, v6only, ntp] = await Promise.all([
    tool(['nft', '-j', 'list', 'ruleset']),
    tool(['iptables-legacy-save']),
    tool(['ip6tables-legacy-save']),
    config.firewall.backend === 'iptables' ? tool(['ip6tables', '-w', '-S', 'INPUT']) : undefined,
    tool(['ip', '-j', 'addr', 'show']),
    tool(['sysctl', '-n', 'net.ipv6.bindv6only']),
    // the clock is not per namespace: no wrap
    runner(['timedatectl', 'show', '-p', 'NTPSynchronized', '--value'], { timeoutMs: TOOL_TIMEOUT_MS }),
  ]);
  const unreadable: string[] = [];
  const failed = (r: RunResult | undefined, what: string) => {
    if (r !== undefined && r.code !== 0)
      unreadable.push(`${what}: ${r.stderr.trim().split('\n')[0] || `exit status ${r.code}`}`);
  };
  failed(nft, 'nft -j list ruleset');
  failed(l4, 'iptables-legacy-save');
  failed(l6, 'ip6tables-legacy-save');
  let nftRuleset: unknown;
  const nftText = ok(nft);
  if (nftText !== undefined) {
    try {
      nftRuleset = JSON.parse(nftText);
    } catch {
      unreadable.push('nft -j list ruleset: the answer is not JSON');
    }
  }
  const ntpValue = ntp.code === 0 ? ntp.stdout.trim() : '';

  let status: Gathered['status'];
  try {
    const reply = await (deps.request ?? controlRequest)(controlPath(config.stateDir), 'status');
    status =
      typeof reply === 'object' && reply !== null && 'pid' in reply
        ? { ok: true, value: reply as Status }
        : { ok: false, why: `it answered ${JSON.stringify(reply).slice(0, 200)}` };
  } catch (e) {
    status = { ok: false, why: errorMessage(e) };
  }

  const backend =
    deps.backend?.(config) ??
    (config.firewall.backend === 'nftables'
      ? new NftablesBackend({ table: config.firewall.table, wrap, mode: 'oneshot' })
      : new IptablesBackend({ chain: config.firewall.table, wrap }));
  let gate: Gathered['gate'];
  try {
    gate = { problems: await backend.check(planOf(config)) };
  } catch (e) {
    gate = { error: errorMessage(e) };
  } finally {
    await backend.close().catch(() => undefined);
  }

  return {
    nftRuleset,
    legacy4: ok(l4),
    legacy6: ok(l6),
    ip6tablesWorks: ip6tablesWorks(config, ip6),
    host: hostAddresses(addrs),
    bindV6Only: v6only?.code === 0 ? v6only.stdout.trim() === '1' : undefined,
    ntp: ntpValue === 'yes' || ntpValue === 'no' ? ntpValue : undefined,
    unreadable,
    status,
    gate,
  };
}
