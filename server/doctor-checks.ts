/**
 * `spa-knockd doctor`: the checks other than foreign drops (server/doctor-chains.ts), each a pure function over data
 * that server/doctor-gather.ts read — IPv6 left unprotected or unknockable (finding 3), a client's clock far off and
 * this host's NTP state (4), the gate missing and the daemon not running (5). No I/O.
 * @module
 */
import { parseIp } from '../shared/address.js';
import type { Finding } from './doctor-chains.js';
import type { StatusSkew } from './status.js';

export interface HostAddresses {
  /** Addresses of the host's interfaces that others can reach (not loopback, not link-local). */
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

/** Not loopback, not link-local, not unspecified: an address a knock could come to. */
export function isReachable(text: string): boolean {
  const a = parseIp(text, { zone: 'strip' });
  if (!a) return false;
  const range = a.ip.range();
  return !['loopback', 'linkLocal', 'unspecified'].includes(range);
}

export interface FamilyFacts {
  readonly backend: 'nftables' | 'iptables';
  /** config listen.address */
  readonly listenAddress: string;
  readonly listenPort: number;
  readonly host: HostAddresses;
  /** iptables backend: does `ip6tables` work here (undefined: not asked)? */
  readonly ip6tablesWorks?: boolean | undefined;
  /** /proc/sys/net/ipv6/bindv6only: 1 makes a `::` socket IPv6-only (ipv6(7)). undefined: unknown. */
  readonly bindV6Only?: boolean | undefined;
}

/** Finding 3: a family the host has addresses in but that is left unprotected, or that cannot knock. */
export function familyFindings(f: FamilyFacts): Finding[] {
  const out: Finding[] = [];
  const hasV6 = f.host.v6.length > 0;
  const hasV4 = f.host.v4.length > 0;
  if (f.backend === 'iptables' && f.ip6tablesWorks === false) {
    out.push({
      severity: 'error',
      code: 'ipv6-unprotected',
      message: `the iptables backend needs ip6tables, which does not work here: the protected ports are not gated over IPv6${hasV6 ? ` (this host has IPv6 addresses: ${f.host.v6.join(', ')})` : ''}`,
      fix: 'apt-get install -y iptables (ip6tables), or backend = "nftables" (one inet table gates both families)',
    });
  }
  const listen = parseIp(f.listenAddress);
  const where = `listen.address = "${f.listenAddress}"`;
  if (listen?.family === 4 && hasV6) {
    out.push({
      severity: 'warning',
      code: 'ipv6-unknockable',
      message: `${where} receives IPv4 only, but this host has IPv6 addresses (${f.host.v6.join(', ')}): a client knocking over IPv6 is never heard`,
      fix: 'set listen.address = "::" (dual-stack), or knock with spa-knock -4',
    });
  }
  if (listen?.family === 6 && listen.text !== '::' && hasV4) {
    out.push({
      severity: 'warning',
      code: 'ipv4-unknockable',
      message: `${where} receives IPv6 only, but this host has IPv4 addresses (${f.host.v4.join(', ')}): a client knocking over IPv4 is never heard`,
      fix: 'set listen.address = "::" (dual-stack), or knock with spa-knock -6',
    });
  }
  if (listen?.text === '::' && f.bindV6Only === true && hasV4) {
    out.push({
      severity: 'warning',
      code: 'ipv4-unknockable',
      message: `${where} but net.ipv6.bindv6only = 1 makes it IPv6-only: a client knocking over IPv4 (${f.host.v4.join(', ')}) is never heard`,
      fix: 'sysctl -w net.ipv6.bindv6only=0 (and in /etc/sysctl.d), or run a second daemon on "0.0.0.0"',
    });
  }
  return out;
}

/** A skew within this many seconds of the window is still worth a warning: the next knock may fall outside. */
const NEAR_WINDOW = 0.5;

/**
 * Finding 4: knocks refused as stale (status `clock.stale`), one line per client and source, and this host's NTP
 * state (`timedatectl show -p NTPSynchronized --value`: 'yes' | 'no'; undefined when it cannot be read, no finding).
 * `unknownKey`: the unknown-key rejects since start (a spak1 client whose clock is off by more than about the window
 * plus a minute is counted there: its key id is not indexed, docs/protocol.md §4).
 */
export function clockFindings(
  stale: readonly StatusSkew[],
  windowS: number,
  ntp: string | undefined,
  unknownKey = 0,
): Finding[] {
  const out: Finding[] = [];
  for (const s of stale) {
    const n = Math.abs(s.offset_s);
    const dir = s.offset_s > 0 ? 'ahead of' : 'behind';
    out.push({
      severity: 'error',
      code: 'clock-offset',
      message: `knocks from client "${s.client}" at ${s.source} arrive ${n} s ${dir} this host's clock (replay.window is ${windowS} s): refused as stale (${s.count} since start, latest ${s.seen})`,
      fix:
        n > windowS * (1 + NEAR_WINDOW) || ntp !== 'no'
          ? `set that client's clock right (NTP), or this host's if most clients are off the same way`
          : `set this host's clock right (NTP is not synchronised here)`,
    });
  }
  if (ntp === 'no') {
    out.push({
      severity: 'warning',
      code: 'ntp-unsynchronised',
      message: `this host's clock is not NTP-synchronised (timedatectl NTPSynchronized=no): knocks are refused once it drifts ${windowS} s from the clients'`,
      fix: 'timedatectl set-ntp true (or run chrony / systemd-timesyncd)',
    });
  } else if (ntp === 'yes') {
    out.push({ severity: 'note', code: 'ntp', message: "this host's clock is NTP-synchronised", fix: '' });
  }
  if (unknownKey > 0) {
    out.push({
      severity: 'note',
      code: 'unknown-key',
      message: `${unknownKey} knock${unknownKey === 1 ? '' : 's'} since start had an unknown key id: a wrong key, or a client whose clock is more than about ${windowS + 60} s off (its key id is then unknown: docs/protocol.md §4)`,
      fix: '',
    });
  }
  return out;
}

/** Finding 5: the backend's read-only check (`check(plan)`) found differences from the plan. */
export function gateFindings(problems: readonly string[], daemonRunning: boolean): Finding[] {
  return problems.map((p) => ({
    severity: 'error' as const,
    code: 'gate-missing',
    message: `the gate is not as configured: ${p}`,
    fix: daemonRunning
      ? 'the running daemon heals it within firewall.heal_interval; if it persists, restart spa-knockd (its log says why)'
      : 'start spa-knockd (it installs the gate)',
  }));
}

/** Finding 5: the daemon's control socket did not answer (`why` is the control client's one-line reason). */
export function daemonFinding(why: string): Finding {
  return {
    severity: 'error',
    code: 'daemon-not-running',
    message: `spa-knockd does not answer: ${why}: nobody hears the knocks`,
    fix: 'start it: systemctl start spa-knockd (or spa-knockd --config FILE); its log says why it stopped',
  };
}

/** Finding 5: the config does not load (its one-line error). Nothing else can be checked. */
export function configFinding(message: string): Finding {
  return { severity: 'error', code: 'config-invalid', message, fix: 'correct the config (docs/config.md)' };
}
