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
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { proto: m[1] as Proto, port };
}

export function formatAccess(a: Access): string {
  return `${a.proto}/${a.port}`;
}

export function sameAccess(a: Access, b: Access): boolean {
  return a.proto === b.proto && a.port === b.port;
}
