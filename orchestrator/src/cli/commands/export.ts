/** byolctl export ID --out FILE: the online encoder of the latest good checkpoint, as a PyTorch state dict. */
import type {CommandModule} from 'yargs';
import {printJson} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  id: string;
  out: string;
}

export function exportCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'export <id>',
    describe: 'Download the online encoder of the job\'s latest good checkpoint (loads with torch.load)',
    builder: (y) => y
      .positional('id', {type: 'string', demandOption: true, describe: 'job id'})
      .option('out', {alias: 'o', type: 'string', demandOption: true, describe: 'file to write, e.g. encoder.pt'}),
    handler: (argv) => withTarget(ctx, argv, 'external', async ({client}) => {
      const r = await client.jobs.export(argv.id, argv.out, {signal: ctx.signal});
      if (argv.json) printJson(ctx.io, r);
      else ctx.io.out(`wrote ${r.path} (${r.bytes} bytes, step ${r.step})\n`);
      return 0;
    }),
  };
}
