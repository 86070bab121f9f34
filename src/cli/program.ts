/**
 * The `xdplb` command tree. buildProgram() is separate from the entry point so tests and
 * other tools can inspect it; main() parses argv and returns the exit code.
 *
 * Exit codes: 0 ok, 1 an error (API, kernel, daemon), 2 a usage error. Every failure is one
 * line on stderr: `xdplb: <code>: <message> (field /x/y)`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerServiceCommands, registerBackendCommands } from './services';
import { registerStateCommands } from './state';
import { registerObserveCommands, registerHashPasswordCommand } from './observe';
import { registerDaemonCommand } from './daemon';
import { registerClusterCommands } from './cluster';
import { registerTransitionsCommand } from './transitions';
import { repoRoot } from '../daemon/paths';
import { registerLabCommands } from '../lab/cli';
import { registerBenchCommands } from '../bench/cli';

type Parser = (value: string, previous: unknown) => unknown;

/**
 * Makes every value parser of the tree report bad input as a usage error (exit 2, one line):
 * commander only treats InvalidArgumentError so, and verbs registered by other modules may
 * throw a plain Error.
 */
function usageErrorsFromParsers(cmd: Command): void {
  const wrap = (holder: { parseArg?: unknown }): void => {
    const parse = holder.parseArg as Parser | undefined;
    if (!parse) return;
    holder.parseArg = (value: string, previous: unknown) => {
      try {
        return parse(value, previous);
      } catch (err) {
        if (err instanceof InvalidArgumentError || !(err instanceof Error)) throw err;
        throw new InvalidArgumentError(err.message);
      }
    };
  };
  for (const option of cmd.options) wrap(option as { parseArg?: unknown });
  for (const argument of cmd.registeredArguments) wrap(argument as { parseArg?: unknown });
  for (const sub of cmd.commands) usageErrorsFromParsers(sub);
}

export function buildProgram(): Command {
  const version = (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const program = new Command('xdplb')
    .description('xdplb: a stateless L3/L4 load balancer on XDP. API verbs talk to the daemon at --api / XDPLB_API.')
    .version(version)
    .showSuggestionAfterError(true)
    // Set before any subcommand is added: commander copies these settings into each one.
    .configureOutput({
      outputError: (str, write) => write(`xdplb: usage: ${str.replace(/^error: /, '').trim()}\n`),
    })
    .exitOverride();
  registerDaemonCommand(program);
  registerServiceCommands(program);
  registerBackendCommands(program);
  registerStateCommands(program);
  registerObserveCommands(program);
  registerHashPasswordCommand(program);
  registerClusterCommands(program);
  registerTransitionsCommand(program);
  // The lab and bench verbs live with their owners.
  registerLabCommands(program);
  registerBenchCommands(program);
  usageErrorsFromParsers(program);
  return program;
}

/** Parses argv (process.argv form) and runs the verb; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  let program: Command;
  try {
    program = buildProgram();
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // 'commander.help': a group verb without its sub-verb printed its help to stderr.
      return 2;
    }
    throw err;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
