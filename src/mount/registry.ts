/**
 * Registry of live mounts: one JSON file per mount daemon in the registry dir (paths.ts),
 * `<pid>.json`, next to its control socket `<pid>.sock`.
 *
 * Contract: `register` writes the entry atomically (temp file + rename) once the mount is live;
 * `unregister` removes the entry and the socket (missing files are fine). `list` returns every
 * parseable entry with `alive` = the pid still runs; `removeStale` deletes the entries of dead
 * pids. Entries hold no secrets. The directory is created 0700.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registryDir } from './paths.js';

export interface RegistryEntry {
  pid: number;
  snapshotId: string;
  mountpoint: string;
  socket: string;
  log: string | null;
  writable: boolean;
  startedAt: string;
}

export interface ListedEntry extends RegistryEntry {
  alive: boolean;
  file: string;
}

export class MountRegistry {
  constructor(readonly dir: string = registryDir()) {}

  socketPath(pid: number = process.pid): string {
    return join(this.dir, `${pid}.sock`);
  }

  entryPath(pid: number = process.pid): string {
    return join(this.dir, `${pid}.json`);
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async register(entry: RegistryEntry): Promise<void> {
    await this.ensureDir();
    const file = this.entryPath(entry.pid);
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(entry, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, file);
  }

  async unregister(pid: number = process.pid): Promise<void> {
    await rm(this.entryPath(pid), { force: true });
    await rm(this.socketPath(pid), { force: true });
  }

  async list(): Promise<ListedEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: ListedEntry[] = [];
    for (const name of names.filter((n) => /^\d+\.json$/.test(n)).sort()) {
      const file = join(this.dir, name);
      try {
        const e = JSON.parse(await readFile(file, 'utf8')) as RegistryEntry;
        if (typeof e.pid !== 'number' || typeof e.mountpoint !== 'string') continue;
        out.push({ ...e, alive: pidAlive(e.pid), file });
      } catch {
        // half-written or foreign file: skip
      }
    }
    return out;
  }

  async findByMountpoint(mountpoint: string): Promise<ListedEntry | undefined> {
    return (await this.list()).find((e) => e.mountpoint === mountpoint);
  }

  async removeStale(): Promise<ListedEntry[]> {
    const stale = (await this.list()).filter((e) => !e.alive);
    for (const e of stale) await this.unregister(e.pid);
    return stale;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
