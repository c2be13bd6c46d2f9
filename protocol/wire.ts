/**
 * The probe <-> collector wire protocol (JSON over WebSocket). The collector
 * owns it because it defines what it accepts; probes import these types and
 * schemas from here, so the protocol is written exactly once.
 *
 *   probe                         collector
 *   hello {centre, token, version}  ->
 *                                 <- plan {tasks, reflector, batchIntervalMs}
 *   batch {batchId, samples[]}      ->
 *                                 <- ack {batchId, stored}     (only once stored)
 *                                 <- error {code, error, field?, batchId?}
 */
import { z } from 'zod';
import { isStorableText, unstorableText } from './text.js';
import { checkTrainSample } from './train-check.js';
import { diagnosticSampleSchema, MAX_BATCH_DIAGNOSTICS, type DiagnoseRequest, type DiagnosticsPolicy, type LinkTarget } from './diagnostics.js';

export * from './diagnostics.js';

export const PROTOCOL_VERSION = 1;
/** Largest batch the collector accepts; larger ones are refused whole. */
export const MAX_BATCH_SAMPLES = 1000;
/** Largest WebSocket message accepted, bytes (a full batch of 100-packet trains fits). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Longest train a sample may describe. */
export const MAX_TRAIN_PACKETS = 10_000;

const micros = z.number().finite().min(0).max(60_000_000);

/**
 * How a train's timestamps were taken at each end: by the NIC, by the kernel
 * (software stamps, or a clock read in the native datapath right around the
 * system call), in JavaScript on the event loop (user), or not known.
 */
/** The latency engines a probe runs (README "Engines"); every other layer takes its names from here. */
export const ENGINES = ['stamp', 'icmp'] as const;
export type ProbeEngineName = (typeof ENGINES)[number];

export const TIMESTAMPING_MODES = ['hardware', 'kernel', 'user', 'unknown'] as const;
export type Timestamping = (typeof TIMESTAMPING_MODES)[number];
const timestamping = z.enum(TIMESTAMPING_MODES);
const count = z.number().int().min(0).max(MAX_TRAIN_PACKETS);

export const trainSampleSchema = z
  .object({
    /** Assigned by the probe when the train is measured; unique, so duplicates are provable. */
    trainId: z.string().regex(/^[A-Za-z0-9._:-]{8,64}$/, 'must be 8-64 characters of A-Z a-z 0-9 . _ : -'),
    dst: z.string().min(1).max(32),
    engine: z.enum(ENGINES),
    startedAtUs: z.number().int().positive(),
    flow: z.number().int().min(0).max(63),
    srcPort: z.number().int().min(0).max(65535),
    dscp: z.number().int().min(0).max(63),
    sent: count.min(1),
    received: count,
    lost: count,
    duplicated: count,
    reordered: count,
    rttMinUs: micros.nullable(),
    rttMedianUs: micros.nullable(),
    rttP99Us: micros.nullable(),
    rttMaxUs: micros.nullable(),
    jitterUs: micros.nullable(),
    rttsUs: z.array(micros).max(MAX_TRAIN_PACKETS),
    synced: z.boolean(),
    errorEstimateUs: z.number().finite().min(0).max(3_600_000_000),
    fwdUs: z.array(z.number().finite().min(-60_000_000).max(60_000_000)).max(MAX_TRAIN_PACKETS),
    revUs: z.array(z.number().finite().min(-60_000_000).max(60_000_000)).max(MAX_TRAIN_PACKETS),
    /** Absent from probes older than the native datapath: stored as `unknown`. */
    senderTimestamping: timestamping.optional(),
    /** The probe sends `unknown` for a plan peer; the server fills in what that peer's probe reports. */
    reflectorTimestamping: timestamping.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.received > s.sent) ctx.addIssue({ code: 'custom', path: ['received'], message: `received (${s.received}) exceeds sent (${s.sent})` });
    if (s.lost !== s.sent - s.received) ctx.addIssue({ code: 'custom', path: ['lost'], message: `lost must equal sent - received (${s.sent - s.received}), got ${s.lost}` });
    if (s.rttsUs.length !== s.received) ctx.addIssue({ code: 'custom', path: ['rttsUs'], message: `must hold one RTT per received packet (${s.received}), got ${s.rttsUs.length}` });
    const stats = [s.rttMinUs, s.rttMedianUs, s.rttP99Us, s.rttMaxUs];
    if (s.received === 0 && stats.some((v) => v !== null)) ctx.addIssue({ code: 'custom', path: ['rttMinUs'], message: 'RTT statistics must be null when nothing was received' });
    if (s.received > 0 && stats.some((v) => v === null)) ctx.addIssue({ code: 'custom', path: ['rttMinUs'], message: 'RTT statistics are required when packets were received' });
    if (s.synced && (s.fwdUs.length !== s.received || s.revUs.length !== s.received)) ctx.addIssue({ code: 'custom', path: ['fwdUs'], message: 'synced trains carry one forward and one reverse delay per received packet' });
    if (!s.synced && (s.fwdUs.length > 0 || s.revUs.length > 0)) ctx.addIssue({ code: 'custom', path: ['fwdUs'], message: 'one-way delays are only accepted from synchronised trains' });
  });

