/** The SQLite store: the shared JobStore suite on a real file in a fresh temp dir, and what is SQLite's own. */
import {afterEach, beforeEach, describe, expect, test} from '@jest/globals';
import Database from 'better-sqlite3';
import {join} from 'node:path';
import {openStore, type SqliteStore} from '../orchestrator/src/store';
import {MIGRATIONS} from '../orchestrator/src/store/migrations';
import {describeJobStore} from './helpers/job-store-conformance';
import {tempDir} from './helpers/temp';

describeJobStore('SqliteStore', () => {
  const dir = tempDir('byol-store-');
  const path = join(dir.path, 'sub', 'store.db'); // a folder the store must create
  return {open: () => openStore(path), dispose: dir.cleanup};
});

describe('SqliteStore on disk', () => {
  let dir: {path: string; cleanup: () => void};
  let path: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = tempDir('byol-store-');
    path = join(dir.path, 'sub', 'store.db');
    store = openStore(path);
  });
  afterEach(() => {
    store.close();
    dir.cleanup();
  });

  test('WAL journal and the current schema version', () => {
    expect(store.schemaVersion()).toBe(MIGRATIONS.length);
    const raw = new Database(path, {readonly: true});
    expect(raw.pragma('journal_mode', {simple: true})).toBe('wal');
    raw.close();
  });

  test('a store from a newer version is refused', () => {
    store.close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    expect(() => openStore(path)).toThrow(/newer than this coordinator/);
    store = openStore(join(dir.path, 'other.db')); // for afterEach
  });
});
