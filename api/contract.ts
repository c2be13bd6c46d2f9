/**
 * JSON shapes the HTTP API and the /v1/live feed send. The dashboard imports
 * these types (type-only) so no response shape is written twice.
 * Times on the wire: ISO-8601 strings in documents, Unix seconds (float) in
 * columnar series and live messages (uPlot's native x unit). Latency in ms.
 */
import type { TestStatus } from '../collector/index.js';
import type { ProbeEngineName } from '../protocol/index.js';
import type { SlaVerdictCode, TrainRow } from '../sql/index.js';
import type { Centre, LinkSlaPolicy } from '../topology/index.js';

export type { ProbeEngineName };

/** A centre as the topology holds it, without its probe's addresses and token hashes. */
export type CentreView = Pick<Centre, 'id' | 'name' | 'nameLocal' | 'district' | 'lat' | 'lon'>;

export interface LinkView {
  /** `${a}~${b}` with a < b. */
  id: string;
  a: string;
  b: string;
  capacityGbps: number;
  /** p99 round-trip target for this link, ms. */
  rttTargetMs: number;
}

export type PathState = 'ok' | 'warn' | 'breach' | 'stale' | 'nodata';

/** Latest state of one measured direction (src probes dst). */
export interface PathStatus {
  src: string;
  dst: string;
  engine: ProbeEngineName;
  /** ISO time of the newest train, or null when none. */
  lastTs: string | null;
  /** Trains in the status window. */
  trains: number;
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  jitterMs: number | null;
  lossRatio: number | null;
  targetMs: number;
  state: PathState;
  /** The one-way delay judged against sla.one_way_target_ms (the "1 ms city circle"), apart from `state`. */
  oneWay: OneWayVerdict;
  /**
   * How the newest train's timestamps were taken at each end (hardware |
   * kernel | user | unknown); null when the window holds no train.
   */
  timestamping: { sender: string; reflector: string } | null;
  /** Why the source probe cannot run this engine (e.g. no ping program); null when it can. */
  engineUnavailable: string | null;
}

/**
 * A direction's p99 one-way delay against the city's one-way target. `measured`:
 * forward delays of trains whose two clocks were synchronised (every train of
 * the window); `rtt_half`: the clocks were not (or ICMP, which has no
 * timestamps of the far end), so the delay is estimated as RTT p99 / 2, which
 * hides any asymmetry between the directions.
 */
export interface OneWayVerdict {
  p99Ms: number | null;
  basis: 'measured' | 'rtt_half' | null;
  targetMs: number;
  state: PathState;
}

/** What a probe last reported about how it measures. */
export interface ProbeStatus {
  centre: string;
  reportedAt: string;
  /** native: kernel timestamps off the JavaScript event loop; js: the fallback, timestamps in user space. */
  datapath: 'native' | 'js';
  datapathReason: string | null;
  reflectorTimestamping: string;
  enginesUnavailable: Record<string, string>;
  reflector: { received: number; reflected: number; drops: Record<string, number> } | null;
}

export interface StatusResponse {
  /** When this response was sent. */
  generatedAt: string;
  /**
   * The instant judged (a whole second, a little behind generatedAt): the window is
   * (asOf − windowS, asOf]. Two servers' answers with the same asOf are the same judgement.
   */
  asOf: string;
  windowS: number;
  staleAfterS: number;
  paths: PathStatus[];
  probes: ProbeStatus[];
}

