/**
 * `ebsmount unmount MOUNTPOINT [--discard]`: end a mount through its daemon (committing a
 * writable mount: the new snapshot id is printed on stdout), or undo a browse whose DIR this is
 * (filesystems, loop devices, the snapshot mount). Work: src/mount/run-unmount.ts,
 * src/browse/run-unbrowse.ts.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { unmountBrowseAt } from '../../browse/run-unbrowse.js';
import type { Argv, CommandModule } from 'yargs';
import { runUnmount, type UnmountArgv } from '../../mount/run-unmount.js';

export const unmountCommand: CommandModule<object, UnmountArgv> = {
  command: 'unmount <mountpoint>',
  aliases: ['umount'],
  describe: 'Unmount a mount (a writable one commits its writes as a child snapshot and prints its id) or a browse',
  builder: (y: Argv) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'where the snapshot is mounted' })
      .option('discard', { type: 'boolean', default: false, describe: 'throw away the writes of a writable mount instead of committing them' }) as unknown as Argv<UnmountArgv>,
  handler: async (argv) => {
    if (await unmountBrowseAt(canonical(String(argv.mountpoint)))) return;
    await runUnmount(argv);
  },
};

function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}
