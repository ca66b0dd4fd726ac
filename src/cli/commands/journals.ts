/** `ebsmount journals` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const journalsCommand: CommandModule = {
  command: 'journals',
  describe: false,
  handler: () => {
    throw new UserError('journals is not available yet');
  },
};
