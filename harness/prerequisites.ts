/**
 * What the namespace tests and the bench need from the machine (root, `ip`, the firewall tools), and the command
 * that installs what is missing (Debian/Ubuntu package names).
 * @module
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The tools the namespace tests and the bench run, with the package that ships each. */
export const TOOL_PACKAGES = {
  ip: 'iproute2',
  nft: 'nftables',
  iptables: 'iptables',
  ip6tables: 'iptables',
  'iptables-restore': 'iptables',
  'ip6tables-restore': 'iptables',
  'iptables-legacy': 'iptables',
  faketime: 'faketime',
  knock: 'knockd',
  knockd: 'knockd',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  sshd: 'openssh-server',
  'systemd-analyze': 'systemd',
  'systemd-socket-activate': 'systemd',
  'systemd-notify': 'systemd',
  setpriv: 'util-linux',
  nc: 'netcat-openbsd',
  nmap: 'nmap',
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

/** The tools each firewall backend runs. */
export const BACKEND_TOOLS: Readonly<Record<'nftables' | 'iptables', readonly Tool[]>> = {
  nftables: ['nft'],
  iptables: ['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore'],
};

export function onPath(tool: string): boolean {
  const dirs = (process.env['PATH'] ?? '').split(delimiter);
  for (const d of [...dirs, '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (!d) continue;
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

export interface Missing {
  /** e.g. `not root, nft not found`. */
  readonly what: string;
  /** e.g. `run as root; apt-get install -y nftables`. */
  readonly fix: string;
}

/** Root and `ip` plus `tools`: undefined when all is there, else what is missing and how to get it. */
export function missingPrerequisites(tools: readonly string[]): Missing | undefined {
  const what: string[] = [];
  const fix: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    what.push('not root');
    fix.push('run as root (sudo)');
  }
  const absent = [...new Set(['ip', ...tools])].filter((t) => !onPath(t));
  if (absent.length > 0) {
    what.push(...absent.map((t) => `${t} not found`));
    fix.push(
      `apt-get install -y ${[...new Set(absent.map((t) => (Object.hasOwn(TOOL_PACKAGES, t) ? TOOL_PACKAGES[t as Tool] : t)))].join(' ')}`,
    );
  }
  return what.length === 0 ? undefined : { what: what.join(', '), fix: fix.join('; ') };
}
