/**
 * Checks of what the user typed that yargs itself lets through, run before any command (yargs
 * middleware), and the one-line form of yargs' own usage errors. Every failure is a UserError
 * with exit code 2 (usage) and one line naming the option and what was typed.
 *
 * - A number option given text (`--concurrency abc`, `--port 80x`): yargs turns it into NaN; the
 *   message quotes the text the user typed (found in the raw arguments).
 * - An option that takes one value given twice (`--cache-size 1G --cache-size 2G`): yargs makes
 *   an array that the commands would misread; refused, naming both values. Options meant to be
 *   repeated (`--tag`) are declared `array` and pass.
 * - yargs' messages ("Invalid values:\n  Argument: ...") are folded into one line; a mistyped
 *   command (`ebsmount statsu`) is named as not a command rather than as a missing mountpoint.
 */
import { UserError } from '../errors/user-error.js';

/** The text given for `--name` in the raw arguments (`--name X` or `--name=X`), if any. */
export function rawOptionValue(rawArgs: string[], name: string): string | undefined {
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === '--') break;
    if (a === `--${name}`) return rawArgs[i + 1] ?? '';
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

const isCamelAlias = (key: string) => /[A-Z]/.test(key) && !key.includes('-');

/**
 * Throws a UserError for a NaN number or a repeated single-value option. `arrayOptions`: the
 * options declared as arrays (repeatable) in the running command.
 */
export function checkParsedArgs(argv: Record<string, unknown>, rawArgs: string[], arrayOptions: ReadonlySet<string>): void {
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '$0' || isCamelAlias(key) || key.length === 1) continue;
    if (typeof value === 'number' && Number.isNaN(value)) {
      const raw = rawOptionValue(rawArgs, key);
      throw new UserError(`--${key} must be a number, not '${raw ?? ''}'`, 2);
    }
    // Positionals (a variadic `[more..]`) are arrays too: only options the user typed count.
    if (Array.isArray(value) && !arrayOptions.has(key) && rawOptionValue(rawArgs, key) !== undefined) {
      const shown = value.map((v) => (typeof v === 'number' && Number.isNaN(v) ? '?' : String(v)));
      throw new UserError(`--${key} was given ${value.length} times (${shown.map((v) => `'${v}'`).join(', ')}); give it once`, 2);
    }
  }
}

/**
 * yargs' usage message (possibly several lines) as one line, with where to look. A first word
 * that is neither a command nor a snapshot id (the default command takes one) is named as such.
 */
export function usageMessage(msg: string, rawArgs: string[] = [], commandNames: string[] = []): string {
  const first = rawArgs.find((a) => !a.startsWith('-'));
  if (first === undefined && /^Not enough non-option arguments: got 0/.test(msg)) {
    return "give a command, or a snapshot id and a mountpoint (see 'ebsmount --help')";
  }
  if (first !== undefined && /^Not enough non-option arguments/.test(msg) && rawArgs[0] === first
    && !commandNames.includes(first) && !first.startsWith('snap-')) {
    return `'${first}' is not a command (${[...new Set(commandNames)].join(', ')}) nor a snapshot id (see 'ebsmount --help')`;
  }
  const oneLine = msg.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  return `${oneLine} (see 'ebsmount --help')`;
}