export type TrainSample = z.infer<typeof trainSampleSchema>;

const rate = z.number().finite().min(0).nullable();

/** One NIC sampling interval of one interface, rates computed on the probe. */
export const nicSampleSchema = z
  .object({
    sampleId: z.string().regex(/^[A-Za-z0-9._:-]{8,64}$/, 'must be 8-64 characters of A-Z a-z 0-9 . _ : -'),
    interface: z.string().regex(/^[A-Za-z0-9._@:-]{1,32}$/, 'must be an interface name'),
    /** The centre at the other end of the link this interface carries, or null. */
    peer: z.string().min(1).max(32).nullable(),
    atUs: z.number().int().positive(),
    intervalS: z.number().finite().positive().max(3600),
    speedMbps: z.number().int().positive().max(10_000_000).nullable(),
    operState: z.string().max(32).nullable(),
    reset: z.boolean(),
    rxBps: rate, txBps: rate, rxPps: rate, txPps: rate,
    rxErrorsPs: rate, txErrorsPs: rate, rxDropsPs: rate, txDropsPs: rate,
    /** Ratio of the negotiated speed, 0..1 (a little above 1 when counters and clock disagree). */
    utilisation: z.number().finite().min(0).max(2).nullable(),
  })
  .strict();

export type NicSampleRecord = z.infer<typeof nicSampleSchema>;

/** One throughput test run by this probe as the client. */
export const throughputSampleSchema = z
  .object({
    testId: z.string().regex(/^[A-Za-z0-9._:-]{8,64}$/, 'must be 8-64 characters of A-Z a-z 0-9 . _ : -'),
    dst: z.string().min(1).max(32),
    trigger: z.enum(['schedule', 'operator', 'cli']),
    startedAtUs: z.number().int().positive(),
    /** When the test ended on the probe's clock: with startedAtUs, the span it loaded the link (absent from older probes). */
    endedAtUs: z.number().int().positive().optional(),
    engine: z.enum(['iperf3', 'native']),
    engineVersion: z.string().max(64).nullable(),
    ok: z.boolean(),
    error: z.string().max(2000).nullable(),
    direction: z.enum(['forward', 'reverse', 'bidir']),
    streams: z.number().int().min(1).max(128),
    seconds: z.number().finite().positive().nullable(),
    /** Goodput client → server and server → client, bit/s; null when that direction was not measured or failed. */
    forwardBps: rate,
    reverseBps: rate,
    retransmits: z.number().int().min(0).nullable(),
    cpuLocalPct: z.number().finite().min(0).nullable(),
    cpuRemotePct: z.number().finite().min(0).nullable(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.ok && t.forwardBps === null && t.reverseBps === null) {
      ctx.addIssue({ code: 'custom', path: ['forwardBps'], message: 'a successful test reports at least one direction' });
    }
    if (!t.ok && (t.forwardBps !== null || t.reverseBps !== null)) {
      ctx.addIssue({ code: 'custom', path: ['forwardBps'], message: 'a failed test carries no rates (a failure is never a zero)' });
    }
    if (!t.ok && !t.error) ctx.addIssue({ code: 'custom', path: ['error'], message: 'a failed test says why' });
    if (t.endedAtUs !== undefined && t.endedAtUs < t.startedAtUs) {
      ctx.addIssue({ code: 'custom', path: ['endedAtUs'], message: 'a test ends at or after it starts' });
    }
  });

export type ThroughputSampleRecord = z.infer<typeof throughputSampleSchema>;

/**
 * How a probe measures, as it reports it in its hello and with every batch:
 * its STAMP datapath (native, or the JavaScript fallback and why), how its
 * reflector takes T2, the engines it cannot run and why, and its reflector's
 * counters (every datagram received: reflected, or dropped by reason).
 */
