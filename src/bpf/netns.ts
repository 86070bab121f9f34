/** enterNetns: moves the JS main thread into a named network namespace, for tests and the lab. */
import { native } from './native';

/**
 * setns(2)s the calling thread (the JS main thread) into /var/run/netns/NAME and returns a
 * function that moves it back (idempotent). While inside, ifindexes, XDP attach, interface
 * lookups and BPF_PROG_TEST_RUN's ingress ifindex refer to that namespace. Only the calling
 * thread moves: libuv worker threads (fs, dns, crypto) and sockets opened before stay where they
 * were, so do not rely on async networking inside; restore in a finally block.
 * @throws BpfError (op 'netns enter') ENOENT for an unknown namespace, EPERM without root.
 */
export function enterNetns(name: string): () => void {
  let saved = native().netnsEnter(name);
  return () => {
    if (saved < 0) return;
    const fd = saved;
    saved = -1;
    native().netnsRestore(fd);
  };
}

/** Runs `fn` inside the namespace `name` and always comes back. @throws what fn or enterNetns throws. */
export function inNetns<T>(name: string, fn: () => T): T {
  const restore = enterNetns(name);
  try {
    return fn();
  } finally {
    restore();
  }
}
