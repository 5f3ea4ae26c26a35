#!/usr/bin/env node
/**
 * `spa-knockd`: the daemon's command line. The only file that builds real dependencies (clock, socket, firewall,
 * state directory, logger). Every failure the operator can cause is a SpaError: one line on stderr carrying its
 * code, and the exit status the code gives (shared/errors.ts). Anything else is an internal error: its stack goes
 * to the log (pino `err`), one line to stderr, exit 70.
 *
 *   spa-knockd [--config FILE] [--log-level LEVEL]   run the daemon (default config: $SPA_KNOCKD_CONFIG, else
 *                                        /etc/spa-knock/spa-knockd.toml; same default for the subcommands)
 *   spa-knockd check --config FILE       validate the config and the firewall backend; exit 0/1
 *   spa-knockd status --config FILE [--json]   active grants, reject counters (docs/operations.md)
 *   spa-knockd uninstall --config FILE   remove everything the daemon installed in the firewall
 *   spa-knockd rules --config FILE [--format nft|iptables-restore]   print a standalone ruleset (no daemon)
 *   spa-knockd import-fwknop --access-conf FILE [--out FILE]   fwknopd access.conf → config text (server/import-fwknop.ts)
 *   spa-knockd completion | --help | --version
 * @module
 */
import { rulesCommand } from './rules-command.js';
import { hideBin } from 'yargs/helpers';
import { formatAccess } from '../shared/access.js';
import { die, usageError, exitQuietlyOnClosedStdout, logInternalError } from '../shared/cli.js';
import { cliParser } from '../shared/cli-parser.js';
import { errorLine, exitCodeOf, isSpaError } from '../shared/errors.js';
import { type Config, loadConfig } from './config.js';
import { Daemon, planOf } from './daemon.js';
import { createBackend } from './firewall/create.js';
import { runImportFwknop } from './import-fwknop.js';
import { type Logger, createLogger } from './log.js';
import { ReplayFile } from './replay-file.js';
import { type ControlServer, controlPath, openControl } from './control.js';
import { daemonStatus, statusCommand } from './status.js';
import { Reloader } from './reload.js';

const PROG = 'spa-knockd';

/** An internal error (a bug) after the logger exists: the stack to the log, one line to stderr, exit 70. */
function crash(log: Logger, event: string, e: unknown): never {
  logInternalError(log, event, e);
  die(PROG, e);
}

/** `--config`, else SPA_KNOCKD_CONFIG, else /etc/spa-knock/spa-knockd.toml. */
const DEFAULT_CONFIG_PATH = '/etc/spa-knock/spa-knockd.toml';
const configPathOf = (given: string | undefined): string =>
  given ?? (process.env.SPA_KNOCKD_CONFIG || undefined) ?? DEFAULT_CONFIG_PATH;

type Level = Config['log']['level'];
const LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

function levelOf(given: string | undefined): Level | undefined {
  if (given === undefined || (LEVELS as readonly string[]).includes(given)) return given as Level | undefined;
  throw usageError(`--log-level must be one of ${LEVELS.join(', ')}`);
}

async function run(configPath: string, logLevel: Level | undefined): Promise<void> {
  // --log-level beats the config's log.level, also across reloads
  const load = (p: string): Config => {
    const c = loadConfig(p);
    return logLevel === undefined ? c : { ...c, log: { ...c.log, level: logLevel } };
  };
  const config = load(configPath);
  const log = createLogger(config.log.level);
  const backend = createBackend(config);
  const replayFile = new ReplayFile(config.stateDir);
  const daemon = new Daemon({ config, backend, log, replayFile });
  const startedAt = Date.now();
  let control: ControlServer | undefined;
  try {
    // first: a second daemon on this state_dir is refused before it touches the firewall
    control = await openControl(controlPath(config.stateDir), (cmd) =>
      cmd === 'status' ? daemonStatus(daemon, startedAt) : undefined,
    );
    await daemon.start();
  } catch (e) {
    await control?.close();
    await backend.close().catch(() => undefined);
    if (!isSpaError(e)) crash(log, 'crash', e);
    throw e;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'stop', signal }, 'stopping; protected ports stay closed');
    Promise.all([control?.close(), daemon.stop()]).then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ event: 'stop-error', err: e }, 'error while stopping');
        process.stderr.write(`${errorLine(PROG, e)}\n`);
        process.exit(exitCodeOf(e));
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const reloader = new Reloader(configPath, daemon, log, load);
  process.on('SIGHUP', () => {
    if (!stopping) void reloader.reload();
  });
  process.on('uncaughtException', (e) => crash(log, 'crash', e));
  process.on('unhandledRejection', (e) => crash(log, 'crash', e));
}

