/**
 * JSON lines over stdio between a test or bench process and a helper child it starts (the netns agent, the bench's
 * knocker and probes). One request per line `{"id":N,"op":"…",…args}`, one reply per line `{"id":N,"ok":…,…}`; the
 * child announces itself with `{"id":0,"ok":true}` and exits when its stdin closes.
 *
 * The operations are described once, as an op map, and both sides are typechecked against it:
 *
 * ```ts
 * // child.ts
 * export interface Ops { echo: { req: { text: string }; rep: { text: string } } }
 * serveStdio<Ops>({ echo: async ({ text }) => ({ ok: true, text }) });
 * // parent.ts
 * import type { Ops } from './child.js';   // type-only: erased, child.ts is not run here
 * const c = await startRpcChild<Ops>([process.execPath, '--import', 'tsx', CHILD], { name: 'child' });
 * const r = await c.call('echo', { text: 'hi' });   // r.ok, r.error?, r.text?
 * ```
 * @module
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** What every reply carries. */
export interface RpcReply {
  readonly ok: boolean;
  readonly error?: string;
}

/** An op map: op name → its arguments and the fields of a successful reply. */
export type OpMap<O> = { [K in keyof O]: { req: object; rep: object } };

/** A reply as the parent sees it: the child's fields may be missing (a failure, a dead child, a timeout). */
export type RpcResult<R> = Partial<R> & RpcReply;

export type Handlers<O extends OpMap<O>> = { [K in keyof O]: (args: O[K]['req']) => Promise<O[K]['rep'] & RpcReply> };

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Child side: answer requests from stdin with `handlers`, until stdin closes (then exit 0). */
export function serveStdio<O extends OpMap<O>>(handlers: Handlers<O>): void {
  const out = (o: object): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  out({ id: 0, ok: true });
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      let m: { id?: unknown; op?: unknown };
      try {
        m = JSON.parse(line) as { id?: unknown; op?: unknown };
      } catch {
        return;
      }
      const { id, op, ...args } = m;
      if (typeof id !== 'number') return;
      const h = typeof op === 'string' && Object.hasOwn(handlers, op) ? handlers[op as keyof O] : undefined;
      if (!h) {
        out({ id, ok: false, error: `unknown op ${JSON.stringify(op)}` });
        return;
      }
      h(args as O[keyof O]['req']).then(
        (r) => out({ ...r, id }),
        (e: unknown) => out({ id, ok: false, error: errorText(e) }),
      );
    })
    .on('close', () => process.exit(0));
}

export interface RpcChild<O extends OpMap<O>> {
  readonly name: string;
  readonly pid: number | undefined;
  /** Send one request; resolves with the reply, or `{ok: false, error}` if the child died or did not answer in time. */
  call<K extends keyof O & string>(op: K, args: O[K]['req'], timeoutMs?: number): Promise<RpcResult<O[K]['rep']>>;
  /** Close stdin and wait for the child to exit (SIGKILL by PID after `graceMs`). */
  close(graceMs?: number): Promise<void>;
  /** SIGKILL by PID, and wait for the exit. */
  kill(): Promise<void>;
}

export interface RpcChildOptions {
  /** For messages. */
  readonly name: string;
  readonly cwd?: string;
  /** How long to wait for the ready line. Default 15 000 ms. */
  readonly readyTimeoutMs?: number;
  /** Default for call(). Default 30 000 ms. */
  readonly callTimeoutMs?: number;
}

/**
 * Start `argv` (e.g. `ip netns exec NS node --import tsx FILE`: `ip netns exec` execs, so the PID is the helper's)
 * and wait for its ready line. Throws, with the child's stderr, if it does not start.
 */
export async function startRpcChild<O extends OpMap<O>>(
  argv: readonly string[],
  opts: RpcChildOptions,
): Promise<RpcChild<O>> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('startRpcChild: empty command');
  const { name } = opts;
  const child = spawn(cmd, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
  });
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  let alive = true;
  let stderr = '';
  let nextId = 1;
  const waiting = new Map<number, (r: Record<string, unknown>) => void>();
  child.on('error', (e) => {
    stderr += errorText(e);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a reply
    }
    if (typeof msg['id'] !== 'number') return;
    const w = waiting.get(msg['id']);
    waiting.delete(msg['id']);
    w?.(msg);
  });
  child.stdin.on('error', () => undefined);
  child.on('close', (code, signal) => {
    alive = false;
    const why = `${name} exited (${code ?? signal ?? '?'})${stderr.trim() ? `: ${stderr.trim()}` : ''}`;
    for (const w of waiting.values()) w({ ok: false, error: why });
    waiting.clear();
  });
  const wait = (id: number, timeoutMs: number): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(id);
        resolve({ ok: false, error: `${name} did not answer within ${timeoutMs} ms` });
      }, timeoutMs);
      waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  const kill = async (): Promise<void> => {
    if (!alive) return;
    child.kill('SIGKILL');
    await exited;
  };
  const ready = await wait(0, opts.readyTimeoutMs ?? 15_000);
  if (ready['ok'] !== true) {
    await kill();
    throw new Error(`${name} did not start: ${String(ready['error'] ?? '')} ${stderr.trim()}`.trim());
  }
  return {
    name,
    pid: child.pid,
    call: async (op, callArgs, timeoutMs = opts.callTimeoutMs ?? 30_000) => {
      if (!alive) return { ok: false, error: `${name} exited: ${stderr.trim()}` };
      const id = nextId++;
      const reply = wait(id, timeoutMs);
      child.stdin.write(`${JSON.stringify({ ...callArgs, op, id })}\n`);
      const r = await reply;
      // the child answers with the op's reply fields (its handlers are typechecked against the same op map)
      return {
        ...(r as Partial<O[typeof op]['rep']>),
        ok: r['ok'] === true,
        ...(typeof r['error'] === 'string' ? { error: r['error'] } : {}),
      };
    },
    close: async (graceMs = 2000) => {
      if (!alive) return;
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    kill,
  };
}
