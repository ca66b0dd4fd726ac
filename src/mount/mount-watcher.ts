/**
 * MountWatcher: notices that our mount left the mount table (plain `umount`, `fusermount -u`,
 * `umount -l` by someone else), because fuse-native has no `destroy` callback (DESIGN §2).
 *
 * Contract: polls /proc/self/mountinfo every `intervalMs` (default 500) for an entry at
 * `mountpoint` with our device number; the first time it is missing, `onGone` runs once and
 * polling stops. `stop()` ends polling. Read errors are ignored (next poll retries). The timer is
 * unref'd: it never keeps a process alive by itself.
 */
import { readMountinfo } from './mountinfo.js';

export class MountWatcher {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy = false;

  constructor(
    private readonly mountpoint: string,
    private readonly dev: string,
    private readonly onGone: () => void,
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check; true when the mount is still there. */
  async poll(): Promise<boolean> {
    if (this.stopped || this.busy) return true;
    this.busy = true;
    try {
      const entries = await readMountinfo();
      const present = entries.some((e) => e.mountpoint === this.mountpoint && e.dev === this.dev);
      if (!present && !this.stopped) {
        this.stop();
        this.onGone();
      }
      return present;
    } catch {
      return true;
    } finally {
      this.busy = false;
    }
  }
}
