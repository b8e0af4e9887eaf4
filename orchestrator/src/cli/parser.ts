/**
 * The byolctl parser: one yargs command per file under commands/. Exported so tests run commands
 * in-process (`runCli`), without spawning.
 */
import yargs, {type Argv} from 'yargs';
import {cancelCommand} from './commands/cancel';
import {checkpointsCommand} from './commands/checkpoints';
import {exportCommand} from './commands/export';
import {listCommand} from './commands/list';
import {logsCommand} from './commands/logs';
import {planCommand} from './commands/plan';
import {serveCommand} from './commands/serve';
import {statusCommand} from './commands/status';
import {submitCommand} from './commands/submit';
import {EXIT, EXIT_CODES_HELP, UsageError} from './exit-codes';
import {processIo, type CliIo} from './io';
import type {CliContext} from './run';
import type {GlobalArgs} from './target';

export interface ParserOptions {
  io?: CliIo;
  /** Aborted on Ctrl-C. */
  signal?: AbortSignal;
}

export function buildParser(args: string[], o: ParserOptions = {}): Argv<GlobalArgs> {
  const io = o.io ?? processIo();
  const ctx: CliContext = {io, signal: o.signal ?? new AbortController().signal};
  return yargs(args)
    .scriptName('byolctl')
    .usage('$0 <command> [options]\n\nBYOL pretraining jobs. With no --server (nor BYOL_SERVER), commands run against a coordinator embedded in this process, with its store under --home.')
    .option('server', {type: 'string', describe: 'REST URL of a coordinator (BYOL_SERVER); default: embedded'})
    .option('token', {type: 'string', default: process.env.BYOL_API_TOKEN || undefined, describe: 'API bearer token (BYOL_API_TOKEN); on the command line it shows in ps, prefer --token-file'})
    .option('token-file', {type: 'string', default: process.env.BYOL_API_TOKEN_FILE || undefined, describe: 'file whose first line is the API bearer token (BYOL_API_TOKEN_FILE)'})
    .option('home', {type: 'string', default: process.env.BYOL_HOME || '.byol', describe: 'embedded mode: folder of the store and checkpoints (BYOL_HOME)'})
    .option('json', {type: 'boolean', default: false, describe: 'machine-readable output'})
    .option('debug', {type: 'boolean', default: false, describe: 'stack traces and debug logs'})
    .command(submitCommand(ctx))
    .command(statusCommand(ctx))
    .command(listCommand(ctx))
    .command(logsCommand(ctx))
    .command(cancelCommand(ctx))
    .command(planCommand(ctx))
    .command(checkpointsCommand(ctx))
    .command(exportCommand(ctx))
    .command(serveCommand(ctx))
    .demandCommand(1, 'name a command; see byolctl --help')
    .strict()
    .epilogue(EXIT_CODES_HELP)
    .exitProcess(false)
    .fail((msg, err) => {
      // Throwing stops yargs from running the handler; runCli reports it. `err` is a bug, not usage.
      throw err ?? new UsageError(msg);
    })
    .help()
    .version(false) as unknown as Argv<GlobalArgs>;
}

/** Parses and runs one command line; resolves with the exit code (also left in process.exitCode). */
export async function runCli(args: string[], o: ParserOptions = {}): Promise<number> {
  process.exitCode = undefined;
  try {
    await buildParser(args, o).parseAsync();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    (o.io ?? processIo()).err(`${err.message}\nsee byolctl --help\n`);
    process.exitCode = EXIT.badInput;
  }
  return Number(process.exitCode ?? 0);
}
