/**
 * Dual-stack knocking: HOST may resolve to an IPv4 and an IPv6 address, and ssh (or any other program) may pick
 * either. `spa-knock` therefore knocks over every family HOST resolves to, one address per family (the first the
 * resolver lists), unless `-4`/`-6` restricts it. Each family gets its own freshly built packet: the same bytes
 * sent twice would be refused by the server's replay check the second time.
 * @module
 */
import { SpaError, errnoText } from '../shared/errors.js';
import { hostLiteral } from './send.js';

export interface Target {
  readonly address: string;
  readonly family: 4 | 6;
}

/** The resolver seam: `dns.lookup(host, { all: true })` by default; tests inject their own. */
export type LookupAll = (host: string, family: 0 | 4 | 6) => Promise<readonly { address: string; family: number }[]>;

/** `node:dns` is loaded only for a name: an IP literal (the common knock) never needs it (client cold start). */
export const systemLookupAll: LookupAll = async (host, family) =>
  (await import('node:dns/promises')).lookup(host, { all: true, family, verbatim: true });

/**
 * The addresses to knock: an IP literal as given; for a name, the first address of each family the resolver
 * returns (in the resolver's order), restricted to `family` when it is 4 or 6.
 */
export async function resolveTargets(
  host: string,
  family: 0 | 4 | 6,
  lookupAll: LookupAll = systemLookupAll,
): Promise<Target[]> {
  const lit = hostLiteral(host, family);
  if (lit !== undefined) return [lit];
  let list: readonly { address: string; family: number }[];
  try {
    list = await lookupAll(host, family);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOTFOUND'
        ? 'no such host'
        : code === 'EAI_AGAIN'
          ? 'name server not reachable (try again)'
          : errnoText(e);
    throw new SpaError('ERR_SPA_RESOLVE', `cannot resolve host ${host}: ${why}`);
  }
  const out: Target[] = [];
  for (const r of list) {
    if (r.family !== 4 && r.family !== 6) continue;
    if (family !== 0 && r.family !== family) continue;
    if (out.some((t) => t.family === r.family)) continue;
    out.push({ address: r.address, family: r.family });
  }
  if (out.length === 0)
    throw new SpaError(
      'ERR_SPA_RESOLVE',
      `cannot resolve host ${host}: no ${family === 0 ? '' : `IPv${family} `}address`,
    );
  return out;
}

export const showAddress = (t: Target): string => (t.family === 6 ? `[${t.address}]` : t.address);

/**
 * Run `send` for each target, in order. A family that fails is reported through `warn` as long as another one
 * succeeded; when all fail, the first error is thrown. Returns the targets that were sent to.
 */
export async function forEachTarget(
  targets: readonly Target[],
  send: (t: Target) => Promise<void>,
  warn: (line: string) => void,
): Promise<Target[]> {
  const ok: Target[] = [];
  const failed: { t: Target; e: unknown }[] = [];
  for (const t of targets) {
    try {
      await send(t);
      ok.push(t);
    } catch (e) {
      failed.push({ t, e });
    }
  }
  if (ok.length === 0 && failed[0] !== undefined) throw failed[0].e;
  for (const f of failed)
    warn(`IPv${f.t.family} knock to ${showAddress(f.t)} failed (${f.e instanceof Error ? f.e.message : String(f.e)})`);
  return ok;
}
