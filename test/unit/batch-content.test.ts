import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { batchContentSha256 } from '../../collector/index.js';
import type { ProbeBatch, TrainSample } from '../../protocol/index.js';
import { trainArraysJson } from '../../sql/index.js';

/** The digest ledgers already hold: sha256 of the records as one JSON text. */
function wholeTextSha256(batch: ProbeBatch): string {
  const content = JSON.stringify([batch.samples, batch.nic ?? [], batch.throughput ?? [], batch.diagnostics ?? []]);
  return createHash('sha256').update(content, 'utf8').digest('hex');
}

function sample(trainId: string, extra: Partial<TrainSample> = {}): TrainSample {
  return {
    trainId, dst: 'beta', engine: 'stamp', startedAtUs: 1_700_000_000_000_000, flow: 0, srcPort: 40000, dscp: 46,
    sent: 3, received: 3, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300.5, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300.5, 310, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [], ...extra,
  };
}

describe('batchContentSha256', () => {
  it('is the digest of the records as one JSON text (what stored ledgers hold), for every shape of batch', () => {
    const nic = [{ sampleId: 'n1', atUs: 1_700_000_000_000_000, interface: 'eth0', peer: null, intervalS: 10, speedMbps: 1000, operState: 'up',
      reset: false, rxBps: 1, txBps: 2, rxPps: 3, txPps: 4, rxErrorsPs: 0, txErrorsPs: 0, rxDropsPs: 0, txDropsPs: 0, utilisation: 0.001 }];
    const batches = [
      { type: 'batch', batchId: 'one', samples: [sample('a')] },
      { type: 'batch', batchId: 'many', samples: [sample('a'), sample('b', { trainId: 'b "quoted" \u00e9 \u{1F600}' }), sample('c', { rttMinUs: null }),
        sample('d', { senderTimestamping: 'kernel', reflectorTimestamping: undefined, fwdUs: [-1.5, 2], revUs: [3, 1e-7] })] },
      { type: 'batch', batchId: 'none', samples: [], nic },
      { type: 'batch', batchId: 'both', samples: [sample('a')], nic, createdAtUs: 5, spool: { batches: 1, bytes: 2, droppedTrains: 0 } },
    ] as unknown as ProbeBatch[];
    for (const b of batches) {
      expect(batchContentSha256(b), b.batchId).toBe(wholeTextSha256(b));
      // With each sample's delay arrays given as the JSON the insert reuses: the same digest.
      const arrays = b.samples.map((s) => trainArraysJson(s.rttsUs, s.fwdUs, s.revUs));
      expect(batchContentSha256(b, arrays), `${b.batchId}, arrays given`).toBe(wholeTextSha256(b));
    }
    // What a probe refreshes per send is not content.
    expect(batchContentSha256(batches[3]!)).toBe(batchContentSha256({ ...batches[3]!, createdAtUs: 9, spool: undefined } as ProbeBatch));
    // Any record changed is other content.
    expect(batchContentSha256(batches[0]!)).not.toBe(batchContentSha256({ ...batches[0]!, samples: [sample('a', { received: 2 })] }));
  });
});
