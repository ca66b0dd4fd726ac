/**
 * openDiskCacheOrExplain: DiskCache.open for the CLI paths (mount daemon, export): any failure
 * (not a directory, no permission, an index of another format or damaged) becomes one UserError
 * naming the directory.
 */
import { UserError } from '../errors/user-error.js';
import type { Logger } from '../util/log.js';
import { DiskCache } from './disk-cache.js';

export function openDiskCacheOrExplain(dir: string, sizeBytes: number, logger?: Logger): DiskCache {
  try {
    const cache = DiskCache.open({ dir, sizeBytes, logger });
    logger?.info({ dir, sizeBytes, storedBytes: cache.storedBytes }, 'disk cache opened');
    return cache;
  } catch (err) {
    const code = (err as { code?: string }).code;
    const hint = code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' ? ' (remove the directory to start an empty cache)' : '';
    throw new UserError(`cannot open the disk cache ${dir}: ${(err as Error).message}${hint}`);
  }
}
