/**
 * Accesses: the (protocol, port) pairs a knock asks for and a policy allows.
 * Text form is `tcp/22` or `udp/53`, the same in the CLI, the config and the logs.
 * @module
 */

export type Proto = 'tcp' | 'udp';

export interface Access {
  readonly proto: Proto;
  readonly port: number;
}

/** IANA protocol numbers, used on the wire (RFC 790 / IANA "Protocol Numbers"). */
export const PROTO_NUMBER: Readonly<Record<Proto, number>> = Object.freeze({ tcp: 6, udp: 17 });

export function protoFromNumber(n: number): Proto | undefined {
  return n === 6 ? 'tcp' : n === 17 ? 'udp' : undefined;
}

const ACCESS_RE = /^(tcp|udp)\/([0-9]{1,5})$/;

/**
 * Parse `tcp/22`. Returns undefined for anything else (no throwing: callers turn it into their own error).
 * @example parseAccess('tcp/22') // { proto: 'tcp', port: 22 }
 */
export function parseAccess(text: string): Access | undefined {
  const m = ACCESS_RE.exec(text.trim().toLowerCase());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!isPort(port)) return undefined;
  return { proto: m[1] as Proto, port };
}

/** A TCP/UDP port number: an integer 1..65535 (port 0 is never a service). The one port check of the project. */
export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function isProto(p: unknown): p is Proto {
  return p === 'tcp' || p === 'udp';
}

/** A clean copy of `a` if it is a valid access (any shape: it may come from JSON or a caller's bug), else undefined. */
export function toAccess(a: unknown): Access | undefined {
  if (typeof a !== 'object' || a === null) return undefined;
  const { proto, port } = a as { proto?: unknown; port?: unknown };
  return isProto(proto) && isPort(port) ? { proto, port } : undefined;
}

export function formatAccess(a: Access): string {
  return `${a.proto}/${a.port}`;
}

export function sameAccess(a: Access, b: Access): boolean {
  return a.proto === b.proto && a.port === b.port;
}

/** Duplicates removed, first occurrence kept, order kept. */
export function dedupeAccesses(list: readonly Access[]): Access[] {
  const seen = new Set<string>();
  const out: Access[] = [];
  for (const a of list) {
    const k = formatAccess(a);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(a);
    }
  }
  return out;
}

/**
 * Compare an installed list of accesses with the expected one as sets. Undefined when they hold the same accesses,
 * else one line for the operator: `protected list differs: installed [tcp/22], expected [tcp/22, udp/53]`.
 */
export function accessListDiff(
  installed: readonly Access[],
  expected: readonly Access[],
  label = 'protected list',
): string | undefined {
  const have = [...new Set(installed.map(formatAccess))].sort();
  const want = [...new Set(expected.map(formatAccess))].sort();
  if (have.join(',') === want.join(',')) return undefined;
  return `${label} differs: installed [${have.join(', ')}], expected [${want.join(', ')}]`;
}
