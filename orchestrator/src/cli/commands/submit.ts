/** byolctl submit FILE [--wait | --follow]: queue a job; embedded mode trains here and implies --follow. */
import {dirname, isAbsolute, resolve} from 'node:path';
import type {CommandModule} from 'yargs';
import {SpecError} from '../../client/errors';
import {loadSpecFile} from '../../spec';
import {exitCodeForState, InterruptedError} from '../exit-codes';
import {followJob} from '../follow';
import {printJson} from '../io';
import {type CliContext, withTarget} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  file: string;
  wait?: boolean;
  follow?: boolean;
}

/** Relative data paths are relative to the spec file (docs/internals.md step 4): make them absolute here. */
export function anchorDataPaths(doc: unknown, file: string): unknown {
  const data = (doc as any)?.spec?.data;
  if (data && typeof data === 'object') {
    for (const key of ['path', 'evalPath']) {
      if (typeof data[key] === 'string' && data[key] && !isAbsolute(data[key])) data[key] = resolve(dirname(file), data[key]);
    }
  }
  return doc;
}

export function submitCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'submit <file>',
    describe: 'Submit a job spec (YAML). Without a server, runs it here and follows it to the end.',
    builder: (y) => y
      .positional('file', {type: 'string', demandOption: true, describe: 'job spec file (YAML or JSON)'})
      .option('wait', {type: 'boolean', describe: 'wait for the job to finish; exit code by its final state'})
      .option('follow', {alias: 'f', type: 'boolean', describe: 'print events and progress until the job finishes'})
      .conflicts('wait', 'follow'),
    handler: (argv) => withTarget(ctx, argv, 'local', async (target) => {
      const doc = loadSpecFile(argv.file);
      // On a remote server, relative paths name data under its data root; locally, they are the file's.
      if (target.local) anchorDataPaths(doc, argv.file);
      const job = await target.client.jobs.submit(doc).catch((err) => {
        throw err instanceof SpecError ? new SpecError(err.issues, argv.file) : err;
      });
      const follow = argv.follow === true || target.embedded;
      if (!follow && !argv.wait) {
        if (argv.json) printJson(ctx.io, job);
        else ctx.io.out(`submitted job ${job.id}: ${job.totalSteps} steps; follow it with \`byolctl logs -f ${job.id}\`\n`);
        return 0;
      }
      if (!argv.json) ctx.io.out(`submitted job ${job.id}: ${job.totalSteps} steps${target.embedded ? ' (embedded coordinator; Ctrl-C stops it)' : ''}\n`);
      if (!argv.json && target.dashboardUrl) ctx.io.out(`dashboard: ${target.dashboardUrl}/#/job/${encodeURIComponent(job.id)} (live while the job runs)\n`);
      const final = await followJob(target.client, job.id, argv.json ? {...ctx.io, out: () => undefined} : ctx.io,
        {events: follow && !argv.json, signal: ctx.signal}).catch((err) => {
        if (err instanceof InterruptedError) {
          ctx.io.err(target.embedded
            ? `stopping the embedded coordinator; job ${job.id} stays in ${argv.home} and resumes from its last checkpoint under \`byolctl serve --home ${argv.home}\`\n`
            : `stopped following; job ${job.id} goes on (byolctl logs -f ${job.id})\n`);
        }
        throw err;
      });
      if (argv.json) printJson(ctx.io, final);
      return exitCodeForState(final.state);
    }),
  };
}
