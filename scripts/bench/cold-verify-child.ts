/**
 * Child process (scripts/bench/cold-verify.ts starts it): the verifier as the daemon builds it, fed one valid packet
 * every gapMs ms with no warm-up, so its JIT is as cold as a daemon's that sees a knock now and then.
 * @module
 */
import { serveStdio } from '../../harness/stdio-rpc.js';
import { buildVerifier, sealFor } from './verifier.js';

export interface ColdVerifyOps {
  /** `us`: the verification time of each packet, in µs. */
  verifyCold: { req: { n: number; gapMs: number }; rep: { us: number[] } };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

serveStdio<ColdVerifyOps>({
  verifyCold: async ({ n, gapMs }) => {
    const b = buildVerifier(1, { prime: false });
    const keys = b.keys[0];
    if (!keys) return { ok: false, error: 'no client', us: [] };
    const us: number[] = [];
    for (let i = 0; i < n; i++) {
      const ts = Date.now();
      const p = sealFor(keys, ts);
      await sleep(gapMs);
      const t = process.hrtime.bigint();
      const r = b.verifier.verify(p, '198.51.100.7', ts);
      us.push(Number(process.hrtime.bigint() - t) / 1000);
      if (!r.ok) return { ok: false, error: `verify: ${r.code}`, us };
    }
    return { ok: true, us };
  },
});
