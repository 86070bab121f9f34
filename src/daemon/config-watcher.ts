/**
 * Watches one config file for edits. It watches the file's DIRECTORY, not the file: editors
 * and atomic writers (ours included) replace the file by a rename, which ends a watch on the
 * old inode. Bursts of events (write + rename + chmod) are debounced into one callback.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface ConfigWatcher { close(): void }

/**
 * Calls `onChange` once per burst of changes to `file`, `debounceMs` after the last event.
 * @throws Error when the directory cannot be watched.
 */
export function watchConfigFile(file: string, onChange: () => void, debounceMs = 200): ConfigWatcher {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  let timer: NodeJS.Timeout | null = null;
  const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
    // name can be null on some platforms: then any event in the directory may be ours.
    if (name !== null && name.toString() !== base) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; onChange(); }, debounceMs);
  });
  watcher.on('error', () => { /* the directory went away: nothing left to watch */ });
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
}
