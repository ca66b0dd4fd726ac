/**
 * `ebsmount unmount MOUNTPOINT [--discard]`: end a mount through its daemon (committing a
 * writable mount: the new snapshot id is printed on stdout). Work: src/mount/run-unmount.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { runUnmount, type UnmountArgv } from '../../mount/run-unmount.js';

export const unmountCommand: CommandModule<object, UnmountArgv> = {
  command: 'unmount <mountpoint>',
  aliases: ['umount'],
  describe: 'Unmount (a writable mount commits its writes as a child snapshot and prints its id)',
  builder: (y: Argv) =>
    y
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'where the snapshot is mounted' })
      .option('discard', { type: 'boolean', default: false, describe: 'throw away the writes of a writable mount instead of committing them' }) as unknown as Argv<UnmountArgv>,
  handler: (argv) => runUnmount(argv),
};
