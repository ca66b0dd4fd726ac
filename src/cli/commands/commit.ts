/** `ebsmount commit` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const commitCommand: CommandModule = {
  command: 'commit',
  describe: false,
  handler: () => {
    throw new UserError('commit is not available yet');
  },
};
