import { describe, expect, it } from 'vitest';
import { peekBatchId } from '../../collector/frames.js';

describe('peekBatchId (a batch id read from a message head, before parsing)', () => {
  it('reads the id where probes write it, spaces allowed', () => {
    expect(peekBatchId('{"type":"batch","batchId":"c01-000042","samples":[')).toBe('c01-000042');
    expect(peekBatchId(' { "type" : "batch" ,\n "batchId" : "a.b_c:d-1" , "samples": [')).toBe('a.b_c:d-1');
  });

  it('reads nothing it cannot be sure of: another type, the id elsewhere, escapes, ids outside the protocol alphabet or too long', () => {
    expect(peekBatchId('{"type":"hello","batchId":"x"}')).toBeUndefined();
    expect(peekBatchId('{"samples":[],"type":"batch","batchId":"x"}')).toBeUndefined();
    expect(peekBatchId('{"type":"batch","batchId":"a\\"b"}')).toBeUndefined();
    expect(peekBatchId('{"type":"batch","batchId":"a b"}')).toBeUndefined();
    expect(peekBatchId('{"type":"batch","batchId":""}')).toBeUndefined();
    expect(peekBatchId(`{"type":"batch","batchId":"${'a'.repeat(129)}"}`)).toBeUndefined();
    expect(peekBatchId(`{"type":"batch","batchId":"${'a'.repeat(128)}"}`)).toBe('a'.repeat(128));
    expect(peekBatchId('{"type":"batch","batchId":"unterminated')).toBeUndefined();
  });
});
