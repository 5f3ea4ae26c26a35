/**
 * Kernel-only classic knocking, no daemon running: the seed's own `iptables.rules` (test/e2e/fixtures), opened by
 * `spa-knock --sequence`; and `spa-knockd rules --format iptables-restore|nft` for the seed's sequence, loaded with
 * iptables-restore + ip6tables-restore (or nft -f), opened by the real `knock` client, IPv6 closed too.
 * Run: node --import tsx --test test/e2e/classic-rules.test.ts (as root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configText, keyOf } from '../../harness/config.js';
import { type Agent, type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { CLIENT, DAEMON, runTs } from '../../harness/run.js';

const SSH = 22;
const WEB = 80;
const CONNECT_MS = 300;
const SEED_SEQUENCE = `
[[sequence]]
name = "seed"
steps = ["8881", "7777", "9991"]
gap = 5
open = ["tcp/22"]
duration = 30
ignore = ["tcp/80", "tcp/443"]
`;

const skip = netnsSkip(['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore', 'nft', 'knock']);

describe('kernel-only classic knocking: the seed ruleset and spa-knockd rules', { skip }, () => {
  let pair: NetnsPair;
  let cli: Agent;
  let dir: string;
  let config: string;

  const srv = async (argv: string[], input?: string): Promise<string> => {
    const r = await pair.exec(pair.srv, argv, input !== undefined ? { input } : {});
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const knock = async (host: string, ports: readonly string[], opts: string[] = []): Promise<void> => {
    const r = await pair.exec(pair.cli, ['knock', ...opts, host, ...ports]);
    assert.equal(r.code, 0, r.stderr);
  };
  const open = async (host: string, port = SSH): Promise<boolean> => (await cli.tcpConnect(host, port, CONNECT_MS)).ok;
  const rules = async (format: string): Promise<string> => {
    const r = await runTs(DAEMON, ['rules', '--config', config, '--format', format]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const clearFirewall = async (): Promise<void> => {
    for (const t of ['iptables', 'ip6tables']) {
      await srv([t, '-w', '-F']);
      await srv([t, '-w', '-X']);
    }
    await srv(['nft', 'flush', 'ruleset']);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spak-rules-'));
    config = join(dir, 'spa-knockd.toml');
    writeFileSync(
      config,
      configText({
        protect: ['tcp/22'],
        clients: [{ name: 'alice', key: keyOf(4), open: ['tcp/22'] }],
        extra: SEED_SEQUENCE,
      }),
      { mode: 0o600 },
    );
    pair = await createPair('classic-rules', { subnet: 67 });
    const agent = await pair.agent(pair.srv);
    await agent.listenTcp(SSH);
    await agent.listenTcp(WEB);
    cli = await pair.agent(pair.cli);
  });
  after(async () => {
    await pair?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the seed's own iptables.rules: spa-knock --sequence opens it; its IPv6 is open without any knock", async () => {
    const seed = readFileSync(new URL('./fixtures/seed-iptables.rules', import.meta.url), 'utf8');
    await srv(['iptables-restore'], seed);
    assert.equal(await open(pair.srv4), false, 'closed before the knock');
    assert.equal(await open(pair.srv6), true, "the seed's ruleset never touches ip6tables (measured)");
    const r = await runTs(CLIENT, [pair.srv4, '--sequence', '8881,7777,9991'], { prefix: pair.wrap(pair.cli) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await open(pair.srv4), true, 'open after spa-knock --sequence');
    await clearFirewall();
  });

  test('spa-knockd rules --format iptables-restore: loads into both families; knock opens; IPv6 closed', async () => {
    const text = await rules('iptables-restore');
    await srv(['iptables-restore'], text);
    await srv(['ip6tables-restore'], text);
    assert.equal(await open(pair.srv4), false);
    assert.equal(await open(pair.srv6), false, 'IPv6 gated too');
    assert.equal(await open(pair.srv4, WEB), true, 'unprotected ports untouched');
    await knock(pair.srv6, ['8881', '8881', '7777', '9991'], ['-6']);
    assert.equal(await open(pair.srv6), true, 'a repeated step does not reset (the seed resets)');
    await knock(pair.srv4, ['8881', '1234', '7777', '9991']);
    assert.equal(await open(pair.srv4), false, 'an interleaved foreign port resets');
    await knock(pair.srv4, ['8881', String(WEB), '7777', '9991']);
    assert.equal(await open(pair.srv4), true, 'ignore = tcp/80');
    await knock(pair.srv4, ['8881', '7777', '9991']);
    assert.equal(await open(pair.srv4), true, 'knocking again while open keeps it open (the seed closes)');
    await clearFirewall();
  });

  test('spa-knockd rules --format nft: loads with nft -f; knock opens, IPv4 and IPv6', async () => {
    await srv(['nft', '-f', '-'], await rules('nft'));
    assert.equal(await open(pair.srv4), false);
    assert.equal(await open(pair.srv6), false);
    await knock(pair.srv4, ['8881', '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
    await knock(pair.srv6, ['8881', '7777', '9991'], ['-6']);
    assert.equal(await open(pair.srv6), true);
    await clearFirewall();
  });

  test('rules: a wrong --format is a usage error naming it', async () => {
    const r = await runTs(DAEMON, ['rules', '--config', config, '--format', 'pf']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--format must be one of nft, iptables-restore/);
  });
});
