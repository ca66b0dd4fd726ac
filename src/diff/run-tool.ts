/**
 * runTool: runs a helper program (filefrag, getfattr) with arguments, never through a shell, and
 * resolves with its stdout and stderr whatever its exit status (these tools exit non-zero when
 * one file of many fails; the callers parse what they got). Rejects only when the program cannot
 * be started (ENOENT: not installed). `argBatches` splits a long list of paths into batches whose
 * command lines stay well under the kernel's limit.
 */
import { execFile } from 'node:child_process';

export interface ToolResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function runTool(cmd: string, args: string[]): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
    });
  });
}

export function argBatches(items: string[], maxItems = 512, maxChars = 96 * 1024): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let chars = 0;
  for (const it of items) {
    if (cur.length > 0 && (cur.length >= maxItems || chars + it.length + 1 > maxChars)) {
      out.push(cur);
      cur = [];
      chars = 0;
    }
    cur.push(it);
    chars += it.length + 1;
  }
  if (cur.length) out.push(cur);
  return out;
}
