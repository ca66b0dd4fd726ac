/**
 * /proc/self/mountinfo: parse it and answer "is this path a mountpoint, and of what".
 *
 * Contract: `parseMountinfo` turns the text into entries with unescaped paths (the kernel writes
 * space, tab, newline and backslash as \040 \011 \012 \134); `findMount(path)` returns the
 * topmost (last listed) entry whose mountpoint equals `path` exactly (callers pass a realpath),
 * or undefined. Reading is async (never block the event loop of a FUSE daemon: a stat of its own
 * mount would deadlock; reading mountinfo does not touch the mount).
 */
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';

export const MOUNTINFO_PATH = '/proc/self/mountinfo';

export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the mounted filesystem. */
  dev: string;
  root: string;
  mountpoint: string;
  mountOptions: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      dev: fields[2],
      root: unescapeMountPath(fields[3]),
      mountpoint: unescapeMountPath(fields[4]),
      mountOptions: fields[5].split(','),
      fstype: fields[sep + 1],
      source: unescapeMountPath(fields[sep + 2]),
      superOptions: (fields[sep + 3] ?? '').split(',').filter(Boolean),
    });
  }
  return out;
}

export async function readMountinfo(path = MOUNTINFO_PATH): Promise<MountEntry[]> {
  return parseMountinfo(await readFile(path, 'utf8'));
}

export function readMountinfoSync(path = MOUNTINFO_PATH): MountEntry[] {
  return parseMountinfo(readFileSync(path, 'utf8'));
}

export function findMountIn(entries: MountEntry[], mountpoint: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const e of entries) if (e.mountpoint === mountpoint) found = e;
  return found;
}

export async function findMount(mountpoint: string): Promise<MountEntry | undefined> {
  return findMountIn(await readMountinfo(), mountpoint);
}

/** True for a mount made by ebsmount (fuse.ebsmount, source ebsmount:SNAP). */
export function isEbsmountEntry(e: MountEntry): boolean {
  return e.fstype === 'fuse.ebsmount' || e.source.startsWith('ebsmount:');
}
