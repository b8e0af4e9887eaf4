#!/usr/bin/env node
/** byolctl: the command-line entry point (package.json "bin"). */
import {runCli} from './parser';

const controller = new AbortController();
let interrupts = 0;
process.on('SIGINT', () => {
  interrupts += 1;
  if (interrupts > 1) process.exit(130); // a second Ctrl-C does not wait for a clean stop
  controller.abort();
});

runCli(process.argv.slice(2), {signal: controller.signal}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`byolctl: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
