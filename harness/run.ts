/** Run the project's CLIs as a user would (through tsx, since Node 20 cannot run .ts itself). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const CLIENT = ROOT + 'client/cli.ts';
export const DAEMON = ROOT + 'server/main.ts';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `prefix` runs the command through another one first, e.g. ['ip', 'netns', 'exec', 'ns'] (`pair.wrap(ns)`). */
export function runTs(
  script: string,
  args: readonly string[],
  opts: {
    prefix?: readonly string[];
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    /** Each chunk of stderr as it comes (the whole of it is in the result too). */
    onStderr?: (chunk: string) => void;
  } = {},
): Promise<RunResult> {
  const argv = [...(opts.prefix ?? []), process.execPath, '--import', 'tsx', script, ...args];
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0] as string, argv.slice(1), {
      cwd: ROOT,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(d.toString());
    });
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