export const probeReportSchema = z
  .object({
    datapath: z.enum(['native', 'js']),
    datapathReason: z.string().max(1000).nullable(),
    reflectorTimestamping: timestamping,
    enginesUnavailable: z.record(z.string().regex(/^(stamp|icmp)$/, 'must be an engine name'), z.string().max(1000)),
    reflector: z
      .object({
        received: z.number().int().min(0),
        reflected: z.number().int().min(0),
        drops: z.record(z.string().regex(/^[a-zA-Z]{1,32}$/), z.number().int().min(0)),
      })
      .strict()
      .nullable(),
  })
  .strict();

export type ProbeReport = z.infer<typeof probeReportSchema>;

const helloSchema = z
  .object({
    type: z.literal('hello'),
    centre: z.string().min(1).max(32),
    token: z.string().min(1).max(512),
    version: z.string().min(1).max(64),
    protocol: z.literal(PROTOCOL_VERSION).optional(),
    /**
     * `citymesh probe --check`: verify the credentials and get the plan, nothing
     * else. Not counted as the centre's connection, so checking a host whose probe
     * is running neither hits the connection limit nor takes its throughput requests.
     */
    check: z.literal(true).optional(),
    report: probeReportSchema.optional(),
  })
  .strict();

/** What a probe reports about its disk spool with every batch (exported as metrics). */
const spoolReportSchema = z
  .object({
    batches: z.number().int().min(0),
    bytes: z.number().int().min(0),
    droppedTrains: z.number().int().min(0),
  })
  .strict();

const batchObjectSchema = z
  .object({
    type: z.literal('batch'),
    /** When the probe sealed the batch, Unix µs: the acknowledgement lag is measured from here. */
    createdAtUs: z.number().int().positive().optional(),
    spool: spoolReportSchema.optional(),
    report: probeReportSchema.optional(),
    batchId: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 . _ : -'),
    samples: z
      .array(z.unknown())
      .max(MAX_BATCH_SAMPLES, `a batch holds at most ${MAX_BATCH_SAMPLES} samples`)
      .pipe(z.array(trainSampleSchema)),
    nic: z
      .array(z.unknown())
      .max(MAX_BATCH_SAMPLES, `a batch holds at most ${MAX_BATCH_SAMPLES} NIC samples`)
      .pipe(z.array(nicSampleSchema))
      .optional(),
    throughput: z.array(throughputSampleSchema).max(100, 'a batch holds at most 100 throughput tests').optional(),
    diagnostics: z
      .array(z.unknown())
      .max(MAX_BATCH_DIAGNOSTICS, `a batch holds at most ${MAX_BATCH_DIAGNOSTICS} diagnostics runs`)
      .pipe(z.array(diagnosticSampleSchema))
      .optional(),
  })
  .strict();

const batchSchema = batchObjectSchema
  .refine((b) => b.samples.length + (b.nic?.length ?? 0) + (b.throughput?.length ?? 0) + (b.diagnostics?.length ?? 0) > 0, {
    path: ['samples'],
    message: 'a batch holds at least one sample',
  });

/** The client probe reports that a test it was asked to run has finished (its result travels in a batch). */
const throughputDoneSchema = z
  .object({
    type: z.literal('throughput_done'),
    testId: z.string().regex(/^[A-Za-z0-9._:-]{8,64}$/),
    ok: z.boolean(),
    error: z.string().max(2000).nullable().optional(),
    /** The result's figures, so the test's status can show them before its batch is stored. */
    forwardBps: z.number().finite().min(0).nullable().optional(),
    reverseBps: z.number().finite().min(0).nullable().optional(),
  })
  .strict();

export type ProbeHello = z.infer<typeof helloSchema>;
export type ProbeBatch = z.infer<typeof batchSchema>;
export type ThroughputDone = z.infer<typeof throughputDoneSchema>;
export type ProbeMessage = ProbeHello | ProbeBatch | ThroughputDone;

/** What one probe is asked to measure; built from the topology by the server. */
export interface ProbePlan {
  type: 'plan';
  centre: string;
  protocol: number;
  batchIntervalMs: number;
  reflector: { listenAddress: string; port: number; policy?: ReflectorPlanPolicy };
  tasks: PlanTask[];
  /** The throughput server this probe runs for its peers' tests, or null. */
  throughputServer: { engine: 'iperf3' | 'native' | 'auto'; port: number; listenAddress: string } | null;
  /** Interfaces to sample passively, and the link each carries. */
  nic: { intervalS: number; interfaces: { name: string; peer: string | null }[] } | null;
  /** Diagnostics on breach (traceroute, path MTU, fast train); absent or null: the probe never runs them on its own. */
  diagnostics?: DiagnosticsPolicy | null;
}

