/**
 * Schema versions of the SQLite store. `PRAGMA user_version` records how many have been applied;
 * a new version appends a migration here (never edit an applied one).
 */
export const MIGRATIONS: readonly string[] = [
  // 1: jobs, generations, checkpoints, metrics, events
  `
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,            -- JSON, resolved
    spec_hash TEXT NOT NULL,
    schedule TEXT NOT NULL,        -- JSON ScheduleState
    submitted_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    finished_at_ms INTEGER,
    step INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    message TEXT,
    result TEXT                    -- JSON or NULL
  );
  -- queue order (docs/architecture.md §4): priority, then submit time, among jobs in a given state
  CREATE INDEX jobs_queue ON jobs (state, priority DESC, submitted_at_ms ASC);
  CREATE INDEX jobs_submitted ON jobs (submitted_at_ms DESC);

  CREATE TABLE generations (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    generation INTEGER NOT NULL,
    data TEXT NOT NULL,            -- JSON Generation
    PRIMARY KEY (job_id, generation)
  ) WITHOUT ROWID;

  CREATE TABLE checkpoints (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    step INTEGER NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, step)
  ) WITHOUT ROWID;

  CREATE TABLE metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    step INTEGER NOT NULL,
    data TEXT NOT NULL,            -- JSON MetricPoint
    PRIMARY KEY (job_id, step)
  ) WITHOUT ROWID;

  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    t_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT                      -- JSON or NULL
  );
  CREATE INDEX events_job ON events (job_id, seq);
  `,
  // 2: per-rank values of each step (dashboard, health), apart from the per-step row so that reading a
  // job's scalars stays cheap with 64 ranks; read by step, a few thousand at a time
  `
  CREATE TABLE rank_metrics (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    step INTEGER NOT NULL,
    data TEXT NOT NULL,            -- JSON RankSeries
    PRIMARY KEY (job_id, step)
  ) WITHOUT ROWID;
  `,
];
