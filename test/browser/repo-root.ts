/** The repository root, for the browser tests (one implementation: src/paths.ts). */
export { repoRoot } from '../../src/paths';
