import { describe, expect, it } from 'vitest';
import { TRAIN_COLUMNS, trainArraysJson, trainRowsCompactBytes, type TrainRow, type TrainRowToInsert } from '../../sql/index.js';

function row(trainId: string, extra: Partial<TrainRow> = {}): TrainRow {
  return {
    ts: '2026-12-05 09:00:00.123456', src: 'alfa', dst: 'beta', engine: 'stamp', flow: 3, src_port: 40003, dscp: 46, batch_id: 'b-1', train_id: trainId,
    sent: 3, received: 2, lost: 1, duplicated: 0, reordered: 0, rtt_min_us: 300.5, rtt_median_us: 310, rtt_p99_us: 320, rtt_max_us: 320, jitter_us: 4.75,
    synced: true, error_estimate_us: 1000, rtts_us: [300.5, 310, 320], fwd_us: [150.25, -3], rev_us: [1e-7, 2e21], ...extra,
  };
}

/** What the insert body must be: each row's values in TRAIN_COLUMNS order, written by JSON.stringify, one line each. */
function expectedBody(rows: readonly TrainRow[]): string {
  const defaults: Partial<Record<(typeof TRAIN_COLUMNS)[number], unknown>> = { sender_ts: 'unknown', reflector_ts: 'unknown', self_load: 0 };
  return rows.map((r) => `${JSON.stringify(TRAIN_COLUMNS.map((c) => r[c] ?? defaults[c]))}\n`).join('');
}

describe('the trains insert body', () => {
  const rows = [
    row('plain'),
    row('nulls "quoted" \u00e9 \u{1F600}', { rtt_min_us: null, rtt_median_us: null, rtt_p99_us: null, rtt_max_us: null, jitter_us: null, rtts_us: [], fwd_us: [], rev_us: [] }),
    row('set', { sender_ts: 'kernel', reflector_ts: 'hardware', self_load: 1 }),
  ];

  it('is each row as JSONCompactEachRow, whether its arrays are written now or given already written', () => {
    const given: TrainRowToInsert[] = rows.map((r) => ({ ...r, arraysJson: trainArraysJson(r.rtts_us, r.fwd_us, r.rev_us) }));
    expect(trainRowsCompactBytes(rows).toString('utf8')).toBe(expectedBody(rows));
    expect(trainRowsCompactBytes(given).equals(Buffer.from(expectedBody(rows)))).toBe(true);
  });

  it('takes the given arrays text as it is (the caller vouches it is the row\'s arrays)', () => {
    const r: TrainRowToInsert = { ...row('given'), arraysJson: { rtts: '[1]', fwd: '[2]', rev: '[3]' } };
    expect(trainRowsCompactBytes([r]).toString('utf8')).toContain(',true,1000,[1],[2],[3],"unknown","unknown",0]\n');
  });
});
