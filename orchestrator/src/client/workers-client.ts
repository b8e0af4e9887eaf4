/** `client.workers`: the agents the coordinator knows. */
import type {WorkerInfo} from '../domain/types';
import type {Connection} from './connection';

export class WorkersClient {
  constructor(private readonly conn: Connection) {}

  list(): Promise<WorkerInfo[]> {
    return this.conn.json('GET', '/v1/workers');
  }
}
