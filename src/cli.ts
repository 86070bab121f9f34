#!/usr/bin/env node
/** The one command-line entry of xdplb; the command tree is in src/cli/program.ts. */
import { main } from './cli/program';
import { reportError } from './cli/output';

main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { process.exitCode = reportError(err); },
);
