/**
 * Build the configured firewall backend.
 * @module
 */
import type { Config } from '../config.js';
import type { FirewallBackend } from './backend.js';
import { IptablesBackend } from './iptables.js';
import { NftablesBackend } from './nftables.js';

export function createBackend(config: Config): FirewallBackend {
  return config.firewall.backend === 'nftables'
    ? new NftablesBackend({ table: config.firewall.table })
    : new IptablesBackend({ chain: config.firewall.table });
}
