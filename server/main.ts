/**
 * `spa-knockd`: the daemon's command line. The only file that builds real dependencies (clock, socket, firewall,
 * state directory, logger). Every failure the operator can cause is one line on stderr and a non-zero exit.
 *
 *   spa-knockd --config FILE             run the daemon
 *   spa-knockd check --config FILE       validate the config and the firewall backend; exit 0/1
 *   spa-knockd uninstall --config FILE   remove everything the daemon installed in the firewall
 * @module
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatAccess } from '../shared/access.js';
import { KeyFileError } from '../shared/keyfile.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { Daemon, planOf } from './daemon.js';
import { FirewallError } from './firewall/backend.js';
import { createBackend } from './firewall/create.js';
import { ListenError } from './listener.js';
import { createLogger } from './log.js';
import { ReplayFile, StateDirError } from './replay-file.js';

const PROG = 'spa-knockd';

/** Errors the operator can cause and fix: printed as one line, exit 1. */
function isOperatorError(e: unknown): e is Error {
  return e instanceof ConfigError || e instanceof KeyFileError || e instanceof FirewallError || e instanceof StateDirError || e instanceof ListenError;
}

function die(e: unknown): never {
  if (isOperatorError(e)) process.stderr.write(`${PROG}: ${e.message}\n`);
  else process.stderr.write(`${PROG}: internal error: ${(e as Error)?.message ?? String(e)}\n`);
  process.exit(1);
}

async function run(configPath: string): Promise<void> {
  const config = loadConfig(configPath);
  const log = createLogger(config.log.level);
  const backend = createBackend(config);
  const replayFile = new ReplayFile(config.stateDir);
  const daemon = new Daemon({ config, backend, log, replayFile });
  try {
    await daemon.start();
  } catch (e) {
    await backend.close().catch(() => undefined);
    throw e;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'stop', signal }, 'stopping; protected ports stay closed');
    daemon.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ event: 'stop-error', err: (e as Error).message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => log.warn({ event: 'sighup' }, 'reload is not supported yet; restart the daemon to apply a new config'));
  const crash = (e: unknown) => {
    log.fatal({ event: 'crash', err: (e as Error)?.message ?? String(e) }, 'internal error; exiting (protected ports stay closed)');
    process.exit(70);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

async function check(configPath: string): Promise<void> {
  const config: Config = loadConfig(configPath);
  const backend = createBackend(config);
  try {
    const problems = await backend.check(planOf(config));
    process.stdout.write(
      `config ${configPath}: OK (${config.clients.length} client${config.clients.length === 1 ? '' : 's'}, ` +
        `protects ${config.firewall.protect.map(formatAccess).join(' ')}, backend ${config.firewall.backend}, udp port ${config.listen.port})\n`,
    );
    if (problems.length === 0) process.stdout.write(`firewall: ${config.firewall.backend} installed and as configured\n`);
    else for (const p of problems) process.stdout.write(`firewall: not as configured yet (the daemon fixes this at start): ${p}\n`);
  } finally {
    await backend.close();
  }
}

async function uninstall(configPath: string): Promise<void> {
  const config = loadConfig(configPath);
  const backend = createBackend(config);
  try {
    await backend.uninstall();
    process.stdout.write(`removed spa-knock's ${config.firewall.backend} rules (${config.firewall.table}); protected ports are no longer gated\n`);
  } finally {
    await backend.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  const configOpt = { type: 'string', demandOption: true, describe: 'config file (TOML)', requiresArg: true } as const;
  await yargs(argv)
    .scriptName(PROG)
    .usage('$0 --config FILE | $0 <check|uninstall> --config FILE')
    .command('$0', 'run the daemon', (y) => y.option('config', configOpt), (a) => run(a.config))
    .command('check', 'validate the config and the firewall backend', (y) => y.option('config', configOpt), (a) => check(a.config))
    .command('uninstall', 'remove every firewall object the daemon installed', (y) => y.option('config', configOpt), (a) => uninstall(a.config))
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) die(err);
      process.stderr.write(`${PROG}: ${msg} (see ${PROG} --help)\n`);
      process.exit(2);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch(die);
