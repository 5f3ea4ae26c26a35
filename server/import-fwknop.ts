/**
 * `spa-knockd import-fwknop --access-conf FILE`: turn fwknopd `access.conf` stanzas into spa-knockd config text
 * (docs/fwknop.md "Migrating"), and say what could not be carried over. Pure: text in, text and notes out.
 *
 * Carried over: SOURCE (→ sources), OPEN_PORTS (→ open, and firewall.protect), KEY / KEY_BASE64 (→ key_base64:
 * a passphrase is its own bytes), HMAC_KEY / HMAC_KEY_BASE64 (→ hmac_key_base64), HMAC_DIGEST_TYPE (→ hmac_digest),
 * FW_ACCESS_TIMEOUT (→ grant.duration when every stanza agrees), MAX_FW_TIMEOUT (→ max_duration),
 * REQUIRE_SOURCE_ADDRESS (→ require_source_address). A stanza spa-knockd cannot honour (no OPEN_PORTS, no HMAC key,
 * another ENCRYPTION_MODE, GPG only) is left out whole, with the reason; everything else unknown is named.
 * @module
 */
import { readFileSync, statSync } from 'node:fs';
import { formatAccess, parseAccess } from '../shared/access.js';
import { parseCidr } from '../shared/address.js';
import { SpaError, errnoText } from '../shared/errors.js';
import { parseDigest, parseEncKey, parseHmacKey } from '../shared/fwknop/keys.js';
import { writeSecretFile } from '../shared/keyfile.js';

export interface ImportResult {
  /** spa-knockd config text (TOML); holds keys: write it 0600. */
  readonly config: string;
  /** What could not be carried over, one line each. */
  readonly notes: readonly string[];
  readonly clients: number;
}

interface Stanza {
  readonly line: number;
  readonly vars: Map<string, { value: string; line: number }>;
}

/** Variables that only tune what spa-knockd does its own way; named in the notes when present. */
const NOT_CARRIED: Readonly<Record<string, string>> = {
  DESTINATION: 'spa-knockd grants on every local address',
  RESTRICT_PORTS: 'spa-knockd opens only what `open` lists',
  REQUIRE_USERNAME: 'the fwknop user name is not checked',
  ACCESS_EXPIRE: 'clients do not expire; remove the client by hand',
  ACCESS_EXPIRE_EPOCH: 'clients do not expire; remove the client by hand',
  FORCE_NAT: 'no NAT (NAT requests are refused: fwknop-nat)',
  FORCE_SNAT: 'no NAT',
  FORCE_MASQUERADE: 'no NAT',
  FORWARD_ALL: 'no NAT',
  DISABLE_DNAT: 'no NAT',
  ENABLE_CMD_EXEC: 'commands are never run (command requests are refused: fwknop-command)',
  ENABLE_CMD_SUDO_EXEC: 'commands are never run',
  CMD_EXEC_USER: 'commands are never run',
  CMD_EXEC_GROUP: 'commands are never run',
  CMD_SUDO_EXEC_USER: 'commands are never run',
  CMD_SUDO_EXEC_GROUP: 'commands are never run',
  CMD_CYCLE_OPEN: 'spa-knockd opens with its own nftables/iptables backend',
  CMD_CYCLE_CLOSE: 'spa-knockd closes with its own nftables/iptables backend',
  CMD_CYCLE_TIMER: 'spa-knockd closes with its own nftables/iptables backend',
  GPG_DECRYPT_ID: 'no GPG',
  GPG_DECRYPT_PW: 'no GPG',
  GPG_ALLOW_NO_PW: 'no GPG',
  GPG_REQUIRE_SIG: 'no GPG',
  GPG_REMOTE_ID: 'no GPG',
  GPG_FINGERPRINT_ID: 'no GPG',
  GPG_HOME_DIR: 'no GPG',
  GPG_EXE: 'no GPG',
  GPG_IGNORE_SIG_VERIFY_ERROR: 'no GPG',
};
const CARRIED = new Set([
  'SOURCE',
  'OPEN_PORTS',
  'KEY',
  'KEY_BASE64',
  'HMAC_KEY',
  'HMAC_KEY_BASE64',
  'HMAC_DIGEST_TYPE',
  'FW_ACCESS_TIMEOUT',
  'MAX_FW_TIMEOUT',
  'REQUIRE_SOURCE_ADDRESS',
  'ENCRYPTION_MODE',
]);

