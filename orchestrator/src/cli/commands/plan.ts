/**
 * byolctl plan FILE [--workers N] [--at STEP ...]: what a job will do, computed offline (no server).
 * With --resolved: the resolved document and its specHash as one JSON document, which
 * `python -m byol_worker train --spec` runs as is (no Node needed there).
 */
import {dirname} from 'node:path';
import type {CommandModule} from 'yargs';
import {loadSpecFile, planJob, resolveSpec, SpecError, specHash} from '../../spec';
import {UsageError} from '../exit-codes';
import {printJson, table} from '../io';
import {type CliContext, runCommand} from '../run';
import type {GlobalArgs} from '../target';

interface Args extends GlobalArgs {
  file: string;
  workers?: number;
  at?: number[];
  resolved?: boolean;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export function planCommand(ctx: CliContext): CommandModule<GlobalArgs, Args> {
  return {
    command: 'plan <file>',
    describe: 'Show steps, schedules and checkpoint sizes of a spec, offline',
    builder: (y) => y
      .positional('file', {type: 'string', demandOption: true, describe: 'job spec file'})
      .option('workers', {alias: 'w', type: 'number', describe: 'data-parallel ranks (default: spec.resources.workers)'})
      .option('at', {type: 'number', array: true, describe: 'also show LR and tau at these global steps'})
      .option('resolved', {type: 'boolean', describe: 'print the resolved spec and its specHash (JSON) for a standalone `python -m byol_worker train --spec`'}),
    handler: (argv) => runCommand(ctx, argv, async () => {
      const spec = resolveSpec(loadSpecFile(argv.file), {baseDir: dirname(argv.file), file: argv.file});
      if (argv.resolved) {
        printJson(ctx.io, {...spec, specHash: specHash(spec)});
        return 0;
      }
      const s = spec.spec as Record<string, any>;
      const workers = argv.workers ?? s.resources.workers;
      if (!Number.isInteger(workers) || workers < 1) throw new UsageError(`--workers must be a positive integer, got ${argv.workers}`);
      let p;
      try {
        p = planJob(spec, workers, {at: argv.at});
      } catch (err) {
        throw err instanceof SpecError && !err.file ? new SpecError(err.issues, argv.file) : err;
      }
      if (argv.json) {
        printJson(ctx.io, p);
        return 0;
      }
      const ck = s.checkpoint;
      ctx.io.out(table([
        ['dataset', `${p.datasetSize} samples (${s.data.format}${s.data.path ? ` ${s.data.path}` : ''})`],
        ['batch', `B ${p.globalBatch} = ${workers} worker(s) x ${p.microBatch} micro-batch x ${p.accumulation} accumulation`],
        ['steps', `${p.stepsPerEpoch} per epoch x ${p.epochs} epochs = ${p.totalSteps} (warmup ${p.warmupSteps})`],
        ['LR', `peak ${p.peakLr} (baseLr ${s.optimizer.baseLr}, lrScaling ${s.optimizer.lrScaling}), cosine to 0`],
        ['tau', p.tauSchedule === 'constant' ? `${p.tauBase} (constant)` : `${p.tauBase} -> 1`],
        ['checkpoints', `${p.checkpointCount} written, ~${mib(p.checkpointBytesEstimate)} each; keep last ${ck.keepLast}` +
          `${ck.everySteps > 0 ? `, every ${ck.everySteps} steps` : ', at the end and on preemption'}`],
      ]));
      ctx.io.out('\n' + table([['STEP', 'LR', 'TAU'], ...p.at.map((a) => [String(a.step), a.lr.toPrecision(6), a.tau.toFixed(8)])]));
      return 0;
    }),
  };
}
