/**
 * `spa-knockd install-systemd [--unit-dir DIR] [--dry-run] [--force]`: install the package's systemd units
 * (systemd/spa-knockd.service and .socket, explained line by line in docs/systemd.md) for the spa-knockd that is
 * running this command.
 *
 * The shipped units are templates only in two lines: `ExecStart=` is rewritten to this Node binary and the real path
 * of this very program (process.execPath, realpath of process.argv[1]: an `npm install -g` symlink is followed),
 * with `--config FILE`; `Documentation=` points at this package's docs/systemd.md. When the config exists and loads,
 * the socket unit listens on its `[listen]` address and port, and a `state_dir` other than /var/lib/spa-knockd is
 * made writable (`ReadWritePaths=`). A program or config under a home directory keeps `ProtectHome=read-only`
 * instead of `yes`, or the service could not even start it.
 *
 * It creates the config's directory (mode 0700) when missing but never writes or overwrites a config. A unit already
 * there with the same text is left alone (idempotent); one that differs is refused (ERR_SPA_INSTALL) unless
 * `--force`. Files are written through a temporary file and a rename, mode 0644. Nothing is run: it prints the
 * `systemctl` commands to run next. No shell anywhere.
 * @module
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostPort } from '../shared/address.js';
import { SpaError, errnoText } from '../shared/errors.js';
import type { Config } from './config.js';
import { loadConfig } from './config-file.js';

export const UNIT_NAMES = ['spa-knockd.service', 'spa-knockd.socket'] as const;
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
/** The state directory the shipped unit's StateDirectory=spa-knockd provides. */
const UNIT_STATE_DIR = '/var/lib/spa-knockd';
const SHIPPED_DOCS = 'file:/usr/local/lib/node_modules/spa-knock/docs/systemd.md';

/** The package root: the nearest directory up from this module holding systemd/spa-knockd.service. */
export function packageRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'systemd', 'spa-knockd.service'))) return dir;
    dir = dirname(dir);
  }
  throw new SpaError('ERR_SPA_INSTALL', 'the systemd units are missing from this installation (systemd/ folder)');
}

/**
 * One word of a unit's command line (systemd.service(5), "Command lines"): quoted when it holds a space, quote or
 * backslash; `%` (specifiers) and `$` (variables) doubled so they stay literal.
 */
export function quoteExecArg(s: string): string {
  if (/[\n\r\0]/.test(s)) throw new SpaError('ERR_SPA_INSTALL', `cannot put ${JSON.stringify(s)} in a unit`);
  const lit = s.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /[\s"'\\;]/.test(lit) || lit === '' ? `"${lit.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : lit;
}

/**
 * The command that runs this spa-knockd: the Node binary, its own options when the program is TypeScript (a source
 * checkout run through tsx; a bare `--import tsx` resolved to a file, since a unit runs in /), and the real path of
 * the program.
 */
export function daemonCommand(
  execPath: string,
  execArgv: readonly string[],
  script: string,
  resolveImport: (specifier: string) => string = (s) => import.meta.resolve(s),
): string[] {
  const real = realpathSync(script);
  if (!real.endsWith('.ts')) return [execPath, real];
  const args = execArgv.map((a, i) =>
    execArgv[i - 1] === '--import' && !/^(\.|\/|file:)/.test(a) ? resolveImport(a) : a,
  );
  return [execPath, ...args, real];
}

const HOME_DIRS = ['/home/', '/root/', '/run/user/'];
const underHome = (p: string) => HOME_DIRS.some((h) => p.startsWith(h));

export interface UnitInputs {
  /** The daemon's command, without `--config` (daemonCommand()). */
  readonly command: readonly string[];
  readonly configPath: string;
  /** The package root, for Documentation=. */
  readonly root: string;
  /** The config, when it exists and loads: its listen address/port and state_dir go into the units. */
  readonly config?: Pick<Config, 'listen' | 'stateDir'>;
}

/** The units' text for these inputs, from the shipped templates. */
export function renderUnits(templates: Readonly<Record<string, string>>, u: UnitInputs): Record<string, string> {
  const line = (text: string, key: string, value: string) =>
    text.replace(new RegExp(`^${key}=.*$`, 'm'), () => `${key}=${value}`);
  let service = templates['spa-knockd.service'] ?? '';
  let socket = templates['spa-knockd.socket'] ?? '';
  const exec = [...u.command, '--config', u.configPath].map(quoteExecArg).join(' ');
  service = line(service, 'ExecStart', exec);
  const docs = `file:${join(u.root, 'docs', 'systemd.md')}`;
  service = service.replace(SHIPPED_DOCS, docs);
  socket = socket.replace(SHIPPED_DOCS, docs);
  if ([...u.command, u.configPath].some(underHome)) service = line(service, 'ProtectHome', 'read-only');
  if (u.config) {
    const { address, port } = u.config.listen;
    socket = line(socket, 'ListenDatagram', address === '::' ? String(port) : hostPort(address, port));
    if (address !== '::') socket = socket.replace(/^BindIPv6Only=.*\n/m, '');
    if (resolve(u.config.stateDir) !== UNIT_STATE_DIR)
      service = service.replace(
        /^(StateDirectoryMode=.*)$/m,
        (m) => `${m}\nReadWritePaths=${quoteExecArg(u.config?.stateDir ?? '')}`,
      );
  }
  return { 'spa-knockd.service': service, 'spa-knockd.socket': socket };
}

export interface InstallOptions {
  readonly unitDir: string;
  readonly configPath: string;
  readonly dryRun: boolean;
  readonly force: boolean;
  readonly command: readonly string[];
  readonly root?: string;
  readonly out: (text: string) => void;
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode, flag: 'wx' });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    throw new SpaError('ERR_SPA_INSTALL', `cannot write ${path}: ${errnoText(e)}`);
  }
}

