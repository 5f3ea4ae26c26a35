/**
 * Reject reasons: string codes, never exceptions, counted per reason and summarised in the log.
 * Listed in verification order (cheapest first). docs/errors.md explains each.
 * @module
 */
export const REJECT_REASONS = [
  'size', // datagram shorter or longer than any packet of a known format
  'version', // unknown version byte / format
  'unknown-key', // key id matches no client in the current epochs
  'mac', // HMAC does not verify
  'malformed', // decrypted payload does not parse, or key-id epoch disagrees with the timestamp
  'stale', // timestamp outside the replay window
  'replay', // packet already accepted
  'source', // source (or requested allow-address) not in the client's `sources`
  'policy', // asks for an access the client may not open
  'firewall', // verified, but the firewall change failed
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];
