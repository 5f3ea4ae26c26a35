/**
 * SIGHUP: reload the config without dropping active grants (docs/operations.md). The new file is read and checked
 * exactly as at start; a config that does not load, or that changes a setting only a restart can apply (listen
 * address, port or buffer, state_dir, firewall backend or table, replay window), is refused with a logged reason and
 * the old one stays in force. Otherwise the daemon switches over (Daemon.reload): the new firewall plan is installed
 * with the live grants, removed clients' grants end, the other grants stay. Reloads never overlap.
 * @module
 */
import { formatAccess } from '../shared/access.js';
import { grantSource } from '../shared/address.js';
import type { Config } from './config.js';
import { loadConfig } from './config-file.js';
import type { Daemon } from './daemon.js';
import type { GrantEntry } from './firewall/backend.js';
import type { Logger } from './log.js';

/** The settings a reload cannot change, with how to read them. */
const RESTART_ONLY: readonly [string, (c: Config) => unknown][] = [
  ['state_dir', (c) => c.stateDir],
  ['listen.address', (c) => c.listen.address],
  ['listen.port', (c) => c.listen.port],
  ['listen.receive_buffer', (c) => c.listen.receiveBuffer],
  ['firewall.backend', (c) => c.firewall.backend],
  ['firewall.table', (c) => c.firewall.table],
  ['replay.window', (c) => c.replay.window],
];

/** The restart-only settings that differ between two configs. */
export function restartNeeded(old: Config, next: Config): string[] {
  return RESTART_ONLY.filter(([, get]) => get(old) !== get(next)).map(([name]) => name);
}

const oneLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0] ?? '';

export type ReloadOutcome = 'reloaded' | 'refused' | 'failed';

export class Reloader {
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    readonly daemon: Daemon,
    readonly log: Logger,
    readonly load: (path: string) => Config = loadConfig,
  ) {}

  /** Reload now, after any reload in progress. Never throws: the outcome is logged and returned. */
  reload(): Promise<ReloadOutcome> {
    const p = this.#chain.then(() => this.#reload());
    this.#chain = p;
    return p;
  }

  async #reload(): Promise<ReloadOutcome> {
    const { log, daemon } = this;
    const refuse = (reason: string): ReloadOutcome => {
      log.error(
        { event: 'reload-refused', config: this.path, reason },
        'new config refused; the old one stays in force',
      );
      return 'refused';
    };
    let next: Config;
    try {
      next = this.load(this.path);
    } catch (e) {
      return refuse(oneLine(e));
    }
    const fixed = restartNeeded(daemon.config, next);
    if (fixed.length > 0) return refuse(`${fixed.join(', ')} changed: only a restart applies that`);
    const before = daemon.config;
    let ended: GrantEntry[];
    try {
      ended = await daemon.reload(next);
    } catch (e) {
      if (daemon.config === before) return refuse(`the new firewall plan cannot be installed: ${oneLine(e)}`);
      log.error(
        { event: 'reload-error', err: e },
        'new config in force, but ending the grants of removed clients failed',
      );
      return 'failed';
    }
    const names = (c: Config) => new Set(c.clients.map((cl) => cl.name));
    const [was, now] = [names(before), names(next)];
    log.info(
      {
        event: 'reload',
        config: this.path,
        clients: next.clients.length,
        added: [...now].filter((n) => !was.has(n)),
        removed: [...was].filter((n) => !now.has(n)),
        protect: next.firewall.protect.map(formatAccess),
        ended: ended.map((g) => ({ client: g.owner, address: grantSource(g), access: formatAccess(g.access) })),
      },
      'config reloaded; active grants kept',
    );
    return 'reloaded';
  }
}
