/**
 * In-memory firewall backend for daemon tests: same validation and errors as the real backends, no kernel. It passes
 * the same conformance suite as nftables and iptables (test/server/firewall-contract.test.ts), so it cannot drift.
 *
 * - `calls` records every call in order (`{ op: 'grant', entries, now }`, …), with copies of the arguments.
 * - `failNext(op?, message?)` makes the next call (of that op, or of any op) throw an ERR_SPA_FIREWALL SpaError and
 *   change nothing.
 * - `kernelExpiry` (default true, like nftables): list(now) leaves out grants with expiresAt <= now. With
 *   `kernelExpiry: false` (like iptables) expired grants stay listed until revoked; install drops them (reconcile).
 * - `kernel`: the state that outlives a backend object; pass the same {@link FakeKernel} to a second FakeBackend to
 *   model a daemon restart (grants and owners survive, as in the kernel).
 * - Calls are recorded before validation, so invalid calls show up in `calls` too (and then throw).
 * - Like the real backends, grant/revoke before install() fail ("not installed"); uninstall() clears everything.
 * - `latencyMs` delays every call (to test the daemon's behaviour with a slow firewall).
 * @module
 */
import { type Access, accessListDiff } from '../../shared/access.js';
import { grantKeyString } from '../../shared/address.js';
import { MIN_GRANT_MS } from '../../shared/constants.js';
import type { FirewallBackend, FirewallPlan, GrantEntry } from './backend.js';
import {
  type CheckedPlan,
  checkGrantKey,
  checkGrants,
  checkKeys,
  checkNow,
  checkPlan,
  firewallError,
} from './validate.js';

export type FakeOp = 'install' | 'grant' | 'revoke' | 'list' | 'check' | 'uninstall' | 'close';

export type FakeCall =
  | { readonly op: 'install'; readonly plan: FirewallPlan; readonly now: number }
  | { readonly op: 'grant'; readonly entries: readonly GrantEntry[]; readonly now: number }
  | { readonly op: 'revoke'; readonly entries: readonly Omit<GrantEntry, 'expiresAt'>[] }
  | { readonly op: 'list'; readonly now: number }
  | { readonly op: 'check'; readonly plan: FirewallPlan }
  | { readonly op: 'uninstall' }
  | { readonly op: 'close' };

/** What the fake "kernel" holds: the installed plan and the grants. */
export interface FakeKernel {
  plan: CheckedPlan | undefined;
  readonly grants: Map<string, GrantEntry>;
}

export function newFakeKernel(): FakeKernel {
  return { plan: undefined, grants: new Map() };
}

export interface FakeBackendOptions {
  /** Does the "kernel" drop expired grants by itself? Default true (nftables-like). */
  readonly kernelExpiry?: boolean;
  /** Delay every call by this many ms. Default 0 (calls still resolve asynchronously). */
  readonly latencyMs?: number;
  /** Shared state (a restart keeps it). Default: a new one. */
  readonly kernel?: FakeKernel;
}

interface Failure {
  readonly op: FakeOp | 'any';
  readonly message: string;
}

export class FakeBackend implements FirewallBackend {
  readonly name = 'fake' as const;
  readonly kernelExpiry: boolean;
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  private readonly latencyMs: number;
  private failures: Failure[] = [];
  private readonly kernel: FakeKernel;
  private closedFlag = false;

  constructor(opts: FakeBackendOptions = {}) {
    this.kernelExpiry = opts.kernelExpiry ?? true;
    this.latencyMs = opts.latencyMs ?? 0;
    this.kernel = opts.kernel ?? newFakeKernel();
  }

  /** Make the next call of `op` (default: any op) fail with an ERR_SPA_FIREWALL SpaError. Several can be queued. */
  failNext(op: FakeOp | 'any' = 'any', message = `fake ${op === 'any' ? 'firewall' : op} failure`): void {
    this.failures.push({ op, message });
  }

