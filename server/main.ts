#!/usr/bin/env node
/**
 * `spa-knockd`: the daemon's command line. The only file that builds real dependencies (clock, socket, firewall,
 * state directory, logger). Every failure the operator can cause is a SpaError: one line on stderr carrying its
 * code, and the exit status the code gives (shared/errors.ts). Anything else is an internal error: its stack goes
 * to the log (pino `err`), one line to stderr, exit 70.
 *
 *   spa-knockd [--config FILE] [--log-level LEVEL] [--log-format json|pretty]   run the daemon (default config:
 *                                        $SPA_KNOCKD_CONFIG, else /etc/spa-knock/spa-knockd.toml; same default for
 *                                        the subcommands). Under systemd: a socket it passes is adopted
 *                                        (server/listen-fds.ts), readiness is notified (server/notify.ts).
 *   spa-knockd check --config FILE       validate the config and the firewall backend; exit 0/1
 *   spa-knockd status --config FILE [--json]   active grants, reject counters (docs/operations.md)
 *   spa-knockd uninstall --config FILE   remove everything the daemon installed in the firewall
 *   spa-knockd rules --config FILE [--format nft|iptables-restore]   print a standalone ruleset (no daemon)
 *   spa-knockd doctor --config FILE [--json]   why a knock "works" but the port stays closed (server/doctor.ts)
 *   spa-knockd import-fwknop --access-conf FILE [--out FILE]   fwknopd access.conf → config text (server/import-fwknop.ts)
 *   spa-knockd install-systemd [--unit-dir DIR] [--dry-run] [--force]   install the units (server/install-systemd.ts)
 *   spa-knockd add-client NAME [...] | remove-client NAME | list-clients [--json]   (server/clients-command.ts)
 *   spa-knockd completion | --help | --version
 * @module
 */
import { rulesCommand } from './rules-command.js';
import { hideBin } from 'yargs/helpers';
import { formatAccess } from '../shared/access.js';
import { die, usageError, exitQuietlyOnClosedStdout, logInternalError } from '../shared/cli.js';
import { cliParser } from '../shared/cli-parser.js';
import { errorLine, exitCodeOf, isSpaError } from '../shared/errors.js';
import type { Config } from './config.js';
import { loadConfig } from './config-file.js';
import { Daemon, planOf } from './daemon.js';
import { createBackend } from './firewall/create.js';
import { runImportFwknop } from './import-fwknop.js';
import { DEFAULT_UNIT_DIR, daemonCommand, installSystemd } from './install-systemd.js';
import { LOG_FORMATS, type LogFormat, type Logger, createLogger, logDestination, logFormatFor } from './log.js';
import { takeListenFd } from './listen-fds.js';
import { createNotifier } from './notify.js';
import { ReplayFile } from './replay-file.js';
import { CodeFloorFile, openCodeFloors } from './code-floor.js';
import { type ControlServer, controlPath, openControl } from './control.js';
import { daemonStatus, statusCommand } from './status.js';
import { doctorCommand } from './doctor.js';
import { Reloader } from './reload.js';
import { addClient, listClients, removeClient } from './clients-command.js';

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

