/** Whether a C compiler (`cc`) is on PATH: the tests that build bpf/*.h natively need one. */
import { execFileSync } from 'node:child_process';

export function haveCc(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
