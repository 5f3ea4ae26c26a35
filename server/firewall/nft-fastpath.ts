/**
 * The nftables kernel fast path for one-address grants (`firewall.fast_path`, issue 9; docs/firewall.md): the kernel
 * adds the grant element itself, with no nft transaction, before the daemon's `nft -i` transaction confirms it.
 *
 * Rules in the `output` hook chain of our table, one pair per (protocol, grant duration), each on a source port of its
 * own (`firewall.fast_path_port` onwards):
 * ```
 * meta skuid UID udp sport P update @allow4 { ip daddr . 6 . udp dport timeout 30s } drop
 * meta skuid UID udp sport P update @allow6 { ip6 daddr . 6 . udp dport timeout 30s } drop
 * …
 * meta skuid UID udp sport P0-Pn drop
 * ```
 * To open tcp/22 for 10.0.0.2 for 30 s the daemon sends an empty datagram from the port of (tcp, 30 s) to
 * 10.0.0.2:22; the rule turns it into the element `10.0.0.2 . tcp . 22 timeout 30s` and drops it: the datagram never
 * leaves the host (the send fails with EPERM). Measured with nft 1.0.6 on Linux 6.18:
 * - the protocol is a constant in the key (`6`/`17`; nft lists it back as `tcp`/`udp`, and refuses the keyword
 *   there); `ip daddr` makes the rule IPv4-only and `ip6 daddr` IPv6-only, so one port serves both families;
 * - `update` (not `add`) also refreshes the timeout of an existing element (a re-knock extends) and keeps its comment;
 * - the timeout is fixed per rule: durations without a port of their own, prefix grants and any other grant go through
 *   `nft -i` only;
 * - a rule referencing allow4/allow6 gives them `size 65535`; when a set is full the `update` fails, the rule stops
 *   there, and the final rule drops the datagram: it never leaves either way (and EPERM then says nothing about the
 *   element, so the `nft -i` transaction that follows is the confirmation);
 * - who can trigger it: a process of the daemon's uid (normally root) sending from one of these ports.
 * @module
 */
import { type Socket, createSocket } from 'node:dgram';
import { PROTO_NUMBER, type Proto } from '../../shared/access.js';
import type { GrantEntry } from './backend.js';
import { nftDuration } from './nft-script.js';

/** What the plan says about the fast path (server/daemon-plan.ts planOf; checked by validate.ts checkPlan). */
export interface FastPathPlan {
  /** First source port of the range (one port per protocol and duration). */
  readonly firstPort: number;
  /** Grant durations (s) that get a port: the default duration of each client. At most FAST_PATH_MAX_DURATIONS. */
  readonly durationsS: readonly number[];
  /** The daemon's uid (`meta skuid`): only its sockets trigger the rules. */
  readonly uid: number;
  /**
   * `fast_path = "auto"` (the default): a backend that cannot set the fast path up (a trigger port taken, no
   * long-lived `nft -i`) installs the plan without it and says why (`fastPathState`), instead of failing.
   */
  readonly optional?: boolean;
}

/** `firewall.fast_path_port` by default. */
export const DEFAULT_FAST_PATH_PORT = 62300;

/** At most this many durations get a port of their own (2 ports each). */
export const FAST_PATH_MAX_DURATIONS = 8;

export interface FastRoute {
  readonly proto: Proto;
  readonly durationS: number;
  readonly port: number;
}

/** The port of each (protocol, duration): tcp for each duration (ascending), then udp. */
export function fastRoutes(p: FastPathPlan): FastRoute[] {
  const ds = [...new Set(p.durationsS)].sort((a, b) => a - b);
  const routes: FastRoute[] = [];
  for (const proto of ['tcp', 'udp'] as const)
    for (const durationS of ds) routes.push({ proto, durationS, port: p.firstPort + routes.length });
  return routes;
}

/**
 * The output chain's fast-path rules: as written (`listed` false: the protocol as a number, which nft's parser wants
 * in a concatenation) or as `nft list chain` prints them (`listed` true: the protocol by name).
 */
export function fastPathRules(p: FastPathPlan, listed: boolean): string[] {
  const routes = fastRoutes(p);
  const last = routes[routes.length - 1];
  if (last === undefined) return [];
  const rules: string[] = [];
  for (const r of routes) {
    const proto = listed ? r.proto : String(PROTO_NUMBER[r.proto]);
    const head = `meta skuid ${p.uid} udp sport ${r.port} update`;
    const t = `timeout ${nftDuration(r.durationS * 1000)}`;
    rules.push(`${head} @allow4 { ip daddr . ${proto} . udp dport ${t} } drop`);
    rules.push(`${head} @allow6 { ip6 daddr . ${proto} . udp dport ${t} } drop`);
  }
  // never let a trigger leave the host, whatever happened to it above (a full set)
  rules.push(`meta skuid ${p.uid} udp sport ${p.firstPort}-${last.port} drop`);
  return rules;
}

