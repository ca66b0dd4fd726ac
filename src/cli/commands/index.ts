/** Every CLI command, in the order `--help` lists them. `mount` is the default command. */
import type { CommandModule } from 'yargs';
import { mountCommand } from './mount.js';
import { unmountCommand } from './unmount.js';
import { statusCommand } from './status.js';
import { importCommand } from './import.js';
import { exportCommand } from './export.js';
import { serveCommand } from './serve.js';
import { commitCommand } from './commit.js';
import { journalsCommand } from './journals.js';
import { inspectCommand } from './inspect.js';
import { browseCommand } from './browse.js';
import { diffCommand } from './diff.js';

export const commands: CommandModule<any, any>[] = [
  mountCommand, unmountCommand, statusCommand, inspectCommand, browseCommand, importCommand, exportCommand, serveCommand,
  commitCommand, journalsCommand, diffCommand,
];
