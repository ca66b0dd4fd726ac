/**
 * UserError: a failure the user caused or can fix (bad id, missing mountpoint, no credentials...).
 * The CLI prints its message as one line, `ebsmount: <message>`, and exits with `exitCode`.
 * Anything else that escapes a command is a bug and is printed with its stack.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(message: string, readonly exitCode = 1, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}
