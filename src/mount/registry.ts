/**
 * Registry of live mounts: one JSON file per mount in the registry dir (paths.ts), `<key>.json`,
 * next to its control socket `<key>.sock`. The key is the daemon's pid (one mount per daemon
 * process); in-process tests that run several mounts give each its own key.
 *
 * Contract: `register` writes the entry atomically (temp file + rename) once the mount is live;
 * `unregister(key)` removes the entry and the socket (missing files are fine). `list` returns every
 * parseable entry with `alive` = the pid still runs; `removeStale` deletes the entries of dead
 * pids. Entries hold no secrets. The directory is created 0700.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { processIsAlive } from '../util/process.js';
import { join } from 'node:path';
import { registryDir } from './paths.js';

export interface RegistryEntry {
  key: string;
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

  socketPath(key: string = String(process.pid)): string {
    return join(this.dir, `${key}.sock`);
  }

  entryPath(key: string = String(process.pid)): string {
    return join(this.dir, `${key}.json`);
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async register(entry: RegistryEntry): Promise<void> {
    await this.ensureDir();
    const file = this.entryPath(entry.key);
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(entry, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, file);
  }

  async unregister(key: string = String(process.pid)): Promise<void> {
    await rm(this.entryPath(key), { force: true });
    await rm(this.socketPath(key), { force: true });
  }

  async list(): Promise<ListedEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: ListedEntry[] = [];
    for (const name of names.filter((n) => /^[\w.-]+\.json$/.test(n)).sort()) {
      const file = join(this.dir, name);
      try {
        const e = JSON.parse(await readFile(file, 'utf8')) as RegistryEntry;
        if (typeof e.pid !== 'number' || typeof e.mountpoint !== 'string') continue;
        out.push({ ...e, key: e.key ?? name.slice(0, -'.json'.length), alive: processIsAlive(e.pid), file });
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
    for (const e of stale) await this.unregister(e.key);
    return stale;
  }
}

