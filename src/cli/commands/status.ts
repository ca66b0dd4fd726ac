/** `ebsmount status [mountpoint]` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const statusCommand: CommandModule = {
  command: 'status [mountpoint]',
  describe: false,
  handler: () => {
    throw new UserError('status is not available yet');
  },
};
