/**
 * Rotating sequences in the kernel (nftables and iptables backends, in a namespace pair): the plan of the current
 * time step installed as the daemon installs it, then `spa-knock HOST --key FILE --sequence auto` opens it, the
 * previous step's sequence still opens, the one from two steps ago does not; `spa-knock sequence` prints the current
 * one. Run: node --import tsx --test test/e2e/classic-rotating.test.ts (as root).
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeKeyFile } from '../../shared/keyfile.js';
import { formatStep } from '../../shared/knock-steps.js';
import { ROTATING_STEP_S, rotatingCounter, rotatingSteps } from '../../shared/rotating.js';
import { loadConfig } from '../../server/config-file.js';
import { planOf } from '../../server/daemon.js';
import type { FirewallBackend } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { configText, keyOf } from '../../harness/config.js';
import { type Agent, type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, runTs } from '../../harness/run.js';

const SSH = 2222;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rotatingSuite(backend: 'nftables' | 'iptables', tag: string, subnet: number): void {
  const skip = netnsSkip([...BACKEND_TOOLS[backend], 'knock']);
  describe(`rotating sequences (${backend})`, { skip }, () => {
    let pair: NetnsPair;
    let cli: Agent;
    let dir: string;
    let keyFile: string;
    let fw: FirewallBackend;
    let counter: number;

    const open = async (): Promise<boolean> => (await cli.tcpConnect(pair.srv4, SSH, 300)).ok;
    const knockSteps = async (k: number): Promise<void> => {
      const ports = rotatingSteps(keyOf(21), k).map(formatStep);
      const r = await pair.exec(pair.cli, ['knock', pair.srv4, ...ports]);
      assert.equal(r.code, 0, r.stderr);
    };

    before(async () => {
      // stay clear of a time step boundary for the whole suite (the rotator is not running here)
      const into = Date.now() % (ROTATING_STEP_S * 1000);
      if (into > 15_000) await sleep(ROTATING_STEP_S * 1000 - into + 100);
      dir = mkdtempSync(join(tmpdir(), 'spak-rot-e2e-'));
      keyFile = join(dir, 'door.key');
      writeKeyFile(keyFile, keyOf(21));
      const path = join(dir, 'spa-knockd.toml');
      const seq = `\n[[sequence]]\nname = "door"\nrotating = true\nkey_file = "door.key"\nopen = ["tcp/${SSH}"]\n`;
      const clients = [{ name: 'alice', key: keyOf(22), open: [`tcp/${SSH}`] }];
      writeFileSync(path, configText({ backend, protect: [`tcp/${SSH}`], clients, extra: seq }), { mode: 0o600 });
      const config = loadConfig(path);
      pair = await createPair(tag, { subnet });
      await (await pair.agent(pair.srv)).listenTcp(SSH);
      cli = await pair.agent(pair.cli);
      fw =
        backend === 'nftables'
          ? new NftablesBackend({ wrap: pair.wrap(pair.srv) })
          : new IptablesBackend({ wrap: pair.wrap(pair.srv) });
      const now = Date.now();
      counter = rotatingCounter(now);
      await fw.install(planOf(config, now), now);
    });
    after(async () => {
      await fw?.close();
      await pair?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(async () => {
      const r =
        backend === 'nftables'
          ? await pair.exec(pair.srv, ['nft', 'flush', 'set', 'inet', 'spa_knock', 'allow4'])
          : await pair.exec(pair.srv, ['tee', `/proc/net/xt_recent/SPA_KNOCK_door_${counter % 2}_open`], {
              input: '/\n',
            });
      assert.equal(r.code, 0, r.stderr);
      if (backend === 'iptables') {
        const p = await pair.exec(pair.srv, ['tee', `/proc/net/xt_recent/SPA_KNOCK_door_${(counter - 1) % 2}_open`], {
          input: '/\n',
        });
        assert.equal(p.code, 0, p.stderr);
      }
    });

    test('spa-knock sequence prints the current one; --sequence auto opens', async () => {
      const printed = await runTs(CLIENT, ['sequence', '--key', keyFile]);
      assert.equal(printed.code, 0, printed.stderr);
      assert.equal(printed.stdout.trim(), rotatingSteps(keyOf(21), counter).map(formatStep).join(','));
      assert.equal(await open(), false);
      const r = await runTs(CLIENT, [pair.srv4, '--key', keyFile, '--sequence', 'auto'], {
        prefix: pair.wrap(pair.cli),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await open(), true);
    });

    test('the previous step still opens', async () => {
      await knockSteps(counter - 1);
      assert.equal(await open(), true);
    });

    test('the one from two steps ago does not; nor the next one', async () => {
      await knockSteps(counter - 2);
      await knockSteps(counter + 1);
      assert.equal(await open(), false);
    });
  });
}

rotatingSuite('nftables', 'rot-nft', 68);
rotatingSuite('iptables', 'rot-ipt', 69);
