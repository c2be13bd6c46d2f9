/**
 * The native STAMP datapath when its thread gets no CPU: a late wake-up may
 * delay a train's verdict, never turn answered packets into losses.
 *
 * Regular trains and a diagnostics-style fast train (50 packets at 1 ms, 1 s
 * timeout) share one sender socket towards a native reflector in this
 * process, so the reflector answers on the very thread that is starved, as in
 * the probe agent. Two ways of starving it:
 *
 * - the datapath thread is made SCHED_IDLE and pinned to one CPU beside two
 *   CPU-bound processes pinned there too (it runs only in the gaps);
 * - the whole process is stopped (SIGSTOP) for longer than the fast train's
 *   timeout, a few packets into the train, and continued.
 *
 * Counts, not times: the reflector counts every reply it sent, and every one
 * of them must be counted as received by the train it belongs to.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainResult, TrainTask } from '../../probes/engines/types.js';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { StampReflector } from '../../probes/engines/stamp/reflector.js';
import { missingCommand, skipReason, nativeDatapathMissing } from '../helpers/requirements.js';

const HOST = '127.0.33.1';
/** Longer than the fast train's reply timeout, so a stop spans it. */
const STOPPED_MS = 1300;

const nativeMissing = nativeDatapathMissing();
const missing = nativeMissing ?? missingCommand('chrt', 'util-linux') ?? missingCommand('taskset', 'util-linux');

/** The native datapath's thread in this process (named by stamp.c), once it runs. */
function datapathThread(): string {
  const tid = readdirSync('/proc/self/task').find((t) => readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'citymesh-stamp');
  if (!tid) throw new Error('no citymesh-stamp thread in this process: the native datapath did not start');
  return tid;
}

describe.skipIf(skipReason(missing))('native STAMP datapath with its thread starved', () => {
  let reflector: StampReflector;
  let engine: StampEngine;

  beforeAll(async () => {
    reflector = await StampReflector.listen({ port: 0, host: HOST });
    engine = new StampEngine();
  });
  afterAll(async () => {
    await engine?.close();
    await reflector?.close();
  });

  const task = (over: Partial<TrainTask> = {}): TrainTask => ({
    host: HOST, port: reflector.address().port, count: 5, intervalMs: 5, timeoutMs: 300, dscp: 0, flows: 2, ...over,
  });

  /** A fast train and a regular train side by side on the same session; what the reflector answered meanwhile. */
  async function round(stall?: () => ChildProcess): Promise<{ trains: TrainResult[]; answered: number; arrived: number }> {
    const before = reflector.stats();
    const stopper = stall?.();
    const exited = stopper ? once(stopper, 'exit') : Promise.resolve();
    const [fast, regular] = await Promise.all([
      engine.runTrain(task({ count: 50, intervalMs: 1, timeoutMs: 1000, flows: 1 })),
      engine.runTrain(task()),
    ]);
    await exited;
    const after = reflector.stats();
    return { trains: [...fast, ...regular], answered: after.reflected - before.reflected, arrived: after.received - before.received };
  }

  function expectEveryAnswerCounted(result: { trains: TrainResult[]; answered: number; arrived: number }): void {
    expect(result.trains.map((t) => t.sent)).toEqual([50, 5, 5]);
    // Every request that reached the reflector was answered (nothing refused by its policy)...
    expect(result.answered).toBe(result.arrived);
    // ...and every answer is counted by the train it belongs to: none judged lost because it was read late.
    expect(result.trains.reduce((sum, t) => sum + t.received, 0)).toBe(result.answered);
    expect(result.trains.reduce((sum, t) => sum + t.duplicated, 0)).toBe(0);
  }

  it('counts every answered packet while the thread runs only in the gaps of two CPU-bound processes', async () => {
    await engine.runTrain(task({ count: 1, flows: 1 })); // starts the datapath thread
    const tid = datapathThread();
    const cpu = execFileSync('taskset', ['-c', '-p', tid], { encoding: 'utf8' }).split(':').at(-1)!.trim();
    const first = cpu.split(/[,-]/)[0]!;
    const busy = [0, 1].map(() => spawn('taskset', ['-c', first, process.execPath, '-e', 'for(;;){}'], { stdio: 'ignore' }));
    try {
      execFileSync('taskset', ['-c', '-p', first, tid], { stdio: 'ignore' });
      execFileSync('chrt', ['--idle', '-p', '0', tid]);
      for (let r = 0; r < 4; r++) expectEveryAnswerCounted(await round());
    } finally {
      execFileSync('chrt', ['--other', '-p', '0', tid]);
      execFileSync('taskset', ['-c', '-p', cpu, tid], { stdio: 'ignore' });
      for (const b of busy) b.kill('SIGKILL');
      await Promise.all(busy.map((b) => (b.exitCode === null && b.signalCode === null ? once(b, 'exit') : undefined)));
    }
  }, 120_000);

  it('counts every answered packet when the whole process is stopped for longer than the timeout mid-train', async () => {
    // Stopped at different points of the fast train: before its first packet, a few packets in, after its last.
    for (const afterMs of [0, 20, 60]) {
      expectEveryAnswerCounted(await round(() => spawn('sh', [
        '-c', `sleep ${afterMs / 1000}; kill -STOP ${process.pid}; sleep ${STOPPED_MS / 1000}; kill -CONT ${process.pid}`,
      ], { stdio: 'ignore' })));
    }
  }, 120_000);
});
