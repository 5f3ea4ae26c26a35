/**
 * The rows of the "knock to open at the floor" bench (scripts/bench/floor.ts): which setups there are, their labels
 * in the table, the subnet of each one's pair of namespaces, and the shapes of the parameters and of the results.
 * @module
 */
import type { Stats } from './stats.js';

export type FloorRow =
  | 'open'
  | 'mini-nft'
  | 'mini-kernel'
  | 'spa-nft'
  | 'spa-nft-fast'
  | 'spa-nft-b'
  | 'spa-ipt'
  | 'fwknopd'
  | 'knockd';
export const FLOOR_ROWS: readonly FloorRow[] = [
  'open',
  'mini-nft',
  'mini-kernel',
  'spa-nft',
  'spa-nft-fast',
  'spa-nft-b',
  'spa-ipt',
  'fwknopd',
  'knockd',
];

export const FLOOR_LABELS: Readonly<Record<FloorRow, string>> = {
  open: 'the port already open (the probe itself)',
  'mini-nft': 'minimal Node program → nft -i (minimal-nft.ts)',
  'mini-kernel': 'minimal, kernel adds the element (minimal-kernel.ts)',
  'spa-nft': 'spa-knockd, nftables, fast_path = false (nft -i alone)',
  'spa-nft-fast': 'spa-knockd, nftables, kernel fast path (the default)',
  'spa-nft-b': 'spa-knockd, nftables, --compare checkout',
  'spa-ipt': 'spa-knockd, iptables',
  fwknopd: 'fwknopd 2.6.10, UDP server (iptables)',
  knockd: 'knockd, 3-port UDP sequence (iptables)',
};

/** The third octet of each row's pair of namespaces (10.251.SUBNET.0/24). */
export const SUBNETS: Readonly<Record<FloorRow, number>> = {
  open: 110,
  'mini-nft': 111,
  'mini-kernel': 112,
  'spa-nft': 113,
  'spa-nft-fast': 140,
  'spa-nft-b': 117,
  'spa-ipt': 114,
  fwknopd: 115,
  knockd: 116,
};

export interface FloorParams {
  /** Samples per row. */
  readonly n: number;
  /** A fresh connect this often, ms. */
  readonly intervalMs: number;
  readonly rows: readonly FloorRow[];
  /** server/main.ts of another checkout, for the `spa-nft-b` row (an A/B comparison, interleaved). */
  readonly compare?: string;
  /** The `spa-nft-b` row with `fast_path = true` (an A/B of the fast path itself; default: the nftables path). */
  readonly compareFast?: boolean;
}

export interface FloorRowResult {
  readonly row: FloorRow;
  readonly label: string;
  readonly stats: Stats;
  readonly attempts: number;
  readonly failures: readonly string[];
  /** Why the row was not measured (a peer not installed). */
  readonly skipped?: string;
  readonly samples: readonly number[];
  /** ms of each round in order, NaN where this row's sample failed: rows pair up round by round (report.ts paired). */
  readonly rounds: readonly number[];
  /** spa-knockd rows: latency_ms of the grant log lines of these samples (datagram handed over → committed). */
  readonly daemon?: Stats;
  /** With SPAK_TRACE_GRANT=1 (server/grant-trace.ts): min/median µs of each mark of the grant path. */
  readonly trace?: Readonly<Record<string, string>>;
}

export interface FloorResult {
  readonly n: number;
  readonly intervalMs: number;
  /** The `spa-nft-b` row ran with the kernel fast path (FloorParams.compareFast). */
  readonly compareFast: boolean;
  readonly rows: readonly FloorRowResult[];
}
