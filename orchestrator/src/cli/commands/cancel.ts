/** byolctl cancel ID: stop a job's trainers and free its devices. */
import type {CommandModule} from 'yargs';
import {printJson} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  id: string;
}

export function cancelCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'cancel <id>',
    describe: 'Cancel a job',
    builder: (y) => y.positional('id', {type: 'string', demandOption: true, describe: 'job id'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      const job = await client.jobs.cancel(argv.id);
      if (argv.json) printJson(ctx.io, job);
      else ctx.io.out(`job ${job.id} ${job.state} at step ${job.step}/${job.totalSteps}\n`);
      return 0;
    }),
  };
}
