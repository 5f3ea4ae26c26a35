/**
 * Child process in the server namespace (knock-to-open.ts starts it before the daemon): a firewall backend's grant()
 * alone, with no verification, socket or log in the way, on a table/chain of its own that it removes again. The
 * addresses it grants never send traffic.
 * @module
 */
import type { FirewallBackend, GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { serveStdio } from '../../harness/stdio-rpc.js';
import type { BackendName } from './options.js';

export interface GrantProbeOps {
  /**
   * `samples['gap<G>']`: grant() then revoke() of one address, n times after 2 unrecorded, with G ms idle before each
   * call, for each G in `gaps`; `samples['new']`: grant() of a new address each time, nothing revoked in between
   * (n calls, the set/chain grows); with `oneshot` (nftables only) also `samples['oneshot']`: the same through a
   * backend in oneshot mode (one `nft -f -` process per change).
   */
  fw: {
    req: { backend: BackendName; subnet: number; n: number; gaps: number[]; oneshot: boolean };
    rep: { samples: Record<string, number[]> };
  };
}

const ms = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));
const TCP22 = { proto: 'tcp', port: 22 } as const;
const PLAN = { protect: [TCP22] };

function backendFor(name: BackendName, mode: 'persistent' | 'oneshot' = 'persistent'): FirewallBackend {
  return name === 'nftables'
    ? new NftablesBackend({ table: 'spak_probe', mode })
    : new IptablesBackend({ chain: 'SPAK_PROBE' });
}

/** grant() of a new address each time (10.251.S.100 + i), timed. */
async function newAddresses(b: FirewallBackend, subnet: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const now = Date.now();
    const t = ms();
    await b.grant([{ family: 4, address: `10.251.${subnet}.${100 + i}`, access: TCP22, expiresAt: now + 10_000 }], now);
    out.push(ms() - t);
  }
  return out;
}

serveStdio<GrantProbeOps>({
  fw: async ({ backend, subnet, n, gaps, oneshot }) => {
    const b = backendFor(backend);
    const e: Omit<GrantEntry, 'expiresAt'> = { family: 4, address: `10.251.${subnet}.99`, access: TCP22 };
    const samples: Record<string, number[]> = {};
    try {
      await b.install(PLAN, Date.now());
      for (const gap of gaps) {
        const g: number[] = [];
        for (let i = 0; i < n + 2; i++) {
          if (gap) await sleep(gap);
          const now = Date.now();
          const t = ms();
          await b.grant([{ ...e, expiresAt: now + 3000 }], now);
          if (i >= 2) g.push(ms() - t);
          if (gap) await sleep(gap);
          await b.revoke([e]);
        }
        samples[`gap${gap}`] = g;
      }
      samples['new'] = await newAddresses(b, subnet, n);
      if (oneshot && backend === 'nftables') {
        await b.uninstall(); // start again from an empty set, through the oneshot backend
        const one = backendFor(backend, 'oneshot');
        try {
          await one.install(PLAN, Date.now());
          samples['oneshot'] = await newAddresses(one, subnet, n);
        } finally {
          await one.uninstall().catch(() => undefined);
          await one.close();
        }
      }
    } finally {
      await b.uninstall().catch(() => undefined);
      await b.close();
    }
    return { ok: true, samples };
  },
});
