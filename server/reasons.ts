/**
 * Reject reasons: string codes, never exceptions, counted per reason and summarised in the log.
 * Listed in the order the checks run (cheapest first). docs/errors.md explains each.
 * @module
 */
export const REJECT_REASONS = [
  'size', // datagram shorter or longer than any packet of a known format
  'version', // unknown version byte / format
  'unknown-key', // key id matches no client in the current epochs
  'rate', // the source (IPv6: its /64) sent more than limit.source_rate datagrams/s that reached the MAC check
  'mac', // HMAC does not verify
  'code', // a one-time code (spc1-…) that is no live code of any client: wrong key, junk, or beyond the look-ahead
  'code-used', // a one-time code below its client's floor: used already, or skipped over by a later code
  'malformed', // decrypted payload does not parse, or key-id epoch disagrees with the timestamp
  'fwknop-nat', // an fwknop NAT access request (-N, --nat-local): not supported, refused
  'fwknop-command', // an fwknop command request (-C): never run, refused
  'expired', // authenticated, but the client is past its `expires` date
  'stale', // timestamp outside the replay window, or not newer than what the replay guard has forgotten
  'replay', // packet already accepted
  'source', // source (or requested allow-address) not in the client's `sources`
  'address', // source or allow-address is unspecified, loopback, multicast, a broadcast: never granted
  'source-required', // the client has require_source_address, the knock names no address
  'prefix', // asks for a wider prefix than the client's max_prefix4 / max_prefix6
  'policy', // asks for an access the client may not open
  'client-rate', // the client's knocks exceed limit.client_rate per second: not remembered, nothing granted
  'state-write', // allowed, but its replay record could not be written to state_dir: refused (fail closed)
  'grant-limit', // the client already holds grants for grant.max_grants distinct addresses
  'prefix-overlap', // a prefix grant would overlap a live prefix grant of another length for the same access
  'busy', // limit.firewall_queue knocks already wait for the firewall (or the daemon is stopping): shed
  'firewall', // verified, but the firewall change failed
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];