/**
 * Whom the probe's reflector answers. `allow` holds addresses, CIDR prefixes
 * and peer host names (the probe resolves names); ignored when allowAny.
 */
export interface ReflectorPlanPolicy {
  allowAny: boolean;
  allow: string[];
  ratePps: number;
  burst: number;
}

/**
 * How long past its planned duration (seconds + omitSeconds) a probe lets a
 * throughput test run before killing it: also how long the server assumes a
 * test that never reported back loaded its link.
 */
export const THROUGHPUT_KILL_SLACK_MS = 20_000;

/** The server asks a probe (the client end of a link) to run one throughput test now. */
export interface ThroughputRun {
  type: 'throughput_run';
  testId: string;
  trigger: 'schedule' | 'operator';
  dst: string;
  host: string;
  port: number;
  engine: 'iperf3' | 'native' | 'auto';
  seconds: number;
  omitSeconds: number;
  streams: number;
  direction: 'forward' | 'reverse' | 'bidir';
  sourceAddress: string | null;
}

export interface PlanTask {
  /** Stable id, e.g. "stamp:lingang>jinshan". */
  id: string;
  engine: ProbeEngineName;
  dst: string;
  host: string;
  port: number;
  schedule: string;
  count: number;
  intervalMs: number;
  timeoutMs: number;
  dscp: number;
  flows: number;
  sourceAddress: string | null;
  /** The link's targets: trains beyond them count towards diagnostics on breach. */
  target?: LinkTarget;
}

export interface CollectorAck {
  type: 'ack';
  batchId: string;
  stored: number;
}

export type ErrorCode =
  | 'bad_json'
  | 'bad_message'
  | 'unknown_type'
  | 'not_authenticated'
  | 'already_authenticated'
  | 'bad_token'
  | 'unknown_centre'
  | 'unknown_destination'
  | 'too_large'
  | 'duplicate_train'
  | 'busy'
  | 'rate_limited'
  | 'too_many_connections'
  | 'store_unavailable'
  /** The batch id was stored before with other content: send the records again under a new id. */
  | 'batch_conflict';

export interface CollectorError {
  type: 'error';
  code: ErrorCode;
  /** Human-readable reason, naming the offending field. */
  error: string;
  field?: string;
  batchId?: string;
  /**
   * With `busy` when the store is behind: in how many milliseconds the server
   * expects to admit a batch (its queue drained to what it takes). A probe
   * holds the batch that long (plus jitter) instead of doubling its back-off;
   * without it, it doubles.
   */
  retryAfterMs?: number;
}

export type CollectorMessage = ProbePlan | CollectorAck | CollectorError | ThroughputRun | DiagnoseRequest;

export type ParseResult =
  | { ok: true; message: ProbeMessage }
  | { ok: false; code: ErrorCode; error: string; field?: string; batchId?: string };

/** Parse and validate one text frame from a probe. Never throws. */
export function parseProbeMessage(text: string): ParseResult {
  const json = parseJsonObject(text);
  if (!json.ok) return json;
  if (json.value.type === 'batch') {
    const batch = parseBatchFast(json.value);
    if (batch) return { ok: true, message: batch };
  }
  return parseBySchema(json.value);
}

/**
 * parseProbeMessage without the hand-written fast path: the schema alone. The
 * reference the fast path must always agree with (test/unit/train-check.test.ts).
 */
export function parseProbeMessageBySchema(text: string): ParseResult {
  const json = parseJsonObject(text);
  return json.ok ? parseBySchema(json.value) : json;
}

