/**
 * Names of the firewall objects spa-knockd owns (`firewall.table`): which are safe for each backend. One check for
 * the config loader and the backends' constructors.
 * @module
 */

const NFT_TABLE_RE = /^[a-z][a-z0-9_]{0,27}$/;
const IPT_CHAIN_RE = /^[A-Za-z][A-Za-z0-9_]{0,27}$/;
const IPT_BUILTIN = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING']);

/** Why `name` cannot be spa-knockd's table (nftables) or chain (iptables), or undefined when it can. */
export function tableNameProblem(backend: 'nftables' | 'iptables', name: string): string | undefined {
  if (backend === 'nftables') {
    if (!NFT_TABLE_RE.test(name)) return 'an nftables table name must be lower case: a letter, then up to 27 letters, digits or _';
    return undefined;
  }
  if (!IPT_CHAIN_RE.test(name)) return 'an iptables chain name must be a letter, then up to 27 letters, digits or _';
  if (IPT_BUILTIN.has(name.toUpperCase())) return `"${name}" is a built-in iptables chain; name a chain of spa-knock's own`;
  return undefined;
}
