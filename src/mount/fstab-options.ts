/**
 * fstab / mount(8) options of `mount.ebsmount` → `ebsmount mount` flags. Pure.
 *
 * `snap-0123 /mnt/x fuse.ebsmount ro,cache-size=1G,_netdev 0 0` becomes
 * `ebsmount mount snap-0123 /mnt/x --cache-size 1G`.
 * - `ro` is the default; `rw` → --writable. Every value option of `ebsmount mount` is accepted
 *   as `name=value` (cache-size, read-ahead, max-concurrency, request-rate, endpoint, region,
 *   profile, log-file, log-level, description, tag (repeatable), journal-dir,
 *   upload-concurrency, disk-cache, disk-cache-size, base); flags: allow_other / allow-other, discard, no-partitions.
 * - Options that concern mount(8), systemd or the kernel's generic flags are ignored: defaults,
 *   auto, noauto, nofail, user, users, nouser, owner, group, _netdev, dev, nodev, suid, nosuid,
 *   exec, noexec, async, atime, noatime, relatime, x-*, comment=*.
 * - Anything else is an error naming it (or, with `sloppy` (mount -s), ignored).
 */
export const VALUE_OPTIONS = new Set([
  'cache-size',
  'read-ahead',
  'max-concurrency',
  'request-rate',
  'endpoint',
  'region',
  'profile',
  'log-file',
  'log-level',
  'description',
  'tag',
  'journal-dir',
  'upload-concurrency',
  'disk-cache',
  'disk-cache-size',
  'base',
]);

const IGNORED = new Set(['defaults', 'auto', 'noauto', 'nofail', 'user', 'users', 'nouser', 'owner', 'group', '_netdev', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'async', 'atime', 'noatime', 'relatime', 'ro']);

export class FstabOptionError extends Error {
  override readonly name = 'FstabOptionError';
}

/** Splits `a,b=c,d` (no escaping: values with commas are not supported). */
export function splitOptions(s: string): string[] {
  return s.split(',').map((o) => o.trim()).filter(Boolean);
}

export function fstabToMountArgs(options: string[], opts: { sloppy?: boolean } = {}): string[] {
  const args: string[] = [];
  for (const o of options) {
    const eq = o.indexOf('=');
    const name = eq === -1 ? o : o.slice(0, eq);
    const value = eq === -1 ? undefined : o.slice(eq + 1);
    if (IGNORED.has(name) || name.startsWith('x-') || name === 'comment') continue;
    if (name === 'rw') args.push('--writable');
    else if ((name === 'allow_other' || name === 'allow-other') && value === undefined) args.push('--allow-other');
    else if (name === 'discard' && value === undefined) args.push('--discard');
    else if ((name === 'no-partitions' || name === 'nopartitions') && value === undefined) args.push('--no-partitions');
    else if (VALUE_OPTIONS.has(name) && value !== undefined && value !== '') args.push(`--${name}`, value);
    else if (!opts.sloppy) throw new FstabOptionError(`unknown mount option '${o}' (see the fstab section of the README)`);
  }
  return args;
}

export interface HelperArgs {
  spec: string;
  dir: string;
  options: string[];
  sloppy: boolean;
  fake: boolean;
}

/** mount(8)'s helper calling convention: `SPEC DIR [-sfnv] [-o OPTIONS] [-t TYPE]`. */
export function parseHelperArgv(argv: string[]): HelperArgs {
  const positional: string[] = [];
  const options: string[] = [];
  let sloppy = false;
  let fake = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-o') options.push(...splitOptions(argv[++i] ?? ''));
    else if (a.startsWith('-o')) options.push(...splitOptions(a.slice(2)));
    else if (a === '-t') i++;
    else if (/^-[sfnvi]+$/.test(a)) {
      if (a.includes('s')) sloppy = true;
      if (a.includes('f')) fake = true;
    } else if (a.startsWith('-')) throw new FstabOptionError(`unknown argument '${a}'`);
    else positional.push(a);
  }
  if (positional.length !== 2) throw new FstabOptionError('usage: mount.ebsmount SNAPSHOT_ID MOUNTPOINT [-o OPTIONS]');
  return { spec: positional[0]!, dir: positional[1]!, options, sloppy, fake };
}
