/**
 * Wire shapes of diagnostics on breach: what a probe reports after it ran a
 * traceroute, a path-MTU check and a fast STAMP train towards a peer, and what
 * the server sends to ask for one. Part of the probe protocol (protocol.ts
 * re-exports everything here); kept in its own file because it is one feature.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** Hops a traceroute may report; Debian's traceroute stops at 255, the probe asks for far fewer. */
export const MAX_DIAGNOSTIC_HOPS = 64;
/** Probes per hop (traceroute -q). */
export const MAX_PROBES_PER_HOP = 10;
/** Diagnostics runs one batch may carry. */
export const MAX_BATCH_DIAGNOSTICS = 50;

const idPattern = /^[A-Za-z0-9._:-]{8,64}$/;
const idMessage = 'must be 8-64 characters of A-Z a-z 0-9 . _ : -';
const micros = z.number().finite().min(0).max(60_000_000);
const error = z.string().min(1).max(2000).nullable();

/** One probe packet of one hop: who answered (null for `*`), how fast, and traceroute's flag (!H, !N, ...) if any. */
const hopProbeSchema = z
  .object({
    address: z.string().max(64).refine((a) => isIP(a) !== 0, 'must be an IPv4 or IPv6 address').nullable(),
    rttUs: micros.nullable(),
    flag: z.string().regex(/^![A-Za-z0-9<>-]{0,12}$/, 'must be a traceroute flag such as !H, !N, !X, !F-1400 or !<10>').nullable(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.address === null && p.rttUs !== null) ctx.addIssue({ code: 'custom', path: ['rttUs'], message: 'a probe nobody answered (*) has no RTT' });
  });

const hopSchema = z
  .object({
    ttl: z.number().int().min(1).max(255),
    probes: z.array(hopProbeSchema).min(1).max(MAX_PROBES_PER_HOP),
  })
  .strict();

export const tracerouteResultSchema = z
  .object({
    ok: z.boolean(),
    /** Why it failed or was cut short (tool missing, timeout, no route); null when it ran to completion. */
    error,
    /** e.g. "traceroute 2.1.2"; null when the tool is missing. */
    tool: z.string().max(64).nullable(),
    maxHops: z.number().int().min(1).max(255),
    /** The destination itself answered. */
    reached: z.boolean(),
    hops: z.array(hopSchema).max(MAX_DIAGNOSTIC_HOPS),
  })
  .strict()
  .superRefine((t, ctx) => {
    t.hops.forEach((h, i) => {
      if (i > 0 && h.ttl <= t.hops[i - 1]!.ttl) ctx.addIssue({ code: 'custom', path: ['hops', i, 'ttl'], message: 'hops must be in increasing TTL order' });
    });
    if (!t.ok && !t.error) ctx.addIssue({ code: 'custom', path: ['error'], message: 'a failed traceroute says why' });
  });

export const pathMtuResultSchema = z
  .object({
    ok: z.boolean(),
    error,
    tool: z.string().max(64).nullable(),
    /** Path MTU in bytes as discovered; null when none could be determined. */
    pmtu: z.number().int().min(68).max(65536).nullable(),
    /** TTL of the hop where the path MTU was found to drop below the local MTU; null when it did not. */
    dropAtTtl: z.number().int().min(1).max(255).nullable(),
    reached: z.boolean(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.ok && p.pmtu === null) ctx.addIssue({ code: 'custom', path: ['pmtu'], message: 'a successful path-MTU check reports the MTU' });
    if (!p.ok && !p.error) ctx.addIssue({ code: 'custom', path: ['error'], message: 'a failed path-MTU check says why' });
  });

export const fastTrainResultSchema = z
  .object({
    ok: z.boolean(),
    error,
    count: z.number().int().min(0).max(100_000),
    intervalMs: z.number().finite().min(0).max(1000),
    sent: z.number().int().min(0).max(100_000),
    received: z.number().int().min(0).max(100_000),
    rttMinUs: micros.nullable(),
    rttMedianUs: micros.nullable(),
    rttP99Us: micros.nullable(),
    rttMaxUs: micros.nullable(),
    jitterUs: micros.nullable(),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (f.received > f.sent) ctx.addIssue({ code: 'custom', path: ['received'], message: `received (${f.received}) exceeds sent (${f.sent})` });
    const stats = [f.rttMinUs, f.rttMedianUs, f.rttP99Us, f.rttMaxUs];
    if (f.received === 0 && stats.some((v) => v !== null)) ctx.addIssue({ code: 'custom', path: ['rttMinUs'], message: 'RTT statistics must be null when nothing was received' });
    if (f.received > 0 && stats.some((v) => v === null)) ctx.addIssue({ code: 'custom', path: ['rttMinUs'], message: 'RTT statistics are required when packets were received' });
    if (!f.ok && !f.error) ctx.addIssue({ code: 'custom', path: ['error'], message: 'a failed fast train says why' });
  });

/** One diagnostics run of a probe towards one peer. */
export const diagnosticSampleSchema = z
  .object({
    runId: z.string().regex(idPattern, idMessage),
    dst: z.string().min(1).max(32),
    trigger: z.enum(['breach', 'operator']),
    /** The operator request this run answers; null for a probe-local breach trigger. */
    requestId: z.string().regex(idPattern, idMessage).nullable(),
    /** Why it ran, in words (the breach seen, or who asked). */
    reason: z.string().min(1).max(500),
    startedAtUs: z.number().int().positive(),
    durationMs: z.number().int().min(0).max(600_000),
    traceroute: tracerouteResultSchema,
    pathMtu: pathMtuResultSchema,
    fastTrain: fastTrainResultSchema,
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.trigger === 'operator' && d.requestId === null) ctx.addIssue({ code: 'custom', path: ['requestId'], message: 'an operator-triggered run names its request' });
    if (d.trigger === 'breach' && d.requestId !== null) ctx.addIssue({ code: 'custom', path: ['requestId'], message: 'a breach-triggered run has no request id' });
  });

export type DiagnosticSampleRecord = z.infer<typeof diagnosticSampleSchema>;
export type TracerouteResult = z.infer<typeof tracerouteResultSchema>;
export type PathMtuResult = z.infer<typeof pathMtuResultSchema>;
export type FastTrainResult = z.infer<typeof fastTrainResultSchema>;

/** Server → probe: run diagnostics towards `dst` now (the probe ignores a request id it has already run). */
export interface DiagnoseRequest {
  type: 'diagnose';
  requestId: string;
  dst: string;
  /** Who asked, for the stored reason. */
  requestedBy: string;
}

/** What a plan task's trains are judged against on the probe (the link's SLA targets). */
export interface LinkTarget {
  /** p99 RTT above this (ms) is a breach. */
  rttP99Ms: number;
  /** Loss ratio above this is a breach. */
  lossRatioMax: number;
}

/** How a probe runs diagnostics on breach; part of its plan. */
export interface DiagnosticsPolicy {
  enabled: boolean;
  /** Consecutive breaching trains towards a peer before diagnostics run. */
  breachTrains: number;
  /** At most one breach-triggered run per peer in this many seconds. */
  minIntervalS: number;
  /** traceroute -m. */
  maxHops: number;
  /** The fast STAMP train: packets and spacing. */
  fastTrainCount: number;
  fastTrainIntervalMs: number;
}
