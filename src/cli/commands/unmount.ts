/** `ebsmount unmount <mountpoint>` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const unmountCommand: CommandModule = {
  command: 'unmount <mountpoint>',
  describe: false,
  handler: () => {
    throw new UserError('unmount is not available yet');
  },
};