  /** The protected accesses currently installed, or undefined if not installed. */
  get installed(): readonly Access[] | undefined {
    return this.kernel.plan ? [...this.kernel.plan.protect] : undefined;
  }

  /** All grants held, expired or not (what a kernel without expiry would hold). */
  get held(): GrantEntry[] {
    return [...this.kernel.grants.values()];
  }

  /** Has close() been called (and no call made since)? */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Is (address, access) granted at `now`? Convenience for tests. */
  isOpen(family: 4 | 6, address: string, access: Access, now: number): boolean {
    const g = this.kernel.grants.get(grantKeyString(checkGrantKey({ family, address, access })));
    return g !== undefined && g.expiresAt > now;
  }

  /** Clear the recorded calls (not the state). */
  clearCalls(): void {
    this.calls.length = 0;
  }

  private async enter(call: FakeCall): Promise<void> {
    this.calls.push(call);
    if (call.op !== 'close') this.closedFlag = false;
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    else await Promise.resolve();
    const i = this.failures.findIndex((f) => f.op === 'any' || f.op === call.op);
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      throw firewallError(f?.message ?? 'fake failure');
    }
  }

  private requireInstalled(): void {
    if (!this.kernel.plan) throw firewallError('fake firewall is not installed');
  }

  private drop(now: number, always: boolean): void {
    if (!this.kernelExpiry && !always) return;
    for (const [k, g] of this.kernel.grants) if (g.expiresAt <= now) this.kernel.grants.delete(k);
  }

  async install(plan: FirewallPlan, now: number): Promise<void> {
    await this.enter({ op: 'install', plan: { ...plan, protect: [...(plan?.protect ?? [])] }, now });
    const checked = checkPlan(plan);
    checkNow(now);
    this.kernel.plan = checked;
    this.drop(now, true); // nft: the kernel expired them; iptables: install reconciles leftovers
  }

  async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    await this.enter({ op: 'grant', entries: copy(entries), now });
    const grants = checkGrants(entries);
    checkNow(now);
    if (grants.length === 0) return;
    this.requireInstalled();
    for (const g of grants)
      this.kernel.grants.set(grantKeyString(g), { ...g, expiresAt: Math.max(g.expiresAt, now + MIN_GRANT_MS) });
  }

  async revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void> {
    await this.enter({ op: 'revoke', entries: copy(entries) });
    const keys = checkKeys(entries);
    if (keys.length === 0) return;
    this.requireInstalled();
    for (const k of keys) this.kernel.grants.delete(grantKeyString(k));
  }

  async list(now: number): Promise<GrantEntry[]> {
    await this.enter({ op: 'list', now });
    this.drop(now, false);
    return [...this.kernel.grants.values()].map((g) => ({ ...g }));
  }

  async check(plan: FirewallPlan): Promise<string[]> {
    await this.enter({ op: 'check', plan: { ...plan, protect: [...(plan?.protect ?? [])] } });
    const want = checkPlan(plan);
    const have = this.kernel.plan;
    if (!have) return ['fake firewall is not installed'];
    const problems: string[] = [];
    const diff = accessListDiff(have.protect, want.protect);
    if (diff !== undefined) problems.push(diff);
    if (have.silencePortUnreachable !== want.silencePortUnreachable) {
      problems.push(
        `fake output rule is ${have.silencePortUnreachable ? 'installed' : 'missing'} but silence_port_unreachable is ${want.silencePortUnreachable ? 'on' : 'off'}`,
      );
    }
    return problems;
  }

  async uninstall(): Promise<void> {
    await this.enter({ op: 'uninstall' });
    this.kernel.plan = undefined;
    this.kernel.grants.clear();
  }

  async close(): Promise<void> {
    await this.enter({ op: 'close' });
    this.closedFlag = true;
  }
}

function copy<T extends object>(entries: readonly T[]): T[] {
  return Array.isArray(entries)
    ? entries.map((e) => ({ ...e, ...('access' in e ? { access: { ...(e.access as object) } } : {}) }))
    : [];
}
