/**
 * The topology file's schema: centres, links, SLA policy and probing plan.
 * Keys are snake_case as written in YAML; loadTopology() turns the checked
 * document into the camelCase Topology the rest of the code uses.
 */
import nodeCron from 'node-cron';
import { isIP } from 'node:net';
import { z } from 'zod';
import { alertsSchema } from './alerts.js';
import { ENGINES } from '../protocol/index.js';

const id = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be lower-case letters, digits or "-", starting with a letter (max 32)');

const cron = z
  .string()
  .min(1)
  .refine((value) => value.trim().split(/\s+/).length === 6 && nodeCron.validate(value), {
    message: 'must be a valid 6-field cron expression with seconds, e.g. "*/10 * * * * *"',
  });

const port = z.number().int().min(1).max(65535);
const dscp = z.number().int().min(0).max(63);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters (sha-256 of the token)');
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name');
/**
 * One token, or a list while a token is rotated: add the new one, roll the
 * probes (or people) over to it, then remove the old one. Every listed token
 * is accepted; token_sha256 and token_env may be combined.
 */
const tokenSha256s = z.union([sha256Hex, z.array(sha256Hex).min(1, 'must list at least one sha-256')], {
  error: 'must be the sha-256 (64 hex) of a token, or a list of them',
});
const tokenEnvs = z.union([envName, z.array(envName).min(1, 'must list at least one variable')], {
  error: 'must be an environment variable name, or a list of them',
});

/** Percentile levels the 1-minute rollup keeps t-digest states for. */
export const SLA_PERCENTILES = [0.5, 0.9, 0.95, 0.99] as const;
const slaPercentile = z
  .number()
  .refine((v) => (SLA_PERCENTILES as readonly number[]).includes(v), `must be one of ${SLA_PERCENTILES.join(', ')}`);

function isTimeZone(value: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}

export const slaPolicySchema = z
  .object({
    rtt_p99_target_ms: z.number().positive().default(2),
    /**
     * The "1 ms city circle": each direction's p99 one-way delay, judged in the
     * live path status (measured when both clocks are synchronised, else RTT / 2).
     */
    one_way_target_ms: z.number().positive().default(1),
    loss_ratio_max: z.number().min(0).max(1).default(0.001),
    /**
     * The city's promise for every direct link, Gb/s: a link's capacity_gbps may
     * not be below it (a config error), and a link that declares none is
     * committed to exactly this.
     */
    capacity_min_gbps: z.number().positive().default(100),
    throughput_floor_gbps: z.number().positive().default(95),
    coverage_min: z.number().min(0).max(1).default(0.99),
    timezone: z.string().refine(isTimeZone, 'must be an IANA time zone, e.g. "Asia/Shanghai"').default('Asia/Shanghai'),
    /** Per-minute percentile judged against the RTT target (one of the levels the 1-minute rollup keeps). */
    percentile: slaPercentile.default(0.99),
    /** Share of assessed minutes that must meet the latency target for the month to pass. */
    latency_minutes_min: z.number().min(0).max(1).default(0.999),
    /** Share of covered minutes in which the link must carry probe traffic both ways. */
    availability_min: z.number().min(0).max(1).default(0.999),
    /** Which probe engine's trains are SLA evidence (STAMP: reflector time removed, DSCP-marked). */
    engine: z.enum(ENGINES).default('stamp'),
    /** Monthly reports are finalised (frozen and signed) automatically this long after the month ends. */
    finalise_grace_hours: z.number().min(0).max(24 * 31).default(72),
    auto_finalise: z.boolean().default(true),
  })
  .strict();

/** IP address or CIDR prefix (checked again, with the same parser, where the reflector applies it). */
const prefix = z.string().refine((v) => {
  const [address = '', bits, extra] = v.trim().split('/');
  const family = isIP(address);
  const n = bits === undefined ? 0 : Number(bits);
  return family !== 0 && extra === undefined && Number.isInteger(n) && n >= 0 && n <= (family === 6 ? 128 : 32);
}, 'must be an IP address or CIDR prefix, e.g. 127.0.0.0/8 or 2001:db8::/32');

/**
 * Whom each probe's reflector answers. `peers` (default): only the centres it
 * links to (their probe host and source address), plus `allow`; `any`: every
 * source, e.g. a router's TWAMP-Light/STAMP sender. Always limited per source
 * address to `rate_limit_pps` replies per second (bucket depth `burst`).
 */
const reflectorSchema = z
  .object({
    answer: z.enum(['peers', 'any']).default('peers'),
    allow: z.array(prefix).default([]),
    rate_limit_pps: z.number().min(0).max(1_000_000).default(5000),
    burst: z.number().int().min(1).max(1_000_000).default(1000),
  })
  .strict();

const stampProbingSchema = z
  .object({
    reflector: reflectorSchema.default(reflectorSchema.parse({})),
    schedule: cron.default('*/10 * * * * *'),
    count: z.number().int().min(1).max(10_000).default(10),
    interval_ms: z.number().min(1).max(60_000).default(20),
    timeout_ms: z.number().int().min(10).max(60_000).default(1000),
    flows: z.number().int().min(1).max(64).default(1),
    dscp: dscp.default(0),
  })
  .strict();

