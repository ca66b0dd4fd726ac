/** `ebsmount [mount] <snapshot> <mountpoint>` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const mountCommand: CommandModule = {
  command: '[mount] <snapshot> <mountpoint>',
  describe: false,
  handler: () => {
    throw new UserError('mount is not available yet');
  },
};