/**
 * The input chain's rule for the trigger ports: a datagram from outside to one of them is refused as at any closed
 * UDP port (`reject`: ICMP port unreachable, itself dropped by `silence_port_unreachable`), so a UDP scan sees them
 * closed, as before the daemon bound them, and nothing reaches the sockets.
 */
export function fastPathInputRules(p: FastPathPlan): string[] {
  const last = fastRoutes(p).at(-1);
  return last === undefined ? [] : [`udp dport ${p.firstPort}-${last.port} reject`];
}

/**
 * The sockets that send the trigger datagrams: per route, one udp4 and one udp6 (IPv6-only) socket bound to its port.
 * A family whose socket cannot be made (no IPv6 on the host) is not triggered; its grants take `nft -i` only. Incoming
 * datagrams on these ports are read and dropped (the receive buffer is the kernel's smallest).
 */
export class FastPathSender {
  readonly #routes = new Map<string, { v4?: Socket; v6?: Socket }>();
  readonly #sockets: Socket[] = [];
  readonly plan: FastPathPlan;

  private constructor(plan: FastPathPlan) {
    this.plan = plan;
  }

  /** Bind every port; rejects with the port that cannot be bound for IPv4 (the caller names the config key). */
  static async open(plan: FastPathPlan): Promise<FastPathSender> {
    const s = new FastPathSender(plan);
    try {
      for (const r of fastRoutes(plan)) {
        const v4 = await bindSocket('udp4', r.port);
        if (v4 instanceof Error) throw new Error(`udp port ${r.port}: ${v4.message}`);
        s.#sockets.push(v4);
        const v6 = await bindSocket('udp6', r.port);
        if (!(v6 instanceof Error)) s.#sockets.push(v6);
        s.#routes.set(`${r.proto}|${r.durationS * 1000}`, { v4, ...(v6 instanceof Error ? {} : { v6 }) });
      }
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  /**
   * Send the trigger of each grant that has a route (one address, a duration with a port, a family with a socket).
   * The timeout is `expiresAt - now`, as the nft transaction will write it. Returns the grants it sent a trigger for.
   * Never throws; the send's EPERM is the rule dropping the datagram, by design.
   */
  trigger(grants: readonly GrantEntry[], now: number): GrantEntry[] {
    const sent: GrantEntry[] = [];
    for (const g of grants) {
      // what makes the element: one address of the socket's family (libuv parses the literal with inet_pton and
      // sends nothing if it is not one), a port, and (protocol, timeout) of a route; the owner is the transaction's
      const port = g?.access?.port;
      if (g?.prefix !== undefined || typeof g.address !== 'string' || !Number.isInteger(port)) continue;
      if ((port as number) < 1 || (port as number) > 65535) continue;
      const r = this.#routes.get(`${g.access.proto}|${g.expiresAt - now}`);
      const sock = g.family === 4 ? r?.v4 : g.family === 6 ? r?.v6 : undefined;
      if (sock === undefined) continue;
      try {
        // no callback: node then builds no exception object for the EPERM (the rule's drop, by design)
        sock.send(EMPTY, port as number, g.address);
        sent.push(g);
      } catch {
        /* the transaction that follows decides */
      }
    }
    return sent;
  }

  close(): void {
    for (const s of this.#sockets.splice(0)) s.close();
    this.#routes.clear();
  }
}

const EMPTY = Buffer.alloc(0);
const ignore = (): void => undefined;

/**
 * node:dgram's lookup, replaced: a grant address is an IP literal (the verifier's canonical form) and is passed through
 * as it is; no name is ever resolved (a name would make libuv's inet_pton fail, and nothing is sent).
 */
function literal(address: string, _o: unknown, cb: (err: null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

function bindSocket(type: 'udp4' | 'udp6', port: number): Promise<Socket | Error> {
  return new Promise((resolve) => {
    let sock: Socket;
    try {
      sock = createSocket({ type, ipv6Only: type === 'udp6', lookup: literal as never });
    } catch (err) {
      resolve(err as Error);
      return;
    }
    const fail = (err: Error): void => {
      sock.close();
      resolve(err);
    };
    sock.once('error', fail);
    sock.on('message', ignore);
    sock.bind({ port, address: type === 'udp4' ? '0.0.0.0' : '::', exclusive: true }, () => {
      sock.off('error', fail);
      sock.on('error', ignore); // nothing is expected: a send without callback reports nothing
      try {
        sock.setRecvBufferSize(1); // the kernel's minimum: a flood to the port mostly dies in the kernel
        // a safety net: should the rules be gone (a flushed ruleset, until the healer puts them back), a trigger that
        // does leave reaches the local link at most (TTL / hop limit 1)
        sock.setTTL(1);
      } catch {
        /* best effort */
      }
      resolve(sock);
    });
  });
}
