import pino, {type Logger} from 'pino';

export type {Logger};

/**
 * The coordinator's logger: pino JSON lines on stdout, level from BYOL_LOG_LEVEL
 * (default 'info'; tests set 'silent' or 'warn'). Child loggers carry the module name.
 */
export function createLogger(opts: {name?: string; level?: string} = {}): Logger {
  const level = opts.level ?? process.env.BYOL_LOG_LEVEL ?? 'info';
  return pino({name: opts.name ?? 'byol-coordinator', level});
}
