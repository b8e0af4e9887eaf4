/** byolctl status [ID]: one job in detail, or the active jobs and the workers. */
import type {CommandModule} from 'yargs';
import {TERMINAL_STATES} from '../../domain/types';
import {jobDetails, printable, progressLine} from '../format';
import {healthLine, healthWarnings} from '../health-lines';
import {printJson, table} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  id?: string;
}

export function statusCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'status [id]',
    describe: 'Show a job (with ID), or the active jobs and the workers',
    builder: (y) => y.positional('id', {type: 'string', describe: 'job id'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      if (argv.id) {
        const job = await client.jobs.get(argv.id);
        if (argv.json) printJson(ctx.io, job);
        else ctx.io.out(jobDetails(job) + healthLine(job));
        if (!argv.json) ctx.io.err(healthWarnings(job));
        return 0;
      }
      const jobs = (await client.jobs.list()).filter((j) => !TERMINAL_STATES.includes(j.state));
      const workers = await client.workers.list();
      if (argv.json) {
        printJson(ctx.io, {jobs, workers});
        return 0;
      }
      ctx.io.out(jobs.length === 0 ? 'no active jobs\n' : table(jobs.map((j) => [j.id, progressLine(j)])));
      ctx.io.err(jobs.map(healthWarnings).join(''));
      ctx.io.out(workers.length === 0 ? 'no workers\n' : table([['WORKER', 'HOST', 'CONNECTED', 'DEVICES', 'ASSIGNED'],
        ...workers.map((w) => [w.agentId, w.host, String(w.connected), w.devices.map((d) => d.id).join(','),
          Object.values(w.assigned).map((a) => `${a.jobId}#${a.rank}`).join(',') || '-'].map(printable))]));
      return 0;
    }),
  };
}
