/** byolctl list: jobs, newest first. */
import type {CommandModule} from 'yargs';
import type {JobState} from '../../domain/types';
import {printJson, table} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  state?: string[];
  limit?: number;
}

export function listCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'list',
    describe: 'List jobs, newest first',
    builder: (y) => y
      .option('state', {type: 'string', array: true, describe: 'only jobs in these states (e.g. RUNNING QUEUED)'})
      .option('limit', {type: 'number', describe: 'at most this many'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      const states = argv.state?.flatMap((s) => s.split(',')).map((s) => s.toUpperCase() as JobState);
      const jobs = await client.jobs.list({states, limit: argv.limit});
      if (argv.json) {
        printJson(ctx.io, jobs);
        return 0;
      }
      if (jobs.length === 0) {
        ctx.io.out('no jobs\n');
        return 0;
      }
      ctx.io.out(table([['ID', 'STATE', 'STEP', 'LOSS', 'SUBMITTED'], ...jobs.map((j) => [
        j.id, j.state, `${j.step}/${j.totalSteps}`, j.loss === null ? '-' : j.loss.toFixed(4),
        new Date(j.submittedAtMs).toISOString().replace('T', ' ').slice(0, 19),
      ])]));
      return 0;
    }),
  };
}
