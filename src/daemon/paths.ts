/** Files of this checkout (one implementation: src/paths.ts). */
export { repoRoot, repoPath } from '../paths';