function parseJsonObject(text: string): { ok: true; value: Record<string, unknown> } | (ParseResult & { ok: false }) {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, code: 'bad_json', error: `message is not valid JSON: ${(error as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_message', error: 'message must be a JSON object with a "type" field', field: 'type' };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

/**
 * A batch whose train samples all pass the hand-written check (train-check.ts);
 * the rest of the batch (ids, spool, report, NIC, throughput, diagnostics:
 * small) through the schema as always. Null on any doubt: the caller then
 * parses the whole message by schema, which names the problem.
 */
function parseBatchFast(value: Record<string, unknown>): ProbeBatch | null {
  const samples = value.samples;
  if (!Array.isArray(samples) || samples.length > MAX_BATCH_SAMPLES) return null;
  const checked: TrainSample[] = new Array<TrainSample>(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const sample = checkTrainSample(samples[i]);
    if (!sample) return null;
    checked[i] = sample;
  }
  const rest = { ...value, samples: [] };
  if (unstorableText(rest)) return null;
  const parsed = batchObjectSchema.safeParse(rest);
  if (!parsed.success) return null;
  const batch = parsed.data;
  if (checked.length + (batch.nic?.length ?? 0) + (batch.throughput?.length ?? 0) + (batch.diagnostics?.length ?? 0) === 0) return null;
  batch.samples = checked;
  return batch;
}

/** The schema's answer for a parsed message: the message, or its first problem, naming the field. */
function parseBySchema(value: Record<string, unknown>): ParseResult {
  const type = value.type;
  const unstorable = unstorableText(value);
  if (unstorable) {
    const batchId = (value as { batchId?: unknown }).batchId;
    return {
      ok: false, code: 'bad_message', error: `${unstorable.field}: ${unstorable.problem}`, field: unstorable.field,
      ...(typeof batchId === 'string' && isStorableText(batchId) ? { batchId } : {}),
    };
  }
  const schema = type === 'hello' ? helloSchema : type === 'batch' ? batchSchema : type === 'throughput_done' ? throughputDoneSchema : null;
  if (!schema) {
    return {
      ok: false,
      code: 'unknown_type',
      error: `unknown message type ${describeValue(type)}; expected "hello", "batch" or "throughput_done"`,
      field: 'type',
    };
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  const batchId = typeof (value as { batchId?: unknown }).batchId === 'string' ? (value as { batchId: string }).batchId : undefined;
  const tooLarge = issue.code === 'too_big' && field === 'samples';
  return {
    ok: false,
    code: tooLarge ? 'too_large' : 'bad_message',
    error: `${field || 'message'}: ${issue.message}`,
    field,
    ...(batchId ? { batchId } : {}),
  };
}

/** A short, safe description of an untrusted value (never recursion over attacker-chosen depth). */
function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'undefined' ? 'missing' : `a ${typeof value}`;
}

/**
 * How far from now a measurement may be dated: a spooled sample can be old
 * (up to the raw retention), a future one only by clock skew. Outside this the
 * row would expire on insert or wrap ClickHouse's DateTime, so it is refused.
 */
export const ACCEPTED_PAST_US = 399 * 86_400e6;
export const ACCEPTED_FUTURE_US = 10 * 60e6;

/** Oldest and newest time any record of the batch is dated (µs); null for an empty batch. */
export function batchTimeSpanUs(batch: ProbeBatch): { oldestUs: number; newestUs: number } | null {
  let oldestUs = Infinity;
  let newestUs = -Infinity;
  const see = (us: number) => {
    if (us < oldestUs) oldestUs = us;
    if (us > newestUs) newestUs = us;
  };
  for (const s of batch.samples) see(s.startedAtUs);
  for (const n of batch.nic ?? []) see(n.atUs);
  for (const t of batch.throughput ?? []) see(t.startedAtUs);
  for (const d of batch.diagnostics ?? []) see(d.startedAtUs);
  return oldestUs === Infinity ? null : { oldestUs, newestUs };
}

/** The first sample dated outside the accepted window, as a field path and reason; null when all are fine. */
export function outOfWindow(batch: ProbeBatch, nowUs: number): { field: string; error: string } | null {
  const check = (field: string, us: number) => {
    if (us < nowUs - ACCEPTED_PAST_US || us > nowUs + ACCEPTED_FUTURE_US) {
      const when = us > -8.64e18 && us < 8.64e18 ? new Date(us / 1000).toISOString() : `${us} µs`;
      return { field, error: `${field}: ${when} is outside the accepted window (the last 399 days up to 10 minutes ahead); is the probe's clock set?` };
    }
    return null;
  };
  for (const [i, s] of batch.samples.entries()) {
    const bad = check(`samples[${i}].startedAtUs`, s.startedAtUs);
    if (bad) return bad;
  }
  for (const [i, n] of (batch.nic ?? []).entries()) {
    const bad = check(`nic[${i}].atUs`, n.atUs);
    if (bad) return bad;
  }
  for (const [i, t] of (batch.throughput ?? []).entries()) {
    const bad = check(`throughput[${i}].startedAtUs`, t.startedAtUs);
    if (bad) return bad;
  }
  for (const [i, d] of (batch.diagnostics ?? []).entries()) {
    const bad = check(`diagnostics[${i}].startedAtUs`, d.startedAtUs);
    if (bad) return bad;
  }
  return null;
}
