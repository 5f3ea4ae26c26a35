/**
 * Strict IP address syntax. ipaddr.js alone also accepts historic IPv4 shorthands (`010.0.0.1` read as octal
 * 8.0.0.1, `1` as 0.0.0.1), which must never silently become a firewall address: IPv4 must be four decimal parts.
 * @module
 */
import ipaddr from 'ipaddr.js';

export function isStrictIp(text: string): boolean {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return true;
  return !text.includes('%') && ipaddr.IPv6.isValid(text) && /^[0-9A-Fa-f:.]+$/.test(text) && (!text.includes('.') || ipaddr.IPv4.isValidFourPartDecimal(text.slice(text.lastIndexOf(':') + 1)));
}
