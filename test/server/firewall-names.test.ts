/** server/firewall/names.ts: which table/chain names each backend can own. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NFT_KEYWORDS, tableNameProblem } from '../../server/firewall/names.js';

describe('table names', () => {
  test('nft keywords are refused: the 12 plurals that install and then cannot be listed, and the ones measured as syntax errors', () => {
    const plurals = [
      'counters',
      'sets',
      'maps',
      'tables',
      'chains',
      'quotas',
      'limits',
      'meters',
      'flowtables',
      'secmarks',
      'synproxys',
      'hooks',
    ];
    const measured =
      'bridge chains comment continue counters create delete describe dnat drop exists expires flow flowtables flush goto handle hour ibriport ibrname icmpv6 iifgroup iifname iiftype inet insert jhash jump limits maps masquerade meter meters missing netdev nftrace notrack obriport obrname oifgroup oifname oiftype priority quotas rename replace return rtclassid rule ruleset secmarks sets skgid snat symhash typeof vmap'.split(
        ' ',
      );
    for (const w of [...plurals, ...measured]) {
      assert.ok(NFT_KEYWORDS.has(w), w);
      assert.match(tableNameProblem('nftables', w) ?? '', /is an nft keyword/, w);
    }
  });

  test('ordinary names pass; shapes nft or iptables cannot take are refused', () => {
    for (const ok of ['spa_knock', 'spa_knock_2', 'filter', 'gate'])
      assert.equal(tableNameProblem('nftables', ok), undefined, ok);
    for (const bad of ['Upper', '1abc', 'a-b', 'bad name; flush ruleset', '', 'a'.repeat(29)])
      assert.ok(tableNameProblem('nftables', bad), bad);
    assert.equal(tableNameProblem('iptables', 'SPA_KNOCK'), undefined);
    assert.equal(tableNameProblem('iptables', `A${'b'.repeat(23)}`), undefined, '24 characters leave room for _OUT');
    assert.match(tableNameProblem('iptables', `A${'b'.repeat(24)}`) ?? '', /up to 23/);
    assert.match(tableNameProblem('iptables', 'input') ?? '', /built-in/);
    assert.ok(tableNameProblem('iptables', 'A B'));
  });
});
