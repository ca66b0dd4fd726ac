/**
 * `mount.ebsmount SNAPSHOT_ID MOUNTPOINT [-o OPTIONS]`: the mount(8) helper, so an /etc/fstab line
 * `snap-0123 /mnt/x fuse.ebsmount ro,cache-size=1G,_netdev 0 0` and `mount /mnt/x` work (mount(8)
 * runs /sbin/mount.fuse.ebsmount: a symlink to this package's bin/mount.ebsmount). Options are
 * mapped by src/mount/fstab-options.ts; then `ebsmount mount` runs (a background daemon) and its
 * exit code is ours. `-f` (fake) only prints the command.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FstabOptionError, fstabToMountArgs, parseHelperArgv } from '../mount/fstab-options.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

function helper(argv: string[]): number {
  let args: string[];
  let fake = false;
  try {
    const h = parseHelperArgv(argv);
    fake = h.fake;
    args = ['mount', h.spec, h.dir, ...fstabToMountArgs(h.options, { sloppy: h.sloppy })];
  } catch (err) {
    if (err instanceof FstabOptionError) {
      process.stderr.write(`mount.ebsmount: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (fake) {
    process.stdout.write(`ebsmount ${args.join(' ')}\n`);
    return 0;
  }
  const r = spawnSync(process.execPath, [MAIN, ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

process.exitCode = helper(process.argv.slice(2));
