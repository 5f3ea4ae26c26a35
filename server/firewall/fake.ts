/**
 * In-memory firewall backend for daemon tests: same validation and errors as the real backends, no kernel.
 *
 * - `calls` records every call in order (`{ op: 'grant', entries, now }`, …), with copies of the arguments.
 * - `failNext(op?, message?)` makes the next call (of that op, or of any op) throw a FirewallError and change nothing.
 * - `kernelExpiry` (default true, like nftables): list(now) leaves out grants with expiresAt <= now. With
 *   `kernelExpiry: false` (like iptables) expired grants stay listed until revoked.
 * - Calls are recorded before validation, so invalid calls show up in `calls` too (and then throw FirewallError).
 * - Like the real backends, grant/revoke before install() fail ("not installed"); uninstall() clears everything.
 * - `latencyMs` delays every call (to test the daemon's behaviour with a slow firewall).
 * @module
 */
import type { Access } from '../../shared/access.js';
import { FirewallError, type FirewallBackend, type FirewallPlan, type GrantEntry } from './backend.js';
import { checkGrantKey, checkGrants, checkKeys, checkProtect, grantKeyString } from './exec.js';

export type FakeOp = 'install' | 'grant' | 'revoke' | 'list' | 'check' | 'uninstall' | 'close';

export type FakeCall =
  | { readonly op: 'install'; readonly plan: FirewallPlan; readonly now: number }
  | { readonly op: 'grant'; readonly entries: readonly GrantEntry[]; readonly now: number }
  | { readonly op: 'revoke'; readonly entries: readonly Omit<GrantEntry, 'expiresAt'>[] }
  | { readonly op: 'list'; readonly now: number }
  | { readonly op: 'check'; readonly plan: FirewallPlan }
  | { readonly op: 'uninstall' }
  | { readonly op: 'close' };

export interface FakeBackendOptions {
  /** Does the "kernel" drop expired grants by itself? Default true (nftables-like). */
  readonly kernelExpiry?: boolean;
  /** Delay every call by this many ms. Default 0 (calls still resolve asynchronously). */
  readonly latencyMs?: number;
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
  private plan: Access[] | undefined;
  private readonly grants = new Map<string, GrantEntry>();
  private closedFlag = false;

  constructor(opts: FakeBackendOptions = {}) {
    this.kernelExpiry = opts.kernelExpiry ?? true;
    this.latencyMs = opts.latencyMs ?? 0;
  }

  /** Make the next call of `op` (default: any op) fail with a FirewallError. Several can be queued. */
  failNext(op: FakeOp | 'any' = 'any', message = `fake ${op === 'any' ? 'firewall' : op} failure`): void {
    this.failures.push({ op, message });
  }

  /** The protected accesses currently installed, or undefined if not installed. */
  get installed(): readonly Access[] | undefined {
    return this.plan ? [...this.plan] : undefined;
  }

  /** All grants held, expired or not (what a kernel without expiry would hold). */
  get held(): GrantEntry[] {
    return [...this.grants.values()];
  }

  /** Has close() been called (and no call made since)? */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Is (address, access) granted at `now`? Convenience for tests. */
  isOpen(family: 4 | 6, address: string, access: Access, now: number): boolean {
    const g = this.grants.get(grantKeyString(checkGrantKey({ family, address, access })));
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
      throw new FirewallError(f?.message ?? 'fake failure');
    }
  }

  private requireInstalled(): void {
    if (!this.plan) throw new FirewallError('fake firewall is not installed');
  }

  private expire(now: number): void {
    if (!this.kernelExpiry) return;
    for (const [k, g] of this.grants) if (g.expiresAt <= now) this.grants.delete(k);
  }

  async install(plan: FirewallPlan, now: number): Promise<void> {
    await this.enter({ op: 'install', plan: { ...plan, protect: [...(plan?.protect ?? [])] }, now });
    const protect = checkProtect(plan?.protect);
    this.plan = protect;
    this.expire(now);
  }

  async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    await this.enter({ op: 'grant', entries: copy(entries), now });
    const grants = checkGrants(entries);
    if (typeof now !== 'number' || !Number.isFinite(now)) throw new FirewallError('invalid grant time');
    if (grants.length === 0) return;
    this.requireInstalled();
    for (const g of grants) {
      const owner = (entries.find((e) => grantKeyString(checkGrantKey(e)) === grantKeyString(g)) as GrantEntry | undefined)?.owner;
      this.grants.set(grantKeyString(g), { ...g, expiresAt: Math.max(g.expiresAt, now + 1000), ...(owner !== undefined ? { owner } : {}) });
    }
  }

  async revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void> {
    await this.enter({ op: 'revoke', entries: copy(entries) });
    const keys = checkKeys(entries);
    if (keys.length === 0) return;
    this.requireInstalled();
    for (const k of keys) this.grants.delete(grantKeyString(k));
  }

  async list(now: number): Promise<GrantEntry[]> {
    await this.enter({ op: 'list', now });
    return [...this.grants.values()].filter((g) => !this.kernelExpiry || g.expiresAt > now).map((g) => ({ ...g }));
  }

  async check(plan: FirewallPlan): Promise<string[]> {
    await this.enter({ op: 'check', plan: { ...plan, protect: [...(plan?.protect ?? [])] } });
    const protect = checkProtect(plan?.protect);
    if (!this.plan) return ['fake firewall is not installed'];
    const have = this.plan.map((a) => `${a.proto}/${a.port}`).sort();
    const want = protect.map((a) => `${a.proto}/${a.port}`).sort();
    return have.join(',') === want.join(',')
      ? []
      : [`protected list differs: installed [${have.join(', ')}], expected [${want.join(', ')}]`];
  }

  async uninstall(): Promise<void> {
    await this.enter({ op: 'uninstall' });
    this.plan = undefined;
    this.grants.clear();
  }

  async close(): Promise<void> {
    await this.enter({ op: 'close' });
    this.closedFlag = true;
  }
}

function copy<T extends object>(entries: readonly T[]): T[] {
  return Array.isArray(entries) ? entries.map((e) => ({ ...e, ...('access' in e ? { access: { ...(e.access as object) } } : {}) })) : [];
}
