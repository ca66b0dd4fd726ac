/**
 * runStatus: what `ebsmount status [MOUNTPOINT] [--json]` does: asks every live daemon in the
 * registry (or the one at MOUNTPOINT) for its status over its control socket and prints a table
 * per mount, or with --json a JSON array of statusJson() objects (one object when MOUNTPOINT is
 * given). Entries whose daemon is gone
 * are removed from the registry and not shown.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../errors/user-error.js';
import { controlRequest } from './control-client.js';
import type { MountStatus } from './control-protocol.js';
import { MountRegistry } from './registry.js';
import { formatStatusTable, statusJson } from './status-format.js';

export interface StatusArgv {
  mountpoint?: string;
  json?: boolean;
}

export async function collectStatus(registry: MountRegistry, mountpoint?: string): Promise<MountStatus[]> {
  const want = mountpoint ? canonical(mountpoint) : undefined;
  const out: MountStatus[] = [];
  for (const e of await registry.list()) {
    if (want && e.mountpoint !== want) continue;
    if (!e.alive) {
      await registry.unregister(e.key);
      continue;
    }
    try {
      const r = await controlRequest(e.socket, { op: 'status' }, { timeoutMs: 5_000 });
      if (r.ok && r.status) out.push(r.status);
    } catch {
      // a daemon that is shutting down or unresponsive is skipped
    }
  }
  return out;
}

export async function runStatus(argv: StatusArgv, registry = new MountRegistry()): Promise<void> {
  const list = await collectStatus(registry, argv.mountpoint);
  if (argv.mountpoint && list.length === 0) throw new UserError(`no ebsmount mount at ${argv.mountpoint}`);
  if (argv.json) {
    // One mount asked for: its object; otherwise an array of all of them.
    const doc = argv.mountpoint ? statusJson(list[0]) : list.map(statusJson);
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
    return;
  }
  if (list.length === 0) {
    process.stdout.write('no ebsmount mounts\n');
    return;
  }
  process.stdout.write(list.map(formatStatusTable).join('\n\n') + '\n');
}

function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}
