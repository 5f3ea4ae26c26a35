/**
 * `spa-knockd status` (docs/operations.md): what the running daemon answers on its control socket
 * (server/control.ts) — active grants and reject counters since start — and how the command prints it.
 * @module
 */
import { formatAccess } from '../shared/access.js';
import { grantSource } from '../shared/address.js';
import { loadConfig } from './config-file.js';
import { controlPath, controlRequest } from './control.js';
import type { SkewEntry } from './clock-skew.js';
import type { Daemon } from './daemon.js';
import type { GrantEntry } from './firewall/backend.js';
import { REJECT_REASONS, type RejectReason } from './reasons.js';

export interface StatusGrant {
  /** Owning client (null: unknown owner, a grant made by hand or by an older version). */
  readonly client: string | null;
  readonly address: string;
  readonly family: 4 | 6;
  readonly accesses: readonly string[];
  /** ISO time; null for a grant without expiry (made by hand). */
  readonly expires: string | null;
  readonly seconds_left: number | null;
}

export interface Status {
  readonly pid: number;
  readonly started: string;
  readonly uptime_s: number;
  readonly backend: string;
  readonly listen: string | null;
  readonly grants: readonly StatusGrant[];
  /** Rejected packets since the daemon started, by reason (in verification order). */
  readonly rejects: { readonly total: number; readonly by: Partial<Record<RejectReason, number>> };
  /**
   * Datagrams the kernel prefilter (`limit.kernel_prefilter`, server/firewall/prefilter.ts) dropped since the daemon
   * started, before they reached it; null when there is no prefilter (or its counter cannot be read).
   */
  readonly prefilter_drops?: number | null;
  /**
   * The nftables kernel fast path (`firewall.fast_path`): on, or off and why (`"auto"` could not set it up); null
   * when the installed plan has none (iptables, `fast_path = false`).
   */
  readonly fast_path?: { readonly on: boolean; readonly reason?: string } | null;
  /**
   * Authenticated knocks refused as `stale` (timestamp outside replay.window), per client and source, latest first:
   * how far the knocker's clock was off (offset_s > 0: ahead of this host's). spa-knockd doctor reads it.
   */
  readonly clock: { readonly stale: readonly StatusSkew[] };
}

export interface StatusSkew {
  readonly client: string;
  readonly source: string;
  /** Packet timestamp − this host's clock, seconds (one decimal). */
  readonly offset_s: number;
  /** When the latest one arrived (ISO time). */
  readonly seen: string;
  readonly count: number;
}

export interface StatusSource {
  readonly pid: number;
  readonly startedAt: number;
  readonly backend: string;
  readonly listen: string | undefined;
  readonly grants: readonly GrantEntry[];
  readonly rejects: Partial<Record<RejectReason, number>>;
  readonly skews?: readonly SkewEntry[];
  readonly prefilterDrops?: number | undefined;
  readonly fastPath?: { readonly on: boolean; readonly reason?: string } | undefined;
}

/** One row per (client, address, expiry), accesses together; soonest to expire first. */
export function buildStatus(src: StatusSource, now: number): Status {
  const rows = new Map<string, { g: GrantEntry; accesses: string[] }>();
  for (const g of src.grants) {
    if (!(g.expiresAt > now)) continue;
    const k = `${g.owner ?? ''}|${g.family}|${grantSource(g)}|${g.expiresAt}`;
    const row = rows.get(k) ?? { g, accesses: [] };
    row.accesses.push(formatAccess(g.access));
    rows.set(k, row);
  }
  const grants = [...rows.values()]
    .sort((a, b) => a.g.expiresAt - b.g.expiresAt || a.g.address.localeCompare(b.g.address))
    .map(({ g, accesses }) => {
      const finite = Number.isFinite(g.expiresAt);
      return {
        client: g.owner ?? null,
        address: grantSource(g),
        family: g.family,
        accesses,
        expires: finite ? new Date(g.expiresAt).toISOString() : null,
        seconds_left: finite ? Math.ceil((g.expiresAt - now) / 1000) : null,
      };
    });
  const by: Partial<Record<RejectReason, number>> = {};
  let total = 0;
  for (const r of REJECT_REASONS) {
    const n = src.rejects[r];
    if (n) {
      by[r] = n;
      total += n;
    }
  }
  return {
    pid: src.pid,
    started: new Date(src.startedAt).toISOString(),
    uptime_s: Math.floor((now - src.startedAt) / 1000),
    backend: src.backend,
    listen: src.listen ?? null,
    grants,
    rejects: { total, by },
    prefilter_drops: src.prefilterDrops ?? null,
    fast_path: src.fastPath ?? null,
    clock: {
      stale: (src.skews ?? []).map((k) => ({
        client: k.client,
        source: k.source,
        offset_s: Math.round(k.offsetMs / 100) / 10,
        seen: new Date(k.at).toISOString(),
        count: k.count,
      })),
    },
  };
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => `  ${r.map((c, i) => c.padEnd(w[i] ?? 0)).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)];
}

/** The human-readable text of a status. */
export function formatStatus(s: Status): string {
  const out = [
    `spa-knockd pid ${s.pid}, up ${s.uptime_s} s (since ${s.started}), backend ${s.backend}, listening ${s.listen ?? '-'}`,
  ];
  if (s.grants.length === 0) out.push('active grants: none');
  else {
    out.push(`active grants: ${s.grants.length}`);
    out.push(
      ...table(
        ['CLIENT', 'ADDRESS', 'ACCESSES', 'SECONDS LEFT'],
        s.grants.map((g) => [g.client ?? '(unknown)', g.address, g.accesses.join(' '), String(g.seconds_left ?? '-')]),
      ),
    );
  }
  const by = Object.entries(s.rejects.by).map(([r, n]) => `${r} ${n}`);
  out.push(`rejected since start: ${s.rejects.total}${by.length > 0 ? ` (${by.join(', ')})` : ''}`);
  if (s.prefilter_drops !== null && s.prefilter_drops !== undefined)
    out.push(`dropped by the kernel prefilter since start: ${s.prefilter_drops}`);
  if (s.fast_path) out.push(`kernel fast path: ${s.fast_path.on ? 'on' : `off (${s.fast_path.reason ?? '?'})`}`);
  for (const k of s.clock?.stale ?? [])
    out.push(
      `stale knocks from ${k.client} at ${k.source}: its clock is ${Math.abs(k.offset_s)} s ${k.offset_s > 0 ? 'ahead' : 'behind'} (${k.count}, latest ${k.seen})`,
    );
  return `${out.join('\n')}\n`;
}

/** `spa-knockd status`: ask the daemon of this config (its state_dir) and print the answer. */
export async function statusCommand(configPath: string, json: boolean): Promise<void> {
  const config = loadConfig(configPath);
  const reply = (await controlRequest(controlPath(config.stateDir), 'status')) as Status | { error: string };
  if ('error' in reply) throw new Error(`the daemon answered: ${reply.error}`);
  process.stdout.write(json ? `${JSON.stringify(reply, null, 2)}\n` : formatStatus(reply));
}

/** The status of a running daemon object (what the control socket answers to `status`). */
export function daemonStatus(d: Daemon, startedAt: number, now: number = Date.now(), prefilterDrops?: number): Status {
  return buildStatus(
    {
      pid: process.pid,
      startedAt,
      backend: d.backendName,
      listen: d.bound,
      grants: d.grants.active().map((a) => a.entry),
      rejects: d.rejects.totals(),
      skews: d.clockSkews.recent(),
      prefilterDrops,
      fastPath: d.fastPathState,
    },
    now,
  );
}
