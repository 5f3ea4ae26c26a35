/**
 * The grants the daemon ends by itself, outside a knock, and the lines it logs for them: a grant that ended on time
 * (`expire`: revoked by the grant manager's timer, or expired in the kernel), the grants of clients past their
 * `expires` (`client-expired`, server/client-expiry.ts), and at stop the live grants of a backend whose kernel does
 * not expire grants (`revoke-on-stop`). Kept out of server/daemon.ts, which calls these.
 * @module
 */
import { formatAccess } from '../shared/access.js';
import { grantSource } from '../shared/address.js';
import { type FirewallBackend, type GrantEntry, keyFields } from './firewall/backend.js';
import { fmtEntries } from './grant-log.js';
import type { GrantManager } from './grants.js';
import type { Logger } from './log.js';

/** One `expire` line per grant that ended on time (the grant manager's `onExpire`). */
export function logExpired(log: Logger, entries: readonly GrantEntry[]): void {
  for (const e of entries) {
    log.info({ event: 'expire', address: grantSource(e), accesses: fmtEntries([e]), owner: e.owner }, 'grant expired');
  }
}

/** Revoke the live grants of clients past their `expires`, and log it. Never rejects. */
export function endExpiredClients(grants: GrantManager, clients: readonly string[], log: Logger): Promise<void> {
  const names = new Set(clients);
  return grants
    .endOwnedBy((owner) => owner !== undefined && names.has(owner))
    .then(
      (ended) =>
        // info when grants ended; a client long expired (seen again at each reload) only at debug
        log[ended.length > 0 ? 'info' : 'debug'](
          {
            event: 'client-expired',
            clients,
            ended: ended.map((g) => ({ client: g.owner, address: g.address, access: formatAccess(g.access) })),
          },
          'client past its expires date: knocks refused, grants ended',
        ),
      (err: unknown) =>
        log.error({ event: 'firewall-error', clients, err }, 'ending the grants of an expired client failed'),
    );
}

/**
 * At stop, with a backend whose kernel does not expire grants (iptables): revoke the live grants, since nobody would
 * revoke them on time; nftables grants keep expiring in the kernel by themselves. Never rejects.
 */
export async function revokeOnStop(backend: FirewallBackend, grants: GrantManager, log: Logger): Promise<void> {
  if (backend.kernelExpiry) return;
  const live = grants.active().map(({ entry }) => keyFields(entry));
  if (live.length > 0) {
    try {
      await backend.revoke(live);
      log.info({ event: 'revoke-on-stop', grants: live.length }, 'revoked live grants on stop');
    } catch (err) {
      log.error({ event: 'firewall-error', err }, 'revoking grants on stop failed');
    }
  }
}
