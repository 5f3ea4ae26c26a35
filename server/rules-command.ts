/**
 * `spa-knockd rules --config FILE [--format nft|iptables-restore]`: print the standalone ruleset for the config
 * (server/firewall/standalone.ts). Reads the config only; changes nothing. The default format follows
 * `firewall.backend`.
 * @module
 */
import { usageError } from '../shared/cli.js';
import { loadConfig } from './config-file.js';
import { planOf } from './daemon.js';
import { standaloneIptables, standaloneNft } from './firewall/standalone.js';
import { checkPlan } from './firewall/validate.js';

export const RULE_FORMATS = ['nft', 'iptables-restore'] as const;

export function rulesCommand(configPath: string, format: string | undefined): void {
  if (format !== undefined && !(RULE_FORMATS as readonly string[]).includes(format)) {
    throw usageError(`--format must be one of ${RULE_FORMATS.join(', ')}`);
  }
  const config = loadConfig(configPath);
  const plan = checkPlan(planOf(config));
  const f = format ?? (config.firewall.backend === 'nftables' ? 'nft' : 'iptables-restore');
  const table = config.firewall.table;
  // firewall.table is checked for the configured backend; the other one has its own default name
  const text =
    f === 'nft'
      ? standaloneNft(config.firewall.backend === 'nftables' ? table : 'spa_knock', plan, configPath)
      : standaloneIptables(config.firewall.backend === 'iptables' ? table : 'SPA_KNOCK', plan, configPath);
  process.stdout.write(text);
}
