/** Build TOML config texts for tests. */
import { formatKey } from '../shared/keys.js';

export function keyOf(seed: number): Uint8Array {
  return new Uint8Array(32).map((_, i) => (seed * 31 + i * 7 + 1) & 0xff);
}

export interface TestConfigOptions {
  stateDir?: string;
  port?: number;
  address?: string;
  backend?: 'nftables' | 'iptables';
  table?: string;
  protect?: string[];
  duration?: number;
  maxDuration?: number;
  window?: number;
  clients?: {
    name: string;
    key: Uint8Array;
    open: string[];
    sources?: string[];
    max_duration?: number;
    max_prefix4?: number;
    max_prefix6?: number;
    /** `codes = true`: the client takes one-time codes (docs/codes.md). */
    codes?: boolean;
  }[];
  extra?: string;
}

export function configText(o: TestConfigOptions = {}): string {
  const q = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const clients = o.clients ?? [{ name: 'alice', key: keyOf(1), open: ['tcp/22'] }];
  return [
    `state_dir = ${JSON.stringify(o.stateDir ?? '/tmp/spa-knock-test-state')}`,
    '[listen]',
    `port = ${o.port ?? 62201}`,
    `address = ${JSON.stringify(o.address ?? '::')}`,
    '[firewall]',
    `backend = ${JSON.stringify(o.backend ?? 'nftables')}`,
    `protect = ${q(o.protect ?? ['tcp/22'])}`,
    ...(o.table ? [`table = ${JSON.stringify(o.table)}`] : []),
    '[grant]',
    `duration = ${o.duration ?? 30}`,
    `max_duration = ${o.maxDuration ?? 300}`,
    '[replay]',
    `window = ${o.window ?? 60}`,
    o.extra ?? '',
    ...clients.flatMap((c) => [
      '[[client]]',
      `name = ${JSON.stringify(c.name)}`,
      `key = ${JSON.stringify(formatKey(c.key))}`,
      `open = ${q(c.open)}`,
      ...(c.sources ? [`sources = ${q(c.sources)}`] : []),
      ...(c.max_duration ? [`max_duration = ${c.max_duration}`] : []),
      ...(c.max_prefix4 ? [`max_prefix4 = ${c.max_prefix4}`] : []),
      ...(c.max_prefix6 ? [`max_prefix6 = ${c.max_prefix6}`] : []),
      ...(c.codes ? ['codes = true'] : []),
    ]),
    '',
  ].join('\n');
}