async function check(configPath: string): Promise<void> {
  const config: Config = loadConfig(configPath);
  const backend = createBackend(config);
  try {
    const problems = await backend.check(planOf(config));
    const n = config.clients.length;
    process.stdout.write(
      `config ${configPath}: OK (${n} client${n === 1 ? '' : 's'}, protects ${config.firewall.protect.map(formatAccess).join(' ')}, ` +
        `backend ${config.firewall.backend}, udp port ${config.listen.port})\n`,
    );
    if (problems.length === 0)
      process.stdout.write(`firewall: ${config.firewall.backend} installed and as configured\n`);
    else
      for (const p of problems)
        process.stdout.write(`firewall: not as configured yet (the daemon fixes this at start): ${p}\n`);
  } finally {
    await backend.close();
  }
}

async function uninstall(configPath: string): Promise<void> {
  const config = loadConfig(configPath);
  const backend = createBackend(config);
  try {
    await backend.uninstall();
    process.stdout.write(
      `removed spa-knock's ${config.firewall.backend} rules (${config.firewall.table}); protected ports are no longer gated\n`,
    );
  } finally {
    await backend.close();
  }
}

export async function main(argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedStdout();
  const configOpt = {
    type: 'string',
    describe: `config file (TOML); default $SPA_KNOCKD_CONFIG, else ${DEFAULT_CONFIG_PATH}`,
    requiresArg: true,
  } as const;
  await cliParser(PROG, argv, {
    usage: '$0 --config FILE | $0 <check|status|uninstall|rules> --config FILE | $0 import-fwknop --access-conf FILE',
  })
    .command(
      '$0',
      'run the daemon',
      (y) =>
        y.option('config', configOpt).option('log-level', {
          type: 'string',
          requiresArg: true,
          describe: 'log level (overrides log.level in the config)',
        }),
      (a) => run(configPathOf(a.config), levelOf(a.logLevel)),
    )
    .command(
      'check',
      'validate the config and the firewall backend',
      (y) => y.option('config', configOpt),
      (a) => check(configPathOf(a.config)),
    )
    .command(
      'status',
      'active grants and reject counters of the running daemon (its control socket in state_dir)',
      (y) => y.option('config', configOpt).option('json', { type: 'boolean', describe: 'print the status as JSON' }),
      (a) => statusCommand(configPathOf(a.config), a.json === true),
    )
    .command(
      'rules',
      'print a standalone ruleset for the config (knock sequences with no daemon: docs/classic.md)',
      (y) =>
        y.option('config', configOpt).option('format', {
          type: 'string',
          requiresArg: true,
          describe: 'nft or iptables-restore (default: the configured backend)',
        }),
      (a) => rulesCommand(configPathOf(a.config), a.format),
    )
    .command(
      'uninstall',
      'remove every firewall object the daemon installed',
      (y) => y.option('config', configOpt),
      (a) => uninstall(configPathOf(a.config)),
    )
    .command(
      'import-fwknop',
      'turn fwknopd access.conf stanzas into spa-knockd config text (notes on stderr)',
      (y) =>
        y
          .option('access-conf', {
            type: 'string',
            demandOption: true,
            requiresArg: true,
            describe: 'fwknopd access.conf',
          })
          .option('out', {
            type: 'string',
            requiresArg: true,
            describe: 'write the config here (mode 0600), not stdout',
          }),
      (a) => runImportFwknop(a.accessConf, a.out),
    )
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => die(PROG, e));
