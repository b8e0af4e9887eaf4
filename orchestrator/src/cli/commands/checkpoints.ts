/** byolctl checkpoints ID: the registered checkpoints of a job. */
import type {CommandModule} from 'yargs';
import {printJson, table} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  id: string;
}

export function checkpointsCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'checkpoints <id>',
    describe: 'List a job\'s checkpoints (ok, bad, deleted)',
    builder: (y) => y.positional('id', {type: 'string', demandOption: true, describe: 'job id'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      const cks = await client.jobs.checkpoints(argv.id);
      if (argv.json) printJson(ctx.io, cks);
      else if (cks.length === 0) ctx.io.out(`job ${argv.id} has no checkpoints yet\n`);
      else ctx.io.out(table([['STEP', 'STATE', 'BYTES', 'PATH'], ...cks.map((c) => [String(c.step), c.state, String(c.bytes), c.path])]));
      return 0;
    }),
  };
}
