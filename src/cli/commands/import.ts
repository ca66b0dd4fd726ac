/** `ebsmount import <image>` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const importCommand: CommandModule = {
  command: 'import <image>',
  describe: false,
  handler: () => {
    throw new UserError('import is not available yet');
  },
};
