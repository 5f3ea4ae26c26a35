/**
 * Start one of the bench's child modules (scripts/bench/*-child.ts) with `node --import tsx FILE`, inside a network
 * namespace through `ip netns exec` when given one (it execs node: the child PID is the helper itself, killed by PID).
 * @module
 */
import { fileURLToPath } from 'node:url';
import { ROOT } from '../../harness/run.js';
import { type OpMap, type RpcChild, startRpcChild } from '../../harness/stdio-rpc.js';

export type ChildFile = 'cold-verify-child.ts' | 'grant-probe-child.ts' | 'knocker-child.ts';

export function startChild<O extends OpMap<O>>(file: ChildFile, ns?: string): Promise<RpcChild<O>> {
  const path = fileURLToPath(new URL(`./${file}`, import.meta.url));
  const node = [process.execPath, '--import', 'tsx', path];
  return startRpcChild<O>(ns ? ['ip', 'netns', 'exec', ns, ...node] : node, {
    name: `${file}${ns ? ` in ${ns}` : ''}`,
    cwd: ROOT,
  });
}
