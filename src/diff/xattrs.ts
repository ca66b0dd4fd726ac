/**
 * Extended attributes of many files at once, through `getfattr -h -d -m - -e hex` (Debian's
 * `attr`): Node has no xattr API. Every namespace the caller may read is included (user.*,
 * security.*, trusted.* as root, system.posix_acl_* — ACLs are xattrs), symlinks themselves
 * (-h), values in hex so binary values compare exactly.
 *
 * Contract:
 * - `readXattrs(paths)` maps every absolute path that has xattrs to name → hex value; a path
 *   without any is absent. Rejects with code ENOENT when getfattr is not installed (the caller
 *   says once that xattrs were not compared).
 * - `parseGetfattr` is the pure parser: `# file: NAME` blocks, NAME with getfattr's octal escapes
 *   (\\ooo, \\\\) undone.
 */
import { argBatches, runTool } from './run-tool.js';

export type Xattrs = Map<string, string>;

export function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.toString('latin1', i + 1, i + 4))) {
      bytes.push(parseInt(raw.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function parseGetfattr(stdout: string): Map<string, Xattrs> {
  const out = new Map<string, Xattrs>();
  let cur: Xattrs | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = new Map();
      out.set(unescapeGetfattr(line.slice(8)), cur);
    } else if (cur && line.includes('=')) {
      const eq = line.indexOf('=');
      cur.set(line.slice(0, eq), line.slice(eq + 1));
    } else if (cur && line.length > 0 && !line.startsWith('#')) {
      cur.set(line, ''); // an attribute with an empty value is printed without '='
    }
  }
  return out;
}

export async function readXattrs(paths: string[]): Promise<Map<string, Xattrs>> {
  const out = new Map<string, Xattrs>();
  for (const batch of argBatches(paths)) {
    const r = await runTool('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', ...batch]);
    for (const [p, x] of parseGetfattr(r.stdout)) out.set(p, x);
  }
  return out;
}

/** Names whose values differ, were added or removed, sorted. */
export function xattrChanges(a: Xattrs | undefined, b: Xattrs | undefined): string[] {
  const names = new Set([...(a?.keys() ?? []), ...(b?.keys() ?? [])]);
  return [...names].filter((n) => a?.get(n) !== b?.get(n)).sort();
}
