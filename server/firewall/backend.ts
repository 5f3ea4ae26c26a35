/**
 * The one interface every firewall backend implements (nftables, iptables, the in-memory fake).
 *
 * A backend owns its own objects (an nft table, or an iptables chain) and nothing else. It is a *gate*: it drops new
 * connections to protected ports unless the (source, proto, port) is granted; it never accepts on behalf of the host's
 * own firewall. Everything it does is atomic per call: a call that fails leaves the firewall as it was.
 * Every failure is a `SpaError` with code ERR_SPA_FIREWALL (shared/errors.ts), one line for the operator; it is never
 * thrown on the packet hot path (the daemon catches it around each firewall call).
 *
 * The plan carries more than "allow this source" so that later features (kernel-side knock sequences, see issue
 * roadmap) are added as new plan fields, not as a new interface.
 * @module
 */
import type { Access } from '../../shared/access.js';
import type { GrantKey } from '../../shared/address.js';
import type { Prefilter } from './prefilter.js';
import type { FastPathPlan } from './nft-fastpath.js';

export type { Family, GrantKey } from '../../shared/address.js';

/**
 * One grant: this address may open new connections to this access until `expiresAt` (ms since epoch).
 * Identity is the {@link GrantKey} (shared/address.ts `grantKeyString`): one kernel element / rule per key.
 */
export interface GrantEntry extends GrantKey {
  /** Absolute expiry, ms since the Unix epoch. */
  readonly expiresAt: number;
  /**
   * The client that owns the grant (a config client name, /^[A-Za-z0-9._@-]{1,64}$/), stored in the kernel with the
   * grant (nft element `comment`, iptables `-m comment`) so ownership survives a restart. Undefined: no owner known
   * (a grant made by an older version or by hand).
   */
  readonly owner?: string | undefined;
}

/** The identity fields of a grant (no expiry, no owner): what revoke takes. */
export function keyFields(g: GrantEntry): Omit<GrantEntry, 'expiresAt' | 'owner'> {
  const { family, address, access, prefix } = g;
  return { family, address, ...(prefix !== undefined ? { prefix } : {}), access };
}

/** What the backend must install: the protected accesses (and, later, knock sequences). */
export interface FirewallPlan {
  readonly protect: readonly Access[];
  /**
   * Drop this host's outgoing ICMP/ICMPv6 port-unreachable messages, so a closed UDP port looks like the knock port
   * (silent) to a UDP scan. Opt-in (`firewall.silence_port_unreachable`); default false.
   */
  readonly silencePortUnreachable?: boolean;
  /** Classic knock sequences recognised in the kernel (docs/classic.md); default none. */
  readonly sequences?: readonly KnockSequence[];
  /** The kernel's per-source rate limit on the knock port (server/firewall/prefilter.ts); default none. */
  readonly prefilter?: Prefilter | undefined;
  /**
   * nftables only: the kernel adds one-address grants itself from a trigger datagram (`firewall.fast_path`;
   * server/firewall/nft-fastpath.ts); other backends ignore it. Default off.
   */
  readonly fastPath?: FastPathPlan;
}

/**
 * A classic knock sequence (config `[[sequence]]`): SYNs / UDP datagrams to `steps` in order, at most `gapS` seconds
 * apart, open `open` for the knocking source for `durationS` seconds. New packets from that source to a port that is
 * neither the next step, the step just taken, nor in `ignore` reset its attempt. Rules: nft-sequences.ts and
 * iptables-sequences.ts; docs/classic.md.
 */
export interface KnockSequence {
  /** /^[a-z][a-z0-9_]{0,23}$/: names the kernel objects (nft chain and sets, xt_recent lists). */
  readonly name: string;
  /** At least 2 steps, no step equal to the one before it, none in `ignore`. */
  readonly steps: readonly Access[];
  readonly gapS: number;
  readonly open: readonly Access[];
  readonly durationS: number;
  readonly ignore: readonly Access[];
}

/** Wait up to `ms` (less when the grant manager has other work); never rejects. */
export type Hold = (ms: number) => Promise<void>;

export interface FirewallBackend {
  readonly name: 'nftables' | 'iptables' | 'fake';
  /** Does the backend say the kernel expires grants on its own (nft set timeouts)? If not, the daemon revokes on time. */
  readonly kernelExpiry: boolean;
  /**
   * Create (or atomically replace) the backend's objects for this plan. Idempotent. Existing grants that are still
   * valid survive a re-install where the backend can keep them (nft sets are kept; iptables re-adds what `list` saw).
   */
  install(plan: FirewallPlan, now: number): Promise<void>;
  /**
   * Add or extend grants, atomically (all or none). `now` is the caller's clock, used to compute timeouts.
   * Granting an existing (address, access) again replaces its expiry (longer or shorter) and its owner: ownership
   * rules are the grant manager's (server/grants.ts), the backend writes what it is given. Every grant lasts at least
   * MIN_GRANT_MS (expiresAt is raised to now + MIN_GRANT_MS if earlier). Invalid input is an ERR_SPA_FIREWALL
   * SpaError before anything is applied.
   *
   * `hold`: the caller's leave to wait, up to the ms given, less when it has other work (server/grant-queue.ts). A
   * backend that has opened the ports already, before its confirming change (nftables' kernel fast path), may wait
   * there, so that the confirmation does not compete for the CPU with the connection the client opens right then.
   */
  grant(entries: readonly GrantEntry[], now: number, hold?: Hold): Promise<void>;
  /** Remove grants, atomically; removing a grant that is already gone is not an error. */
  revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void>;
  /**
   * The grants the kernel holds right now (expiresAt from the kernel's remaining timeout or the stored expiry).
   * With kernelExpiry = false a grant past its expiresAt that was not revoked is still held, so it is still listed.
   */
  list(now: number): Promise<GrantEntry[]>;
  /** Is the plan installed as expected? Returns a list of problems (empty = fine). Read-only. */
  check(plan: FirewallPlan): Promise<string[]>;
  /**
   * Datagrams the kernel prefilter has dropped since it was installed (its counter), or undefined when there is none
   * or it cannot be read. Read-only; optional (the fake backend has no kernel).
   */
  prefilterDrops?(): Promise<number | undefined>;
  /**
   * The kernel fast path of the installed plan (nftables; `plan.fastPath`): on, or off and why (an optional one that
   * could not be set up); undefined when the plan has none. Optional (only nftables has one).
   */
  fastPathState?(): { readonly on: boolean; readonly reason?: string } | undefined;
  /**
   * An optional fast path that is off because a trigger port was taken: try to take the ports again; true when held
   * now (the next install of the same plan puts the fast path in). Optional (nftables).
   */
  bindFastPath?(): Promise<boolean>;
  /** Remove everything the backend ever installed. */
  uninstall(): Promise<void>;
  /** Release helper processes. Leaves every rule in place (fail-closed). */
  close(): Promise<void>;
}