/** Columnar series aligned on `t`; null marks a bucket with no data. */
export interface SeriesResponse {
  src: string;
  dst: string;
  engine: ProbeEngineName;
  source: 'raw' | 'rollup';
  stepS: number;
  from: string;
  to: string;
  t: number[];
  minMs: (number | null)[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  maxMs: (number | null)[];
  jitterMs: (number | null)[];
  lossRatio: (number | null)[];
  packets: number[];
}

/** One stored train (one flow of one train) as the live feed carries it. */
export interface LiveTrainMessage {
  type: 'train';
  src: string;
  dst: string;
  engine: ProbeEngineName;
  flow: number;
  /** Train start, Unix seconds. */
  t: number;
  sent: number;
  received: number;
  lossRatio: number;
  rttMinMs: number | null;
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  rttMaxMs: number | null;
  jitterMs: number | null;
}

/** A train taken back from the live feed: sent earlier, then its INSERT failed (the probe sends it again). */
export type LiveRetractedTrain = Pick<LiveTrainMessage, 'src' | 'dst' | 'engine' | 'flow' | 't'>;

/**
 * Messages on the /v1/live WebSocket: a welcome, then one `trains` frame per
 * probe batch (the trains of that batch, in order), sent while the batch is
 * being stored; rarely a `retract` frame naming trains of a batch whose
 * storing failed (they come again, in a `trains` frame, once stored).
 */
export type LiveMessage =
  | { type: 'welcome'; serverTime: string }
  | { type: 'trains'; trains: LiveTrainMessage[] }
  | { type: 'retract'; trains: LiveRetractedTrain[] }
  | LiveTrainMessage;

export interface ErrorResponse {
  error: string;
  /** What was wrong, e.g. the offending parameter. */
  reason: string;
}

export type CapacityVerdict = 'met' | 'breach' | 'unknown' | 'nodata' | 'failed';

/** Capacity of one link: is the port provisioned at the committed speed, and does a test deliver the floor? */
export interface LinkCapacity {
  linkId: string;
  a: string;
  b: string;
  committedGbps: number;
  floorGbps: number;
  provisioned: {
    /** Lowest negotiated speed among the interfaces mapped to this link, Gb/s; null when none known. */
    gbps: number | null;
    interfaces: { centre: string; interface: string; speedMbps: number | null; operState: string; utilisation: number | null; at: string }[];
    verdict: Exclude<CapacityVerdict, 'failed'>;
  };
  tested: {
    at: string | null;
    engine: string | null;
    /** Goodput a → b and b → a of the newest test, Gb/s. */
    abGbps: number | null;
    baGbps: number | null;
    error: string | null;
    verdict: CapacityVerdict;
  };
  /** Both must hold: provisioned ≥ committed and tested ≥ floor. */
  verdict: CapacityVerdict;
}

export interface CapacityResponse {
  generatedAt: string;
  links: LinkCapacity[];
}

export interface ThroughputHistoryResponse {
  a: string;
  b: string;
  floorGbps: number;
  committedGbps: number;
  tests: {
    at: string;
    testId: string;
    client: string;
    trigger: string;
    engine: string;
    direction: string;
    streams: number;
    ok: boolean;
    error: string | null;
    abGbps: number | null;
    baGbps: number | null;
  }[];
}

export interface UtilisationResponse {
  centre: string;
  peer: string;
  stepS: number;
  t: number[];
  /** 0..1 of the negotiated speed; null = no data. */
  peak: (number | null)[];
  mean: (number | null)[];
  rxGbps: (number | null)[];
  txGbps: (number | null)[];
}

/** An on-demand or scheduled throughput test as the server tracks it (POST …/throughput-tests, GET /v1/throughput-tests/:id). */
export type ThroughputTestStatus = TestStatus;

// ---------------------------------------------------------------------------
// Monthly SLA reports (README "Monthly SLA reports" defines every figure).

export type SlaVerdict = SlaVerdictCode;
export type SlaCriterion = 'latency' | 'loss' | 'availability' | 'capacity_provisioned' | 'capacity_tested';

/** One criterion of one scope: the measured value against its target, and the evidence behind the verdict. */
export interface SlaCriterionResult {
  criterion: SlaCriterion;
  verdict: SlaVerdict;
  /** Measured value (unit below); null when nothing was measured. */
  value: number | null;
  /** What value is compared with (links only; null for a centre or the network). */
  target: number | null;
  comparison: '>=' | '<=';
  unit: 'share_of_minutes' | 'ratio' | 'Gbps';
  /** The rule in words, e.g. "p99 RTT <= 2 ms (worst direction) in >= 99.9% of assessed minutes" (links only). */
  rule: string | null;
  breachMinutes: number | null;
  longestBreachMinutes: number | null;
  /** Minutes with data / SLA minutes (null where the criterion is not minute-based). */
  coverage: number | null;
  requiredCoverage: number | null;
  evidence: Record<string, number | null>;
}

/** A link, a centre (all its links) or the whole network; minute figures of a centre or the network are link-minutes. */
export interface SlaScopeReport {
  scope: 'link' | 'centre' | 'network';
  id: string;
  name: string;
  verdict: SlaVerdict;
  links: { total: number; met: number; breach: number; insufficientData: number };
  /**
   * Link-minutes: of the month, excluded (maintenance declared in advance, and
   * selfLoad: minutes our own throughput tests loaded the link; absent from
   * reports finalised before citymesh listed them), left for the SLA, covered, available.
   */
  minutes: { month: number; excluded: number; selfLoad?: number; sla: number; covered: number; available: number };
  coverage: number | null;
  /** The policy a link is judged by (null for a centre or the network). */
  policy: SlaLinkPolicyView | null;
  criteria: SlaCriterionResult[];
}

/** The policy a link is judged by, as the topology resolves it (defaults with the link's overrides). */
export type SlaLinkPolicyView = LinkSlaPolicy;

export interface SlaMaintenanceView {
  id: string;
  scope: 'link' | 'centre' | 'network';
  /** `a~b` for a link, the centre id, or "network". */
  target: string;
  start: string;
  end: string;
  reason: string;
  declaredAt: string;
  declaredBy: string;
  /** Declared at or after its start: listed, never excluded from the SLA minutes. */
  declaredLate: boolean;
  excluded: boolean;
}

/**
 * One of citymesh's own throughput tests: it loaded its link, so latency and
 * loss in its minutes (guard included) measure our test, not the network, and
 * are excluded from those verdicts (decided by citymesh, not declared).
 */
export interface SlaSelfLoadView {
  testId: string;
  /** `a~b`. */
  link: string;
  trigger: string;
  /** The test's own span (ISO, ms precision); `minutes` counts the guarded whole minutes within the period. */
  start: string;
  end: string;
  guardMs: number;
  minutes: number;
  /** Where the span is known from: planned / finished (the coordinator), measured (the probe). */
  sources: string[];
}

/** The month's report; what a finalised report freezes and signs. */
export interface SlaReport {
  format: 'citymesh-sla-report/1';
  network: string;
  month: string;
  timezone: string;
  /** [start, end) in UTC ISO; end is "now" for a month in progress. */
  period: { start: string; end: string; minutes: number; complete: boolean };
  status: 'provisional' | 'final' | 'amendment';
  source: 'rollup' | 'raw';
  engine: ProbeEngineName;
  finalised: { at: string; by: string } | null;
  links: SlaScopeReport[];
  centres: SlaScopeReport[];
  total: SlaScopeReport;
  maintenance: SlaMaintenanceView[];
  /** Our own throughput tests' load windows (absent from reports finalised before citymesh listed them). */
  selfLoad?: SlaSelfLoadView[];
}

export interface SlaAmendmentSummary {
  seq: number;
  at: string;
  by: string;
  reportSha256: string;
  changes: number;
}

/** GET /v1/sla/months/:month */
export interface SlaMonthResponse {
  month: string;
  /** finalised: the stored, signed figures; provisional: computed now. */
  state: 'finalised' | 'provisional';
  report: SlaReport;
  reportSha256: string | null;
  amendments: SlaAmendmentSummary[];
}

export interface SlaMonthEntry {
  month: string;
  start: string;
  end: string;
  state: 'in_progress' | 'open' | 'finalised';
  finalisedAt: string | null;
  finalisedBy: string | null;
  reportSha256: string | null;
  amendments: number;
  /** When the cron job finalises it (month end + grace), for a month not yet finalised; null when automatic finalisation is off. */
  autoFinaliseAt: string | null;
}

export interface SlaMonthsResponse {
  timezone: string;
  months: SlaMonthEntry[];
}

export interface SlaBreachRun {
  start: string;
  end: string;
  minutes: number;
}

/** GET /v1/sla/months/:month/links/:a/:b */
export interface SlaLinkDetailResponse {
  month: string;
  state: 'finalised' | 'provisional';
  link: SlaScopeReport;
  /** Breach runs recomputed from the minute rollup now (the evidence behind the counts). */
  timeline: Record<'latency' | 'loss' | 'availability' | 'capacity_provisioned', SlaBreachRun[]>;
  tests: { at: string; client: string; ok: boolean; error: string | null; abGbps: number | null; baGbps: number | null }[];
  maintenance: SlaMaintenanceView[];
  selfLoad: SlaSelfLoadView[];
}

/** GET /v1/sla/months/:month/links/:a/:b/minutes: one entry per minute of the period (Unix seconds). */
export interface SlaMinutesResponse {
  month: string;
  link: string;
  a: string;
  b: string;
  percentile: number;
  rttTargetMs: number;
  t: number[];
  excluded: number[];
  abTrains: number[];
  abSent: number[];
  abLost: number[];
  abRttMs: (number | null)[];
  baTrains: number[];
  baSent: number[];
  baLost: number[];
  baRttMs: (number | null)[];
  provisionedGbps: (number | null)[];
  covered: number[];
  available: number[];
  latencyBreach: number[];
  lossBreach: number[];
  /** 1 where the minute is excluded because our own throughput test loaded the link (also 1 in `excluded`). */
  selfLoad: number[];
}

export interface SlaAmendmentsResponse {
  month: string;
  finalised: boolean;
  amendments: SlaAmendmentSummary[];
  /** The stored figures against a recomputation now: differences not yet recorded as an amendment. */
  current: { differs: boolean; changes: SlaChange[] };
}

export interface SlaChange {
  path: string;
  from: string | number | null;
  to: string | number | null;
}

/** The signed amendment document's `report`. */
export interface SlaAmendment {
  format: 'citymesh-sla-amendment/1';
  month: string;
  seq: number;
  amends: { seq: number; reportSha256: string };
  detectedAt: string;
  detectedBy: string;
  changes: SlaChange[];
  report: SlaReport;
}

/** Alert states on GET /v1/alerts: pending (condition holds, not yet for `for`), firing, silenced (firing or pending, matched by a silence). */
export type AlertState = 'pending' | 'firing' | 'silenced';

export interface AlertView {
  /** Alertmanager's fingerprint of the labels. */
  fingerprint: string;
  alertname: string;
  state: AlertState;
  severity: string;
  labels: Record<string, string>;
  /** summary, description (with the measured value and the threshold). */
  annotations: Record<string, string>;
  /** `a~b` for link alerts, else null. */
  link: string | null;
  centre: string | null;
  /** When the condition began to hold; null when unknown. */
  since: string | null;
  /** When it started firing; null while pending. */
  startsAt: string | null;
  /** The latest measured value and the threshold, in `unit` (ms, ratio, Gb/s, s). */
  value: number | null;
  threshold: number | null;
  unit: string;
  silencedBy: string[];
  generatorURL: string;
}

export interface ResolvedAlertView {
  fingerprint: string;
  alertname: string;
  severity: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  link: string | null;
  centre: string | null;
  startsAt: string;
  endsAt: string | null;
  value: number | null;
  threshold: number | null;
  unit: string;
}

/** GET /v1/alerts */
export interface AlertsResponse {
  /** False when the topology has no `alerts:` section (nothing is evaluated). */
  enabled: boolean;
  generatedAt: string;
  /** Firing and silenced first (critical before warning), then pending. */
  alerts: AlertView[];
  /** Episodes resolved in the last 24 hours, newest first. */
  resolved: ResolvedAlertView[];
}

export interface AlertEventView {
  fingerprint: string;
  alertname: string;
  status: 'firing' | 'resolved';
  /** When the change was recorded. */
  at: string;
  startsAt: string;
  endsAt: string | null;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  value: number | null;
  threshold: number | null;
  unit: string;
  /** Silences that matched when the change was recorded. */
  silencedBy: string[];
}

/** GET /v1/alerts/events */
export interface AlertEventsResponse {
  from: string;
  to: string;
  link: string | null;
  events: AlertEventView[];
}

export interface SilenceMatcherView {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

export interface SilenceView {
  id: string;
  matchers: SilenceMatcherView[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  updatedAt: string;
  state: 'pending' | 'active' | 'expired';
}

/** GET /v1/alerts/silences */
export interface SilencesResponse {
  silences: SilenceView[];
}

/** GET /v1/placement */
export interface PlacementResponse {
  from: string;
  maxRttMs: number;
  minGbps: number;
  windowS: number;
  generatedAt: string;
  /** Centres meeting both thresholds now, lowest RTT first. */
  candidates: PlacementCandidate[];
  /** Directly linked centres that do not qualify, with the reason. */
  excluded: (PlacementCandidate & { reason: string })[];
}

export interface PlacementCandidate {
  centre: string;
  name: string;
  /** Worst direction's p99 RTT over the window, exact from the raw packets. */
  rttP99Ms: number | null;
  lossRatio: number | null;
  /** Newest successful throughput test's worse direction, Gb/s (measured, never the commitment). */
  capacityGbps: number | null;
  testedAt: string | null;
  committedGbps: number;
}

/** One hop of a stored traceroute; a probe nobody answered (`*`) has a null address and RTT. */
export interface DiagnosticHopView {
  ttl: number;
  probes: { address: string | null; rttMs: number | null; flag: string | null }[];
}

/** One diagnostics run of one probe towards its peer: traceroute, path MTU, fast STAMP train. */
export interface DiagnosticRunView {
  runId: string;
  /** The operator request it answers; null when the probe ran it on a breach it saw. */
  requestId: string | null;
  at: string;
  src: string;
  dst: string;
  trigger: 'breach' | 'operator';
  reason: string;
  durationMs: number;
  traceroute: { ok: boolean; error: string | null; tool: string | null; maxHops: number; reached: boolean; hops: DiagnosticHopView[] };
  pathMtu: { ok: boolean; error: string | null; tool: string | null; pmtu: number | null; dropAtTtl: number | null; reached: boolean };
  fastTrain: {
    ok: boolean; error: string | null; count: number; intervalMs: number; sent: number; received: number; lossRatio: number | null;
    rttMinMs: number | null; rttP50Ms: number | null; rttP99Ms: number | null; rttMaxMs: number | null; jitterMs: number | null;
  };
}

/** A diagnostics run as a chart annotation (details: GET /v1/links/:a/:b/diagnostics/:runId). */
export interface DiagnosticsAnnotation {
  kind: 'diagnostics';
  at: string;
  /** Unix seconds, the charts' x unit. */
  t: number;
  src: string;
  dst: string;
  runId: string;
  requestId: string | null;
  trigger: 'breach' | 'operator';
  reason: string;
  hops: number;
  reached: boolean;
  pmtu: number | null;
  fastP50Ms: number | null;
  fastP99Ms: number | null;
  fastLossRatio: number | null;
  /** What failed in the run (tool missing, timeout, no reply), empty when all three parts worked. */
  problems: string[];
}

/** The responding hop sequence of src → dst differs from the previous traceroute's. */
export interface PathChangeAnnotation {
  kind: 'path_change';
  at: string;
  t: number;
  src: string;
  dst: string;
  runId: string;
  previousRunId: string;
  previousAt: string;
  /** Per hop, the addresses that answered (empty: none did). */
  before: string[][];
  after: string[][];
}

/** A declared maintenance window covering the link (its own, one of its centres', or the network's). */
export interface MaintenanceAnnotation {
  kind: 'maintenance';
  at: string;
  t: number;
  end: string;
  tEnd: number;
  id: string;
  scope: 'link' | 'centre' | 'network';
  target: string;
  reason: string;
  declaredLate: boolean;
}

/**
 * One of our own throughput tests loaded the link: latency and loss from
 * [t - guard, tEnd + guard] are ours, left out of the SLA verdicts and alerts.
 */
export interface SelfLoadAnnotation {
  kind: 'self_load';
  at: string;
  t: number;
  end: string;
  tEnd: number;
  testId: string;
  trigger: string;
  guardMs: number;
  sources: string[];
}

export type Annotation = DiagnosticsAnnotation | PathChangeAnnotation | MaintenanceAnnotation | SelfLoadAnnotation;

export interface AnnotationsResponse {
  a: string;
  b: string;
  from: string;
  to: string;
  /** Ordered by time (a window by its start). */
  annotations: Annotation[];
}

/** 202 answer to POST /v1/links/:a/:b/diagnostics. */
export interface DiagnosticsRequestResponse {
  requestId: string;
  a: string;
  b: string;
  requestedAt: string;
  requestedBy: string;
  /** The probes asked to run (both ends of the link). */
  centres: string[];
}

/** GET /v1/links/:a/:b/diagnostics/:id, by run id or by operator request id. */
export interface DiagnosticsDetailResponse {
  id: string;
  a: string;
  b: string;
  requestId: string | null;
  runs: DiagnosticRunView[];
  /** For a request: the centres whose result has not arrived yet. */
  pending: string[];
}

/** GET /v1/centres: the topology's name (a scaled test fabric says so there) and its centres. */
export interface CentresResponse {
  name: string;
  centres: CentreView[];
}

/** GET /v1/links/:src/:dst/trains: stored trains of one direction, as stored (snake_case columns). */
export interface TrainsResponse {
  src: string;
  dst: string;
  from: string;
  to: string;
  trains: TrainRow[];
}

/** GET /v1/sla/maintenance */
export interface SlaMaintenanceResponse {
  from: string;
  to: string;
  windows: SlaMaintenanceView[];
}

/**
 * Every JSON answer of the API, by the route as the app registers it
 * (`METHOD /path/:param`): each route handler's body `satisfies` its entry,
 * and the dashboard's fetchers take the route and get the entry's type, so a
 * shape is written once. (Documents served as stored bytes — signed reports,
 * CSV, the public key, metrics — are not JSON built here.)
 */
export interface ApiRoutes {
  'GET /v1/centres': CentresResponse;
  'GET /v1/links': { links: LinkView[] };
  'GET /v1/status': StatusResponse;
  'GET /v1/links/:src/:dst/series': SeriesResponse;
  'GET /v1/links/:src/:dst/trains': TrainsResponse;
  'GET /v1/capacity': CapacityResponse;
  'GET /v1/links/:src/:dst/throughput': ThroughputHistoryResponse;
  'GET /v1/links/:src/:dst/utilisation': UtilisationResponse;
  'POST /v1/links/:src/:dst/throughput-tests': ThroughputTestStatus;
  'GET /v1/throughput-tests/:id': ThroughputTestStatus;
  'GET /v1/sla/months': SlaMonthsResponse;
  'GET /v1/sla/months/:month': SlaMonthResponse;
  'GET /v1/sla/months/:month/amendments': SlaAmendmentsResponse;
  /** The JSON answer when nothing changed (a recorded amendment is answered with its signed document). */
  'POST /v1/sla/months/:month/amendments': { month: string; recorded: false; reason: string };
  'GET /v1/sla/months/:month/links/:a/:b': SlaLinkDetailResponse;
  'GET /v1/sla/months/:month/links/:a/:b/minutes': SlaMinutesResponse;
  'GET /v1/sla/maintenance': SlaMaintenanceResponse;
  'POST /v1/sla/maintenance': SlaMaintenanceView & { warning?: string };
  'GET /v1/placement': PlacementResponse;
  'GET /v1/alerts': AlertsResponse;
  'GET /v1/alerts/events': AlertEventsResponse;
  'GET /v1/alerts/silences': SilencesResponse;
  'POST /v1/alerts/silences': SilenceView;
  'DELETE /v1/alerts/silences/:id': SilenceView;
  'POST /v1/links/:a/:b/diagnostics': DiagnosticsRequestResponse;
  'GET /v1/links/:a/:b/diagnostics/:id': DiagnosticsDetailResponse;
  'GET /v1/links/:a/:b/annotations': AnnotationsResponse;
}

export type ApiRoute = keyof ApiRoutes;

/**
 * The contract's routes, checked complete by the compiler (a route missing
 * here, or one the contract lacks, does not compile); the authorization test
 * checks each is a route the app registers.
 */
const CONTRACT_ROUTES: Record<ApiRoute, true> = {
  'GET /v1/centres': true,
  'GET /v1/links': true,
  'GET /v1/status': true,
  'GET /v1/links/:src/:dst/series': true,
  'GET /v1/links/:src/:dst/trains': true,
  'GET /v1/capacity': true,
  'GET /v1/links/:src/:dst/throughput': true,
  'GET /v1/links/:src/:dst/utilisation': true,
  'POST /v1/links/:src/:dst/throughput-tests': true,
  'GET /v1/throughput-tests/:id': true,
  'GET /v1/sla/months': true,
  'GET /v1/sla/months/:month': true,
  'GET /v1/sla/months/:month/amendments': true,
  'POST /v1/sla/months/:month/amendments': true,
  'GET /v1/sla/months/:month/links/:a/:b': true,
  'GET /v1/sla/months/:month/links/:a/:b/minutes': true,
  'GET /v1/sla/maintenance': true,
  'POST /v1/sla/maintenance': true,
  'GET /v1/placement': true,
  'GET /v1/alerts': true,
  'GET /v1/alerts/events': true,
  'GET /v1/alerts/silences': true,
  'POST /v1/alerts/silences': true,
  'DELETE /v1/alerts/silences/:id': true,
  'POST /v1/links/:a/:b/diagnostics': true,
  'GET /v1/links/:a/:b/diagnostics/:id': true,
  'GET /v1/links/:a/:b/annotations': true,
};
export const API_ROUTES: readonly string[] = Object.keys(CONTRACT_ROUTES);
