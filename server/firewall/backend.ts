/**
 * The one interface every firewall backend implements (nftables, iptables, the in-memory fake).
 *
 * A backend owns its own objects (an nft table, or an iptables chain) and nothing else. It is a *gate*: it drops new
 * connections to protected ports unless the (source, proto, port) is granted; it never accepts on behalf of the host's
 * own firewall. Everything it does is atomic per call: a call that fails leaves the firewall as it was.
 *
 * The plan carries more than "allow this source" so that later features (kernel-side knock sequences, see issue
 * roadmap) are added as new plan fields, not as a new interface.
 * @module
 */
import type { Access } from '../../shared/access.js';

export type Family = 4 | 6;

/** One grant: this address may open new connections to this access until `expiresAt` (ms since epoch). */
export interface GrantEntry {
  readonly family: Family;
  /** Canonical textual address: dotted quad for v4, RFC 5952 compressed form for v6. Never IPv4-mapped. */
  readonly address: string;
  readonly access: Access;
  /** Absolute expiry, ms since the Unix epoch. */
  readonly expiresAt: number;
}

/** What the backend must install: the protected accesses (and, later, knock sequences). */
export interface FirewallPlan {
  readonly protect: readonly Access[];
}

export interface FirewallBackend {
  readonly name: 'nftables' | 'iptables' | 'fake';
  /** Does the backend say the kernel expires grants on its own (nft set timeouts)? If not, the daemon revokes on time. */
  readonly kernelExpiry: boolean;
  /**
   * Create (or atomically replace) the backend's objects for this plan. Idempotent. Existing grants that are still
   * valid survive a re-install where the backend can keep them (nft sets are kept; iptables re-adds what `list` saw).
   */
  install(plan: FirewallPlan): Promise<void>;
  /**
   * Add or extend grants, atomically (all or none). `now` is the caller's clock, used to compute timeouts.
   * Granting an existing (address, access) again replaces its expiry (longer or shorter). Every grant lasts at least
   * 1 s (expiresAt is raised to now + 1000 if earlier). Invalid input is a FirewallError before anything is applied.
   */
  grant(entries: readonly GrantEntry[], now: number): Promise<void>;
  /** Remove grants, atomically; removing a grant that is already gone is not an error. */
  revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void>;
  /**
   * The grants the kernel holds right now (expiresAt from the kernel's remaining timeout or the stored expiry).
   * With kernelExpiry = false a grant past its expiresAt that was not revoked is still held, so it is still listed.
   */
  list(now: number): Promise<GrantEntry[]>;
  /** Is the plan installed as expected? Returns a list of problems (empty = fine). Read-only. */
  check(plan: FirewallPlan): Promise<string[]>;
  /** Remove everything the backend ever installed. */
  uninstall(): Promise<void>;
  /** Release helper processes. Leaves every rule in place (fail-closed). */
  close(): Promise<void>;
}

/** Thrown (never on the packet hot path) when a firewall command fails; message is one line for the operator. */
export class FirewallError extends Error {
  override readonly name = 'FirewallError';
  readonly code = 'ERR_SPA_FIREWALL';
}