const icmpProbingSchema = z
  .object({
    enabled: z.boolean().default(true),
    schedule: cron.default('*/30 * * * * *'),
    count: z.number().int().min(1).max(1000).default(5),
    interval_ms: z.number().min(2).max(60_000).default(200),
    timeout_ms: z.number().int().min(1000).max(60_000).default(2000),
    dscp: dscp.default(0),
  })
  .strict();

/**
 * Throughput tests load production links: short, scheduled, never two on one
 * link or endpoint at once (the server arbitrates), spread over `spread_s`.
 */
const throughputProbingSchema = z
  .object({
    enabled: z.boolean().default(false),
    schedule: cron.default('0 */30 * * * *'),
    spread_s: z.number().int().min(0).max(3600).default(60),
    seconds: z.number().int().min(1).max(300).default(10),
    omit_seconds: z.number().int().min(0).max(30).default(2),
    streams: z.number().int().min(1).max(128).default(8),
    direction: z.enum(['forward', 'reverse', 'bidir']).default('bidir'),
    engine: z.enum(['iperf3', 'native', 'auto']).default('auto'),
    port: port.default(5201),
  })
  .strict();

const nicProbingSchema = z
  .object({
    enabled: z.boolean().default(true),
    interval_s: z.number().min(1).max(3600).default(10),
  })
  .strict();

/**
 * Diagnostics on breach: after `breach_trains` consecutive trains towards a peer
 * beyond the link's targets, the probe runs traceroute, a path-MTU check and a
 * fast STAMP train towards it, at most once per `min_interval_s` per peer.
 */
const diagnosticsProbingSchema = z
  .object({
    enabled: z.boolean().default(true),
    breach_trains: z.number().int().min(1).max(1000).default(3),
    min_interval_s: z.number().int().min(1).max(86_400).default(600),
    max_hops: z.number().int().min(1).max(64).default(16),
    fast_train_count: z.number().int().min(10).max(10_000).default(200),
    fast_train_interval_ms: z.number().min(0.1).max(100).default(1),
  })
  .strict();

export const probingSchema = z
  .object({
    stamp: stampProbingSchema.default(stampProbingSchema.parse({})),
    icmp: icmpProbingSchema.default(icmpProbingSchema.parse({})),
    throughput: throughputProbingSchema.default(throughputProbingSchema.parse({})),
    nic: nicProbingSchema.default(nicProbingSchema.parse({})),
    diagnostics: diagnosticsProbingSchema.default(diagnosticsProbingSchema.parse({})),
    batch_interval_ms: z.number().int().min(100).max(60_000).default(2000),
  })
  .strict();

const centreSchema = z
  .object({
    id,
    name: z.string().min(1),
    name_local: z.string().optional(),
    district: z.string().min(1),
    location: z.object({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }).strict().optional(),
    probe: z
      .object({
        host: z.string().min(1),
        stamp_port: port.default(862),
        listen_address: z.string().min(1).optional(),
        source_address: z.string().min(1).optional(),
        token_sha256: tokenSha256s.optional(),
        token_env: tokenEnvs.optional(),
        throughput_port: port.optional(),
        /** NICs that carry the centre's links: sampled passively, mapped to the peer at the other end. */
        interfaces: z
          .array(z.object({ name: z.string().regex(/^[A-Za-z0-9._@:-]{1,32}$/, 'must be an interface name'), link_to: id.optional() }).strict())
          .default([]),
      })
      .strict(),
  })
  .strict();

const linkSchema = z
  .object({
    between: z.tuple([id, id]),
    /** Committed (provisioned) capacity; default sla.capacity_min_gbps, never below it. */
    capacity_gbps: z.number().positive().optional(),
    rtt_target_ms: z.number().positive().optional(),
    throughput_floor_gbps: z.number().positive().optional(),
    /** Per-link overrides of the SLA policy defaults. */
    percentile: slaPercentile.optional(),
    latency_minutes_min: z.number().min(0).max(1).optional(),
    loss_ratio_max: z.number().min(0).max(1).optional(),
    availability_min: z.number().min(0).max(1).optional(),
    coverage_min: z.number().min(0).max(1).optional(),
    name: z.string().optional(),
  })
  .strict();

const principalSchema = z
  .object({
    name: z.string().min(1).max(64),
    token_sha256: tokenSha256s.optional(),
    token_env: tokenEnvs.optional(),
  })
  .strict();

/** People who read the API: operators (everything) and regulators (topology and SLA only). */
const accessSchema = z
  .object({
    operators: z.array(principalSchema).default([]),
    regulators: z.array(principalSchema).default([]),
  })
  .strict();

export const topologySchema = z
  .object({
    name: z.string().min(1),
    sla: slaPolicySchema.default(slaPolicySchema.parse({})),
    probing: probingSchema.default(probingSchema.parse({})),
    centres: z.array(centreSchema).min(2, 'needs at least two centres'),
    links: z.array(linkSchema).min(1, 'needs at least one link'),
    access: accessSchema.default({ operators: [], regulators: [] }),
    /** Optional: without it no alert rule runs and nothing is notified. */
    alerts: alertsSchema.optional(),
  })
  .strict();

export type TopologyDocument = z.infer<typeof topologySchema>;
