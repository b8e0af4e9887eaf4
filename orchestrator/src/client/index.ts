/**
 * ByolClient: the library over the REST API (what byolctl uses).
 *
 *   const client = new ByolClient({server: 'http://127.0.0.1:8080'});   // or BYOL_SERVER
 *   const job = await client.jobs.submit(doc);
 *   for await (const item of client.jobs.follow(job.id)) ...
 */
import {Connection, type ConnectionOptions} from './connection';
import {JobsClient} from './jobs-client';
import {WorkersClient} from './workers-client';

export class ByolClient {
  readonly connection: Connection;
  readonly jobs: JobsClient;
  readonly workers: WorkersClient;

  constructor(options: ConnectionOptions = {}) {
    this.connection = new Connection(options);
    this.jobs = new JobsClient(this.connection);
    this.workers = new WorkersClient(this.connection);
  }

  get server(): string {
    return this.connection.server;
  }

  /** True when /readyz answers 200. */
  async ready(): Promise<boolean> {
    const res = await this.connection.call('GET', '/healthz');
    await res.body?.cancel();
    try {
      await (await this.connection.call('GET', '/readyz')).body?.cancel();
      return true;
    } catch {
      return false;
    }
  }
}

export {Connection, DEFAULT_SERVER, type ConnectionOptions} from './connection';
export {JobsClient, type FollowItem, type FollowOptions} from './jobs-client';
export {WorkersClient} from './workers-client';
export * from './errors';
