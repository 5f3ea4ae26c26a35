/**
 * Names of the firewall objects spa-knockd owns (`firewall.table`): which are safe for each backend. One check for
 * the config loader and the backends' constructors.
 *
 * nft cannot take a keyword as a table name, and quoting does not help (nft 1.0.6: `add table inet "counters"` →
 * "unexpected quoted string"). Measured here with nft 1.0.6: 12 plural keywords (`counters`, `sets`, …) are accepted
 * by `add table` and then refused by `list table`, about 45 others fail at once with a syntax error. So every
 * keyword of nft's scanner is refused up front.
 * @module
 */

const NFT_TABLE_RE = /^[a-z][a-z0-9_]{0,27}$/;
/** iptables chain names are at most 28 characters; 4 are kept for the `_OUT` suffix of the output chain. */
const IPT_CHAIN_RE = /^[A-Za-z][A-Za-z0-9_]{0,23}$/;
const IPT_BUILTIN = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING']);

/**
 * The words of nft's scanner that can look like a table name (lower case letters, digits, `_`): the quoted tokens of
 * nftables `src/scanner.l` at commit 35d9c77c (a mirror, 1g4-mirror/nftables; newer than the nft 1.0.6 installed
 * here, so a few may still be plain names in 1.0.6: refusing them costs nothing). Words with `-` are left out (the
 * name rule already refuses `-`). Data, taken as facts; no code of nftables is used.
 */
const NFT_SCANNER_WORDS = `eq ne le lt ge gt lshift rshift xor and or not vmap include define redefine undefine describe
chains sets tables rules trace hook device devices table chain rule set element map flowtable handle ruleset socket
transparent wildcard cgroupv2 level tproxy accept drop continue jump goto return to inet netdev add replace update create
insert delete get list reset flush rename import export monitor destroy position index comment constant interval
dynamic timeout elements expires policy size performance memory flow offload meter meters flowtables limits maps
secmarks synproxys tunnel tunnels hooks counter name packets bytes last never counters quotas log prefix snaplen group
queue num bypass fanout limit rate burst second minute week over quota until used hour day reject with icmpx snat dnat
masquerade redirect random persistent port ll nh th bridge ether saddr daddr type typeof vlan id cfi dei pcp arp htype
ptype hlen plen operation ip version hdrlength dscp ecn length ttl protocol checksum lsrr rr ssrr ra ptr value option
options ackseq doff window urgptr echo eol maxseg mss nop noop sack sack0 sack1 sack2 sack3 timestamp fastopen mptcp
md5sig left right count tsval tsecr subtype time icmp icmpv6 gateway code mtu taddr sequence igmp mrt ip6 priority
flowlabel hoplimit nexthdr ah reserved spi esp comp cpi flags udp udplite csumcov sport dport vxlan vni geneve gre gretap
tcp dccp sctp chunk vtag data init heartbeat abort shutdown error ecne cwr asconf tsn stream ssn ppid seqno rt rt0 rt2
srh addr hbh frag reserved2 dst mh meta mark iif iifname iiftype oif oifname oiftype skuid skgid nftrace rtclassid
ibriport ibrname obriport obrname pkttype cpu iifgroup oifgroup cgroup nexthop tag sid classid ct avgpkt l3proto zone
original reply direction event expectation expiration helper helpers label state status numgen inc jhash symhash seed
mod offset dup fwd fib check osf synproxy wscale notrack all xml json vm exists missing exthdr ipsec reqid spnum in out
secmark xt`;

/** Words measured bad as a table name with nft 1.0.6 on this project's test machine (all also in the list above). */
const NFT_MEASURED_BAD = `bridge chains comment continue counters create delete describe dnat drop exists expires flow
flowtables flush goto handle hour ibriport ibrname icmpv6 iifgroup iifname iiftype inet insert jhash jump limits maps
masquerade meter meters missing netdev nftrace notrack obriport obrname oifgroup oifname oiftype priority quotas rename
replace return rtclassid rule ruleset secmarks sets skgid snat symhash typeof vmap tables hooks synproxys`;

/** Every word refused as an nft table name. */
export const NFT_KEYWORDS: ReadonlySet<string> = new Set(
  `${NFT_SCANNER_WORDS} ${NFT_MEASURED_BAD}`.split(/\s+/).filter((w) => w !== ''),
);

/** Why `name` cannot be spa-knockd's table (nftables) or chain (iptables), or undefined when it can. */
export function tableNameProblem(backend: 'nftables' | 'iptables', name: string): string | undefined {
  if (backend === 'nftables') {
    if (typeof name !== 'string' || !NFT_TABLE_RE.test(name)) {
      return 'an nftables table name must be lower case: a letter, then up to 27 letters, digits or _';
    }
    if (NFT_KEYWORDS.has(name))
      return `"${name}" is an nft keyword, which nft cannot use as a table name; choose another`;
    return undefined;
  }
  if (typeof name !== 'string' || !IPT_CHAIN_RE.test(name)) {
    return 'an iptables chain name must be a letter, then up to 23 letters, digits or _';
  }
  if (IPT_BUILTIN.has(name.toUpperCase()))
    return `"${name}" is a built-in iptables chain; name a chain of spa-knock's own`;
  return undefined;
}