function stanzasOf(text: string, notes: string[]): Stanza[] {
  const out: Stanza[] = [];
  let cur: Stanza | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('%include')) {
      notes.push(`line ${i + 1}: ${line.split(/\s+/)[0]} not followed: import each included file on its own`);
      return;
    }
    const m = /^([A-Z0-9_]+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) {
      notes.push(`line ${i + 1}: not a "NAME value" line, ignored`);
      return;
    }
    if (m[1] === 'SOURCE') {
      cur = { line: i + 1, vars: new Map() };
      out.push(cur);
    }
    if (!cur) {
      notes.push(`line ${i + 1}: ${m[1]} before the first SOURCE, ignored`);
      return;
    }
    cur.vars.set(m[1], { value: m[2].trim(), line: i + 1 });
  });
  return out;
}

const yes = (v: string | undefined) => v !== undefined && /^(y|yes)$/i.test(v);
const q = (s: string) => JSON.stringify(s);

export function importAccessConf(text: string): ImportResult {
  const notes: string[] = [];
  const tables: string[] = [];
  const protect = new Map<string, string>();
  const timeouts = new Set<number>();
  let maxTimeout = 300;
  for (const [n, st] of stanzasOf(text, notes).entries()) {
    const where = `stanza ${n + 1} (line ${st.line})`;
    const get = (k: string) => st.vars.get(k)?.value;
    const skip = (why: string) => notes.push(`${where}: left out: ${why}`);
    for (const k of st.vars.keys()) {
      if (CARRIED.has(k)) continue;
      const why = NOT_CARRIED[k];
      notes.push(`${where}: ${k} not carried over${why ? `: ${why}` : ' (unknown to import-fwknop)'}`);
    }
    const mode = get('ENCRYPTION_MODE');
    if (mode !== undefined && mode.toUpperCase() !== 'CBC') {
      skip(`ENCRYPTION_MODE ${mode}: only CBC (the default) is supported`);
      continue;
    }
    const ports = get('OPEN_PORTS');
    if (ports === undefined) {
      skip('no OPEN_PORTS (fwknopd would allow any port; spa-knockd needs the list)');
      continue;
    }
    const open: string[] = [];
    for (const p of ports.split(/[\s,]+/).filter(Boolean)) {
      const a = parseAccess(p);
      if (!a) {
        skip(`OPEN_PORTS "${p}" is not like tcp/22`);
        break;
      }
      open.push(formatAccess(a));
    }
    if (open.length !== ports.split(/[\s,]+/).filter(Boolean).length) continue;
    const keyB64 =
      get('KEY_BASE64') ?? (get('KEY') !== undefined ? Buffer.from(get('KEY') ?? '').toString('base64') : undefined);
    const hmacB64 =
      get('HMAC_KEY_BASE64') ??
      (get('HMAC_KEY') !== undefined ? Buffer.from(get('HMAC_KEY') ?? '').toString('base64') : undefined);
    if (keyB64 === undefined) {
      skip('no KEY or KEY_BASE64 (GPG-only stanzas are not supported)');
      continue;
    }
    if (hmacB64 === undefined) {
      skip('no HMAC_KEY or HMAC_KEY_BASE64: spa-knockd requires the HMAC (fwknop --key-gen makes both keys)');
      continue;
    }
    const ek = parseEncKey(keyB64);
    const hk = parseHmacKey(hmacB64);
    if (!ek.ok || !hk.ok) {
      skip((ek.ok ? '' : ek.reason) + (hk.ok ? '' : hk.reason));
      continue;
    }
    const dt = get('HMAC_DIGEST_TYPE');
    const digest = dt === undefined ? undefined : parseDigest(dt);
    if (dt !== undefined && digest === undefined) {
      skip(`HMAC_DIGEST_TYPE ${dt} unknown`);
      continue;
    }
    const sources: string[] = [];
    const src = get('SOURCE') ?? 'ANY';
    if (!/^any$/i.test(src)) {
      for (const s of src.split(/[\s,]+/).filter(Boolean)) {
        const c = parseCidr(s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`);
        if (!c.ok) notes.push(`${where}: SOURCE "${s}" left out: ${c.reason}`);
        else sources.push(s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`);
      }
      if (sources.length === 0) {
        skip('no usable SOURCE');
        continue;
      }
    }
    const fat = get('FW_ACCESS_TIMEOUT');
    timeouts.add(fat !== undefined && /^\d+$/.test(fat) ? Number(fat) : 30);
    const mft = get('MAX_FW_TIMEOUT');
    if (mft !== undefined && /^\d+$/.test(mft)) maxTimeout = Math.max(maxTimeout, Math.min(Number(mft), 65535));
    for (const o of open) protect.set(o, o);
    tables.push(
      [
        '[[client]]',
        `name = ${q(`fwknop-${n + 1}`)}`,
        'format = "fwknop"',
        `key_base64 = ${q(keyB64)}`,
        `hmac_key_base64 = ${q(hmacB64)}`,
        ...(digest && digest !== 'sha256' ? [`hmac_digest = ${q(digest)}`] : []),
        `open = [${open.map(q).join(', ')}]`,
        ...(sources.length ? [`sources = [${sources.map(q).join(', ')}]`] : []),
        ...(mft !== undefined && /^\d+$/.test(mft) && Number(mft) >= 1
          ? [`max_duration = ${Math.min(Number(mft), 65535)}`]
          : []),
        ...(yes(get('REQUIRE_SOURCE_ADDRESS')) ? ['require_source_address = true'] : []),
        '',
      ].join('\n'),
    );
  }
  let duration = 30;
  if (timeouts.size === 1) duration = Math.min(Math.max([...timeouts][0] ?? 30, 1), 65535);
  else if (timeouts.size > 1)
    notes.push(
      `FW_ACCESS_TIMEOUT differs between stanzas (${[...timeouts].join(', ')}): grant.duration is one value; set to the smallest`,
    );
  if (timeouts.size > 1) duration = Math.max(1, Math.min(...timeouts));
  const header = [
    '# spa-knockd config from fwknopd access.conf (spa-knockd import-fwknop). Holds keys: keep it mode 0600.',
    'state_dir = "/var/lib/spa-knockd"',
    '',
    '[listen]',
    'port = 62201 # fwknop clients send to 62201 unless given -p',
    '',
    '[firewall]',
    'backend = "nftables"',
    `protect = [${[...protect.keys()].map(q).join(', ')}]`,
    '',
    '[grant]',
    `duration = ${duration}`,
    `max_duration = ${Math.max(maxTimeout, duration)}`,
    '',
  ].join('\n');
  return { config: `${header}\n${tables.join('\n')}`, notes, clients: tables.length };
}

/** The command: read FILE, print (or write 0600 to `out`) the config, the notes to stderr. */
export function runImportFwknop(path: string, out: string | undefined): void {
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new SpaError('ERR_SPA_CONFIG', `cannot read access.conf ${path}: not a regular file`);
    if (st.size > 1024 * 1024) throw new SpaError('ERR_SPA_CONFIG', `cannot read access.conf ${path}: too large`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof SpaError) throw e;
    throw new SpaError('ERR_SPA_CONFIG', `cannot read access.conf ${path}: ${errnoText(e)}`);
  }
  const r = importAccessConf(text);
  for (const n of r.notes) process.stderr.write(`import-fwknop: ${path}: ${n}\n`);
  if (r.clients === 0)
    throw new SpaError('ERR_SPA_CONFIG', `access.conf ${path}: no stanza could be carried over (see the notes above)`);
  if (out === undefined) process.stdout.write(r.config);
  else {
    writeSecretFile(out, r.config);
    process.stderr.write(
      `import-fwknop: wrote ${r.clients} client(s) to ${out} (mode 0600); check it with: spa-knockd check --config ${out}\n`,
    );
  }
}
