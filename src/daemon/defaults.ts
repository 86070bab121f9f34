/** Defaults shared by the daemon and its CLI verb (kept apart so the CLI loads no native code). */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/xdplb';
