/**
 * Without the ping program: the icmp engine says why (once, through the
 * scheduler's log), its trains are skipped rather than failed, and it
 * recovers by itself once ping appears on PATH.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { PlanTask } from '../../protocol/index.js';
import { findPing, IcmpEngine, PING_MISSING } from '../../probes/engines/icmp/index.js';
import { EngineUnavailableError, type TrainResult } from '../../probes/engines/types.js';
import { Scheduler } from '../../probes/scheduler.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';

const realPing = findPing();
const bin = mkdtempSync(join(tmpdir(), 'citymesh-nopath-'));
const savedPath = process.env.PATH;

const task: PlanTask = {
  id: 'icmp:a>b', engine: 'icmp', dst: 'b', host: '127.0.0.1', port: 0, schedule: '0 0 1 1 * *',
  count: 2, intervalMs: 200, timeoutMs: 1000, dscp: 0, flows: 1, sourceAddress: null,
};

describe.skipIf(skipReason(missingCommand('ping', 'iputils-ping')))('icmp engine without ping', () => {
  afterAll(() => {
    process.env.PATH = savedPath;
    rmSync(bin, { recursive: true, force: true });
  });

  it('says which package is missing, skips its trains with one log line, and recovers when ping appears', async () => {
    process.env.PATH = bin; // a PATH that holds no ping
    const engine = new IcmpEngine();
    expect(engine.unavailable()).toBe(PING_MISSING);
    expect(PING_MISSING).toContain('iputils-ping');
    await expect(engine.runTrain({ host: '127.0.0.1', port: 0, count: 1, intervalMs: 200, timeoutMs: 1000, dscp: 0, flows: 1 }))
      .rejects.toBeInstanceOf(EngineUnavailableError);

    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const results: TrainResult[][] = [];
    const scheduler = new Scheduler(new Map([['icmp', engine]]), (_task, r) => results.push(r), logger);
    try {
      await scheduler.runOnce(task);
      await scheduler.runOnce(task);
      expect(results).toHaveLength(0);
      expect(scheduler.engineStates()).toEqual({ icmp: PING_MISSING });
      const warnings = lines.filter((l) => l.msg.includes('icmp engine unavailable'));
      expect(warnings).toHaveLength(1); // once, not once a train
      expect(lines.some((l) => /stack|Error:/.test(l.msg))).toBe(false);

      symlinkSync(realPing!, join(bin, 'ping'));
      await scheduler.runOnce(task);
      expect(scheduler.engineStates()).toEqual({});
      expect(lines.some((l) => l.msg.includes('icmp engine available again'))).toBe(true);
      expect(results).toHaveLength(1);
      expect(results[0]![0]).toMatchObject({ engine: 'icmp', sent: 2, senderTimestamping: 'user', reflectorTimestamping: 'kernel' });
    } finally {
      await scheduler.stop();
      await engine.close();
    }
  });
});