function formatOf(given: string | undefined): LogFormat | undefined {
  if (given === undefined || (LOG_FORMATS as readonly string[]).includes(given)) return given as LogFormat | undefined;
  throw usageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}`);
}

async function run(configPath: string, logLevel: Level | undefined, logFormat: LogFormat | undefined): Promise<void> {
  // read (and removed from the environment) before anything else: the firewall tools must not inherit them
  const listenFd = takeListenFd(process.env, process.pid);
  // --log-level beats the config's log.level, also across reloads
  const load = (p: string): Config => {
    const c = loadConfig(p);
    return logLevel === undefined ? c : { ...c, log: { ...c.log, level: logLevel } };
  };
  const config = load(configPath);
  const tty = process.stdout.isTTY === true;
  const log = createLogger(config.log.level, logDestination(logFormatFor(logFormat, tty), { colorize: tty }));
  const notifier = createNotifier({
    onError: (message) => log.warn({ event: 'notify-error', message }, 'cannot notify systemd'),
  });
  const backend = createBackend(config);
  const replayFile = new ReplayFile(config.stateDir);
  const codeFloorFile = new CodeFloorFile(config.stateDir);
  const daemon = new Daemon({
    config,
    backend,
    log,
    replayFile,
    codeFloors: openCodeFloors(codeFloorFile),
    ...(listenFd !== undefined ? { listenFd } : {}),
  });
  const startedAt = Date.now();
  let control: ControlServer | undefined;
  try {
    // first: a second daemon on this state_dir is refused before it touches the firewall
    control = await openControl(controlPath(config.stateDir), (cmd) =>
      cmd === 'status'
        ? daemon.prefilterDrops().then((pf) => daemonStatus(daemon, startedAt, Date.now(), pf))
        : undefined,
    );
    await daemon.start();
    // only now: the socket is bound (or adopted) and the gate is installed
    void notifier.ready(readyStatus(daemon));
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
    Promise.all([notifier.stopping(`stopping (${signal})`), control?.close(), daemon.stop()]).then(
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
    if (stopping) return;
    void notifier.reloading(`reloading ${configPath}`);
    void reloader
      .reload()
      .then((outcome) =>
        notifier.ready(outcome === 'reloaded' ? readyStatus(daemon) : `${readyStatus(daemon)}; last reload ${outcome}`),
      );
  });
  process.on('uncaughtException', (e) => crash(log, 'crash', e));
  process.on('unhandledRejection', (e) => crash(log, 'crash', e));
}

/** The STATUS= line `systemctl status spa-knockd` shows. */
function readyStatus(daemon: Daemon): string {
  const c = daemon.config;
  return `listening on udp ${daemon.bound ?? '?'}, ${daemon.backendName} gate on ${c.firewall.protect.map(formatAccess).join(' ')}, ${c.clients.length} client${c.clients.length === 1 ? '' : 's'}`;
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
    usage:
      '$0 --config FILE | $0 <check|status|doctor|uninstall|rules|list-clients> --config FILE | $0 add-client NAME | ' +
      '$0 remove-client NAME | $0 import-fwknop --access-conf FILE | $0 install-systemd',
    repeatable: ['open', 'sources'],
  })
    .command(
      '$0',
      'run the daemon',
      (y) =>
        y
          .option('config', configOpt)
          .option('log-level', {
            type: 'string',
            requiresArg: true,
            describe: 'log level (overrides log.level in the config)',
          })
          .option('log-format', {
            type: 'string',
            requiresArg: true,
            describe: 'json (NDJSON) or pretty; default pretty when stdout is a terminal, else json',
          }),
      (a) => run(configPathOf(a.config), levelOf(a.logLevel), formatOf(a.logFormat)),
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
      'doctor',
      'find why a knock would not open the port (other firewalls, IPv6, clocks, the gate); exit 1 with findings',
      (y) => y.option('config', configOpt).option('json', { type: 'boolean', describe: 'print the findings as JSON' }),
      async (a) => {
        process.exitCode = await doctorCommand(configPathOf(a.config), a.json === true);
      },
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
      'install-systemd',
      'install spa-knockd.service and spa-knockd.socket for this spa-knockd (docs/systemd.md)',
      (y) =>
        y
          .option('config', configOpt)
          .option('unit-dir', {
            type: 'string',
            requiresArg: true,
            describe: `where to write the units (default ${DEFAULT_UNIT_DIR})`,
          })
          .option('dry-run', { type: 'boolean', describe: 'print the units and what would change; write nothing' })
          .option('force', { type: 'boolean', describe: 'replace unit files that differ' }),
      (a) =>
        installSystemd({
          unitDir: a.unitDir ?? DEFAULT_UNIT_DIR,
          configPath: configPathOf(a.config),
          dryRun: a.dryRun === true,
          force: a.force === true,
          command: daemonCommand(process.execPath, process.execArgv, process.argv[1] ?? ''),
          out: (t) => process.stdout.write(t),
        }),
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
    .command(
      'add-client <name>',
      'new client: a key, a [[client]] in the config (comments kept), its key line, spa-knock:// URI and QR code',
      (y) =>
        y
          .positional('name', { type: 'string', demandOption: true, describe: 'client name (A-Z a-z 0-9 . _ @ -)' })
          .option('config', configOpt)
          .option('open', {
            type: 'string',
            requiresArg: true,
            describe: 'what it may open, e.g. tcp/22 (repeatable; default: everything firewall.protect lists)',
          })
          .option('sources', {
            type: 'string',
            requiresArg: true,
            describe: 'where its knocks may come from, CIDR (repeatable; default: anywhere)',
          })
          .option('expires', {
            type: 'string',
            requiresArg: true,
            describe: 'refuse it from then on: 2027-01-31 (00:00 UTC) or 2027-01-31T18:00:00Z',
          })
          .option('host', {
            type: 'string',
            requiresArg: true,
            describe: "the server's name or address in the URI, H[:PORT] (default: listen address, else hostname)",
          })
          .option('key-file', {
            type: 'string',
            requiresArg: true,
            describe: 'write the key to this new 0600 file and use key_file (the config then holds no key)',
          })
          .option('qr', { type: 'boolean', default: true, describe: 'print the URI as a QR code (--no-qr: not)' })
          .option('json', { type: 'boolean', default: false, describe: 'print name, key and URI as JSON' })
          .option('reload', { type: 'boolean', default: false, describe: 'then SIGHUP the running daemon' }),
      (a) =>
        addClient({
          config: configPathOf(a.config),
          name: a.name,
          open: a.open === undefined ? [] : ([] as unknown[]).concat(a.open).map(String),
          sources: a.sources === undefined ? [] : ([] as unknown[]).concat(a.sources).map(String),
          expires: a.expires,
          host: a.host,
          keyFile: a.keyFile,
          qr: a.qr,
          json: a.json,
          reload: a.reload,
        }),
    )
    .command(
      'remove-client <name>',
      "remove that client's [[client]] block from the config (comments kept)",
      (y) =>
        y
          .positional('name', { type: 'string', demandOption: true, describe: 'client name' })
          .option('config', configOpt)
          .option('reload', { type: 'boolean', default: false, describe: 'then SIGHUP the running daemon' }),
      (a) => removeClient({ config: configPathOf(a.config), name: a.name, reload: a.reload }),
    )
    .command(
      'list-clients',
      'the clients of the config: accesses, sources, expiry',
      (y) => y.option('config', configOpt).option('json', { type: 'boolean', default: false, describe: 'as JSON' }),
      (a) => listClients({ config: configPathOf(a.config), json: a.json }),
    )
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => die(PROG, e));
