/**
 * The probe's disk spool on a real filesystem: what was appended survives a
 * crash, a journal sealed just before a crash is not sealed twice, a torn
 * last line is dropped, and a full spool drops the oldest with a counted gap.
 */
import { mkdtempSync, readdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TrainSample } from '../../protocol/index.js';
import { Spool } from '../../probes/spool.js';

let n = 0;
function sample(): TrainSample {
  n++;
  return {
    trainId: `spool-test-${process.pid}-${n}`, dst: 'b', engine: 'stamp', startedAtUs: 1_700_000_000_000_000 + n, flow: 0, srcPort: 1, dscp: 0,
    sent: 2, received: 2, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 10, rttMedianUs: 15, rttP99Us: 20, rttMaxUs: 20, jitterUs: 10,
    rttsUs: [10, 20], synced: false, errorEstimateUs: 0, fwdUs: [], revUs: [],
  };
}

const fresh = () => mkdtempSync(join(tmpdir(), 'citymesh-spool-test-'));

describe('spool', () => {
  it('seals appended trains into a batch that leaves only when acknowledged', async () => {
    const dir = fresh();
    const spool = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    const samples = [sample(), sample()];
    await Promise.all(samples.map((s) => spool.append(s)));
    await spool.seal();
    const [entry] = spool.pending();
    expect(entry!.id).toMatch(/^a\.[0-9a-z-]+$/);
    const batch = await spool.read(entry!.id);
    expect(batch!.samples.map((s) => s.trainId)).toEqual(samples.map((s) => s.trainId));
    await spool.ack(entry!.id);
    expect(spool.pending()).toHaveLength(0);
    expect(readdirSync(dir).filter((f) => f.startsWith('batch-'))).toEqual([]);
  });

  it('a seal with nothing new resolves only after a seal under way has written its batch (a stop after the periodic seal)', async () => {
    const spool = Spool.open({ dir: fresh(), centre: 'a', maxBytes: 1e6 });
    await spool.append(sample());
    const periodic = spool.seal();
    await spool.seal(); // the stop's: the journal is already taken
    expect(spool.pending()).toHaveLength(1);
    await periodic;
  });

  it('recovers trains appended before a crash as the batch they would have become', async () => {
    const dir = fresh();
    const before = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    const samples = [sample(), sample(), sample()];
    for (const s of samples) await before.append(s);
    // no seal: the process "dies" here
    const after = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    expect(after.pending()).toHaveLength(1);
    const batch = await after.read(after.pending()[0]!.id);
    expect(batch!.samples.map((s) => s.trainId)).toEqual(samples.map((s) => s.trainId));
    expect(readdirSync(dir).filter((f) => f.startsWith('journal-'))).toEqual([]);
    // Reopening again changes nothing: the id is stable, so a resend is deduplicated.
    const again = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    expect(again.pending().map((b) => b.id)).toEqual(after.pending().map((b) => b.id));
  });

  it('drops a line torn by a crash mid-write, keeping every complete one', () => {
    const dir = fresh();
    const [first, second] = [sample(), sample()];
    const journal = join(dir, 'journal-0000000001-0000-aaaaaa.jsonl');
    writeFileSync(journal, JSON.stringify(first) + '\n');
    appendFileSync(journal, JSON.stringify(second).slice(0, 40));
    const spool = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    expect(spool.pending()).toHaveLength(1);
    return spool.read(spool.pending()[0]!.id).then((batch) => {
      expect(batch!.samples.map((s) => s.trainId)).toEqual([first!.trainId]);
    });
  });

  it('does not seal a journal twice when the crash came after the batch was written', () => {
    const dir = fresh();
    const s = sample();
    const gen = '0000000002-0000-bbbbbb';
    writeFileSync(join(dir, `batch-${gen}.json`), JSON.stringify({ type: 'batch', batchId: `a.${gen}`, samples: [s] }));
    writeFileSync(join(dir, `journal-${gen}.jsonl`), JSON.stringify(s) + '\n');
    const spool = Spool.open({ dir, centre: 'a', maxBytes: 1e6 });
    expect(spool.pending().map((b) => b.id)).toEqual([`a.${gen}`]);
  });

  it('when full, drops the oldest batches and counts them as a gap that survives restarts', async () => {
    const dir = fresh();
    const spool = Spool.open({ dir, centre: 'a', maxBytes: 1500 });
    for (let i = 0; i < 5; i++) {
      await spool.append(sample());
      await spool.append(sample());
      await spool.seal();
    }
    const stats = spool.stats();
    expect(stats.bytes).toBeLessThanOrEqual(1500);
    expect(stats.droppedBatches).toBe(5 - stats.batches);
    expect(stats.droppedTrains).toBe(2 * stats.droppedBatches);
    expect(stats.droppedTrains).toBeGreaterThan(0);
    const reopened = Spool.open({ dir, centre: 'a', maxBytes: 1500 });
    expect(reopened.stats()).toMatchObject({ droppedTrains: stats.droppedTrains, batches: stats.batches });
  });
});