function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SpaError('ERR_SPA_INSTALL', `cannot read ${path}: ${errnoText(e)}`);
  }
}

export function installSystemd(o: InstallOptions): void {
  if (!isAbsolute(o.configPath))
    throw new SpaError('ERR_SPA_INSTALL', `--config must be an absolute path for a unit, not ${o.configPath}`);
  const root = o.root ?? packageRoot();
  const templates = Object.fromEntries(
    UNIT_NAMES.map((n) => [n, readFileSync(join(root, 'systemd', n), 'utf8')] as const),
  );
  const haveConfig = existsSync(o.configPath);
  let config: Config | undefined;
  let configNote: string | undefined;
  if (haveConfig) {
    try {
      config = loadConfig(o.configPath);
    } catch (e) {
      configNote = `the config does not load yet (${String((e as Error).message).split('\n')[0]}): the units use the defaults`;
    }
  }
  const units = renderUnits(templates, {
    command: o.command,
    configPath: o.configPath,
    root,
    ...(config ? { config } : {}),
  });

  // decide everything before writing anything: a refused unit leaves no half-done install
  const plan = UNIT_NAMES.map((name) => {
    const path = join(o.unitDir, name);
    const text = units[name] ?? '';
    const old = readIfThere(path);
    const action = old === undefined ? 'write' : old === text ? 'unchanged' : o.force ? 'replace' : 'differs';
    return { name, path, text, action };
  });
  const differs = plan.filter((p) => p.action === 'differs');
  if (differs.length > 0 && !o.dryRun)
    throw new SpaError(
      'ERR_SPA_INSTALL',
      `${differs.map((p) => p.path).join(' and ')} exist${differs.length === 1 ? 's' : ''} with other contents; compare them (--dry-run prints the new ones) and use --force to replace`,
    );

  const etc = dirname(o.configPath);
  const say: string[] = [];
  if (o.dryRun) {
    const what = {
      write: 'would write',
      replace: 'would replace',
      unchanged: 'unchanged',
      differs: 'differs: refused without --force',
    };
    for (const p of plan) o.out(`# ${p.path} (${what[p.action as keyof typeof what]})\n${p.text}\n`);
    if (!existsSync(etc)) say.push(`would create ${etc} (mode 0700)`);
  } else {
    try {
      mkdirSync(o.unitDir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new SpaError('ERR_SPA_INSTALL', `cannot create ${o.unitDir}: ${errnoText(e)}`);
    }
    for (const p of plan) {
      if (p.action === 'unchanged') say.push(`unchanged ${p.path}`);
      else {
        writeAtomic(p.path, p.text, 0o644);
        say.push(`${p.action === 'replace' ? 'replaced' : 'wrote'} ${p.path}`);
      }
    }
    if (!existsSync(etc)) {
      try {
        mkdirSync(etc, { recursive: true, mode: 0o700 });
      } catch (e) {
        throw new SpaError('ERR_SPA_INSTALL', `cannot create ${etc}: ${errnoText(e)}`);
      }
      say.push(`created ${etc} (mode 0700)`);
    }
  }
  if (!haveConfig)
    say.push(`no config at ${o.configPath} yet: write it first (README, "Quick start on a real server")`);
  if (configNote) say.push(configNote);
  if (config && resolve(config.stateDir) !== UNIT_STATE_DIR)
    say.push(`state_dir ${config.stateDir} is not ${UNIT_STATE_DIR}: made writable with ReadWritePaths=`);
  o.out(
    [
      ...say,
      'next:',
      '  systemctl daemon-reload',
      '  systemctl enable --now spa-knockd.service    # the daemon binds [listen] itself',
      '  # or socket activation instead (systemd binds the port, starts the daemon on the first knock):',
      '  # systemctl enable --now spa-knockd.socket',
      '  journalctl -u spa-knockd -f                  # its log',
      '',
    ].join('\n'),
  );
}
