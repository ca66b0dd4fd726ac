/**
 * BrowseRecords: what each `ebsmount browse` mounted, on disk, so `ebsmount unmount DIR` can undo
 * it in reverse order — also after the daemon, or browse itself, crashed half-way.
 *
 * Layout: `<registry dir>/browse/<key>.json` (the record, written atomically before and after
 * every step) and `<registry dir>/browse/<key>/` (0700: `fuse/`, where the snapshot is mounted,
 * and `journal/` for --replay's scratch writes). The registry dir is /run/ebsmount for root
 * (src/mount/paths.ts): records vanish with a reboot, as the mounts do.
 *
 * Contract: `save` replaces the record atomically (temp + rename, 0600); `list` skips unreadable
 * files; `findByDir` matches the canonical DIR. Records hold paths and ids only, no secrets.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { registryDir } from '../mount/paths.js';

export interface BrowseTargetRecord {
  label: string;
  partition?: number;
  fileName: string;
  fsType: string;
  fsLabel?: string;
  sizeBytes: number;
  /** Where it is (to be) mounted. */
  mountpoint?: string;
  /** We created the mountpoint directory (removed again on unmount). */
  createdDir?: boolean;
  loop?: string;
  helper?: 'kernel' | 'ntfs-3g';
  type?: string;
  options?: string[];
  mounted: boolean;
  /** Why it is not mounted. */
  reason?: string;
}

export interface BrowseRecord {
  key: string;
  snapshotId: string;
  dir: string;
  runtimeDir: string;
  fuseMountpoint: string;
  daemonPid?: number;
  log: string;
  replay: boolean;
  startedAt: string;
  state: 'starting' | 'mounted';
  notes: string[];
  targets: BrowseTargetRecord[];
}

export class BrowseRecords {
  constructor(readonly root: string = join(registryDir(), 'browse')) {}

  newKey(): string {
    return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  }

  runtimeDirOf(key: string): string {
    return join(this.root, key);
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
  }

  async save(rec: BrowseRecord): Promise<void> {
    await this.ensureDir();
    const file = join(this.root, `${rec.key}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  async remove(key: string): Promise<void> {
    await rm(join(this.root, `${key}.json`), { force: true });
  }

  async list(): Promise<BrowseRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return [];
    }
    const out: BrowseRecord[] = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
      try {
        const r = JSON.parse(await readFile(join(this.root, name), 'utf8')) as BrowseRecord;
        if (typeof r.dir === 'string' && typeof r.key === 'string') out.push(r);
      } catch {
        // half-written or foreign: skip
      }
    }
    return out;
  }

  async findByDir(dir: string): Promise<BrowseRecord | undefined> {
    return (await this.list()).find((r) => r.dir === dir);
  }
}
