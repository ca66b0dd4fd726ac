/** `ebsmount serve` — not built yet (placeholder owned by the issue that builds it). */
import type { CommandModule } from 'yargs';
import { UserError } from '../user-error.js';

export const serveCommand: CommandModule = {
  command: 'serve',
  describe: false,
  handler: () => {
    throw new UserError('serve is not available yet');
  },
};
