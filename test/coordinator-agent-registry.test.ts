import {describe, expect, test} from '@jest/globals';
import {AgentRegistry} from '../orchestrator/src/agents/agent-registry';
import type {AgentConnection} from '../orchestrator/src/agents/agent-connection';

const conn = (): AgentConnection => ({peer: '10.0.0.5:4000', send: () => undefined, close: () => undefined});
const hello = (agentId: string, devices = ['cpu:0']) => ({
  agentId, host: '', devices: devices.map((id) => ({id, kind: 'cpu', name: 'cpu', memoryBytes: 0})), versions: {}, running: [],
});

describe('AgentRegistry', () => {
  test('heartbeats: an agent silent past the timeout is reported; touching it resets the clock', () => {
    let now = 1000;
    const reg = new AgentRegistry(() => now);
    reg.join(hello('a'), conn());
    reg.join(hello('b'), conn());
    now = 5000;
    reg.touch('b');
    now = 6500;
    expect(reg.silent(5000)).toEqual(['a']);
    expect(reg.get('a')!.host).toBe('10.0.0.5'); // no host in Hello: the peer address
  });

  test('assigned devices are not free; a settling device waits for its trainer or the deadline', () => {
    let now = 0;
    const reg = new AgentRegistry(() => now);
    reg.join(hello('a', ['cpu:0', 'cpu:1']), conn());
    reg.assign('a', 'cpu:0', {jobId: 'j', generation: 1, rank: 0});
    expect(reg.freeDevices().map((d) => d.deviceId)).toEqual(['cpu:1']);
    reg.release('j');
    reg.settle('a', 'cpu:0', {jobId: 'j', generation: 1, rank: 0}, 100);
    expect(reg.freeDevices().map((d) => d.deviceId)).toEqual(['cpu:1']);
    expect(reg.freeDevices({includeSettling: true}).map((d) => d.deviceId)).toEqual(['cpu:0', 'cpu:1']);
    expect(reg.settled('a', 'j', 2, 0)).toBe(false); // another generation's trainer
    expect(reg.settled('a', 'j', 1, 0)).toBe(true);
    expect(reg.freeDevices().map((d) => d.deviceId)).toEqual(['cpu:0', 'cpu:1']);
    reg.settle('a', 'cpu:1', {jobId: 'j', generation: 1, rank: 1}, 100);
    now = 100;
    expect(reg.freeDevices().map((d) => d.deviceId)).toEqual(['cpu:0', 'cpu:1']); // deadline passed
  });

  test('a re-join keeps what the devices hold and hands back the old stream to close', () => {
    const reg = new AgentRegistry();
    const first = conn();
    reg.join(hello('a'), first);
    reg.assign('a', 'cpu:0', {jobId: 'j', generation: 1, rank: 0});
    expect(reg.join(hello('a'), conn())).toBe(first);
    expect(reg.list()[0].assigned).toEqual({'cpu:0': {jobId: 'j', generation: 1, rank: 0}});
    expect(reg.remove('a')).toEqual([{jobId: 'j', generation: 1, rank: 0}]);
    expect(reg.list()).toEqual([]);
  });
});
