/** byolctl logs ID [-f]: a job's events; -f follows them (and the progress) until the job ends. */
import type {CommandModule} from 'yargs';
import {exitCodeForState} from '../exit-codes';
import {followJob} from '../follow';
import {eventLine} from '../format';
import {printJson} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  id: string;
  follow: boolean;
}

export function logsCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'logs <id>',
    describe: 'Print a job\'s events; -f follows until the job ends (exit code by its final state)',
    builder: (y) => y
      .positional('id', {type: 'string', demandOption: true, describe: 'job id'})
      .option('follow', {alias: 'f', type: 'boolean', default: false, describe: 'keep printing new events'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      if (!argv.follow) {
        const events = [];
        for (let page = await client.jobs.events(argv.id); page.length > 0; page = await client.jobs.events(argv.id, {afterSeq: page[page.length - 1].seq})) {
          events.push(...page); // the server answers a page at a time (1000 events by default)
        }
        if (argv.json) printJson(ctx.io, events);
        else for (const ev of events) ctx.io.out(`${eventLine(ev)}\n`);
        return 0;
      }
      const final = await followJob(client, argv.id, ctx.io, {events: true, signal: ctx.signal});
      return exitCodeForState(final.state);
    }),
  };
}
