/**
 * requireNetns / netnsSkip (harness/netns.ts): a namespace suite whose prerequisite is missing is a FAILING test that
 * names what is missing and the command that installs it, never a silent skip.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { missingPrerequisites } from '../../harness/prerequisites.js';
import { ROOT, runTs } from '../../harness/run.js';

const FIXTURE = `${ROOT}test/e2e/fixtures/missing-tool.ts`;
/** The fixture runs its tests as a plain process: not as a child of this test runner. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));

test('missingPrerequisites names each missing tool and the package command', () => {
  const m = missingPrerequisites(['nft', 'spak-no-such-tool']);
  assert.ok(m);
  assert.match(m.what, /spak-no-such-tool not found/);
  assert.match(m.fix, /apt-get install -y spak-no-such-tool/);
  assert.doesNotMatch(m.what, /\bnft not found/, 'nft is installed on the test machine');
});

for (const which of ['require', 'skip']) {
  test(`a missing tool makes the suite fail (${which === 'require' ? 'requireNetns' : 'netnsSkip'}), with the fix`, async () => {
    const r = await runTs(FIXTURE, [which], { env });
    assert.equal(r.code, 1, `exit code ${r.code}: ${r.stdout}${r.stderr}`);
    assert.match(
      r.stdout,
      /netns tests cannot run: spak-no-such-tool not found \(fix: apt-get install -y spak-no-such-tool\)/,
    );
    assert.match(r.stdout, /# fail 1/);
  });
}

test('with everything there nothing is registered', async () => {
  const r = await runTs(FIXTURE, ['present'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /requireNetns: true/);
  assert.doesNotMatch(r.stdout, /# tests [1-9]/);
});
