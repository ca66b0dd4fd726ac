/** `ebsmount export <snapshot> <file>` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const exportCommand: CommandModule = {
  command: 'export <snapshot> <file>',
  describe: false,
  handler: () => {
    throw new UserError('export is not available yet');
  },
};
