/**
 * FileView: one file of a mount's directory — a window {offset, length} over a volume
 * (a VolumeFile). A mount serves a list of them: the whole disk (`SNAP.img`), each partition
 * (`SNAP-pN.img`), and, with several snapshots in one daemon, the files of each volume (every view
 * names its volume).
 *
 * Contract:
 * - read(buf, len, pos): bytes [offset + pos, offset + min(pos + len, length)) of the volume;
 *   0 at or after the view's end. write: EROFS unless writable; ENOSPC at or after the end; short
 *   when it straddles the end. Never touches bytes outside the window.
 * - `allocatedBytes`, when known (the whole-disk view), drives st_blocks; otherwise the view
 *   reports itself fully allocated.
 */
import { IoError } from './io-error.js';
import type { OpOptions, VolumeFile } from './volume-file.js';

export interface FileView {
  /** The file's name in the mount's directory (no slash). */
  name: string;
  /** Which volume it shows (the snapshot id). */
  volumeId: string;
  volume: VolumeFile;
  offset: number;
  length: number;
  writable: boolean;
  /** What the view holds, for st_blocks; undefined: all of it. */
  allocatedBytes?: () => number;
  /** A partition view's number in the volume's table. */
  partition?: number;
}

/** The view of a whole volume. */
export function wholeVolumeView(volume: VolumeFile, volumeId: string, name = `${volumeId}.img`): FileView {
  return {
    name,
    volumeId,
    volume,
    offset: 0,
    length: volume.sizeBytes,
    writable: volume.writable,
    allocatedBytes: () => volume.allocatedBlocks() * 524288,
  };
}

export function viewRead(view: FileView, buf: Buffer, len: number, pos: number, opts: OpOptions = {}): Promise<number> {
  if (!Number.isInteger(pos) || pos < 0) return Promise.reject(new IoError('EINVAL', `invalid read offset ${pos}`));
  if (pos >= view.length) return Promise.resolve(0);
  const n = Math.min(len, buf.length, view.length - pos);
  return view.volume.read(buf, n, view.offset + pos, opts);
}

export function viewWrite(view: FileView, buf: Buffer, len: number, pos: number, opts: OpOptions = {}): Promise<number> {
  if (!view.writable) return Promise.reject(new IoError('EROFS', `${view.name} is read-only`));
  if (!Number.isInteger(pos) || pos < 0) return Promise.reject(new IoError('EINVAL', `invalid write offset ${pos}`));
  if (pos >= view.length) return Promise.reject(new IoError('ENOSPC', `write at ${pos} is past the end of ${view.name} (${view.length} bytes)`));
  const n = Math.min(len, buf.length, view.length - pos);
  return view.volume.write(buf.subarray(0, n), n, view.offset + pos, opts);
}
