/**
 * Test fixtures: a real server (embedded ClickHouse in a fresh directory,
 * real HTTP and WebSocket on 127.0.0.1, port chosen by the OS) and a topology
 * whose probes live on their own 127.0.x.y addresses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { hashToken, parseTopology, type Topology } from '../../topology/index.js';
import { startServer, type RunningServer, type ServerExtras } from '../../api/server.js';
import { ProbeAgent, type AgentOptions } from '../../probes/agent.js';
import { resolveServerSettings, type ServerFlags } from '../../api/settings.js';

export interface TestTopology {
  topology: Topology;
  yaml: string;
  /** Probe tokens by centre id. */
  tokens: Record<string, string>;
  operatorToken: string;
  regulatorToken: string;
  addresses: Record<string, string>;
  stampPort: number;
}

/**
 * A full mesh of `ids` on loopback: centre i listens on `${subnet}.${i + 2}`.
 * Each test file passes its own subnet so files running in parallel never collide.
 */
export interface TopologyOverrides {
  schedule?: string;
  flows?: number;
  /** Extra YAML lines under `probing:` (indented two spaces), e.g. a throughput section. */
  probingExtra?: string;
  /** Extra YAML lines under each centre's `probe:` (indented six spaces), given the centre id. */
  probeExtra?: (id: string) => string;
  /** Extra YAML lines under `sla:` (indented two spaces). */
  slaExtra?: string;
  /** Local-script names (`name_local`) by centre id; written as quoted YAML, so any text goes. */
  nameLocal?: Record<string, string>;
}

export function testTopology(ids: string[], subnet: string, overrides: TopologyOverrides = {}): TestTopology {
  const stampPort = 20_000 + Math.floor(Math.random() * 20_000);
  const tokens: Record<string, string> = {};
  const addresses: Record<string, string> = {};
  const centres = ids.map((id, i) => {
    tokens[id] = `test-token-${id}-${Math.random().toString(36).slice(2)}`;
    addresses[id] = `${subnet}.${i + 2}`;
    return `  - id: ${id}
    name: Centre ${id}${overrides.nameLocal?.[id] !== undefined ? `\n    name_local: ${JSON.stringify(overrides.nameLocal[id])}` : ''}
    district: Test district ${i}
    probe:
      host: ${addresses[id]}
      stamp_port: ${stampPort}
      listen_address: ${addresses[id]}
      source_address: ${addresses[id]}
      token_sha256: ${hashToken(tokens[id]!)}${overrides.probeExtra ? '\n' + overrides.probeExtra(id) : ''}`;
  });
  const links: string[] = [];
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) links.push(`  - between: [${ids[i]}, ${ids[j]}]\n    capacity_gbps: 100`);
  }
  const operatorToken = `operator-${Math.random().toString(36).slice(2)}`;
  const regulatorToken = `regulator-${Math.random().toString(36).slice(2)}`;
  const yaml = `name: test topology
sla:
  rtt_p99_target_ms: 5
${overrides.slaExtra ?? ''}
probing:
  stamp:
    schedule: "${overrides.schedule ?? '* * * * * *'}"
    count: 5
    interval_ms: 5
    timeout_ms: 300
    flows: ${overrides.flows ?? 2}
  icmp:
    enabled: false
${overrides.probingExtra ?? ''}
  batch_interval_ms: 300
centres:
${centres.join('\n')}
links:
${links.join('\n')}
access:
  operators:
    - name: test operator
      token_sha256: ${hashToken(operatorToken)}
  regulators:
    - name: test regulator
      token_sha256: ${hashToken(regulatorToken)}
`;
  return { topology: parseTopology(yaml, 'test-topology.yaml'), yaml, tokens, operatorToken, regulatorToken, addresses, stampPort };
}

export const quietLogger = pino({ level: process.env.CITYMESH_TEST_LOG ?? 'silent' });

export interface TestServer extends RunningServer {
  dataDir: string;
  wsUrl: string;
  stop(): Promise<void>;
}

/** `flags` and `env` add to the server's settings, e.g. a ClickHouse URL and cluster instead of the embedded store. */
export async function startTestServer(
  topology: Topology,
  extras: Omit<ServerExtras, 'topology'> = {},
  { flags = {}, env = {} }: { flags?: ServerFlags; env?: NodeJS.ProcessEnv } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'citymesh-test-'));
  const settings = resolveServerSettings({ port: 0, dataDir, config: 'unused.yaml', host: '127.0.0.1', ...flags }, env);
  // Request and failed-authentication limits off unless a test asks for them (tests of those limits do).
  const server = await startServer(settings, quietLogger, { rateLimit: { perSecond: 0, burst: 0 }, failedAuthLimits: null, ...extras, topology });
  return {
    ...server,
    dataDir,
    wsUrl: `${server.url.replace(/^http/, 'ws')}/v1/probe`,
    stop: async () => {
      await server.close();
      // The embedded engine lives on in this process after close, and its background threads (merges,
      // system log flushes) may still create parts here: retry, and if it keeps writing, leave the
      // temporary directory behind with a note rather than fail a test over its own clean-up.
      try {
        rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
      } catch (error) {
        process.stderr.write(`test clean-up: left ${dataDir} behind (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})\n`);
      }
      rmSync(`${dataDir}-keys`, { recursive: true, force: true }); // the report-signing key lives beside the data
    },
  };
}

/** The refusals after which the probe protocol says: keep the batch and send it again. */
const RETRY_CODES = new Set(['busy', 'store_unavailable']);

/**
 * POST a batch to /v1/ingest as a probe does: a `busy` or `store_unavailable`
 * answer (503) means keep the batch and retry, so it is retried with back-off
 * until it is answered otherwise (a loaded host makes the store fall behind;
 * that is the server working, not the test's concern). Any other answer,
 * refusals included, is returned as it came.
 */
export async function ingestFetch(url: string, init: RequestInit, boundMs = 180_000): Promise<Response> {
  const deadline = Date.now() + boundMs;
  for (let delayMs = 100; ; delayMs = Math.min(2000, delayMs * 2)) {
    const response = await fetch(url, init);
    if (response.status !== 503 || Date.now() > deadline) return response;
    const body = (await response.clone().json().catch(() => null)) as { code?: string } | null;
    if (!body?.code || !RETRY_CODES.has(body.code)) return response;
    await response.arrayBuffer();
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

/** Poll until `check` returns a value (not undefined/false) or the bound expires. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, boundMs = 30_000): Promise<T> {
  const deadline = Date.now() + boundMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${boundMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function getJson<T>(url: string, token?: string): Promise<{ status: number; body: T }> {
  const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: response.status, body: (await response.json()) as T };
}

/** A real probe agent for `centre`, with its own spool in a fresh temp directory. */
export function testAgent(server: { wsUrl: string }, topo: TestTopology, centre: string, overrides: Partial<AgentOptions> = {}): ProbeAgent {
  return new ProbeAgent({
    serverUrl: server.wsUrl,
    centre,
    token: topo.tokens[centre]!,
    version: 'test',
    logger: quietLogger,
    spoolDir: mkdtempSync(join(tmpdir(), `citymesh-spool-${centre}-`)),
    // Generous: on a loaded CI machine an ack can take seconds, and stop() must not give up early.
    drainTimeoutMs: 30_000,
    ...overrides,
  });
}

/** Probes for `centres`, each started (its first plan running) before the next. */
export async function startAgents(server: { wsUrl: string }, topo: TestTopology, centres: readonly string[]): Promise<ProbeAgent[]> {
  const agents: ProbeAgent[] = [];
  for (const centre of centres) {
    const agent = testAgent(server, topo, centre);
    agents.push(agent);
    await agent.start();
  }
  return agents;
}

/**
 * Capacity on loopback: native throughput tests on `throughputPort` (run on
 * demand: the schedule is once a year), NIC sampling of `lo` mapped to a
 * link, floors low enough that loopback meets them.
 */
export function capacityOverrides(throughputPort: number): TopologyOverrides {
  return {
    schedule: '*/5 * * * * *',
    probingExtra: `  throughput:
    enabled: true
    schedule: "0 0 0 1 1 *"
    seconds: 1
    omit_seconds: 1
    streams: 2
    direction: bidir
    engine: native
    port: ${throughputPort}
  nic:
    enabled: true
    interval_s: 1`,
    probeExtra: (id) => `      interfaces:\n        - name: lo\n          link_to: ${id === 'alfa' ? 'bravo' : 'alfa'}`,
    slaExtra: '  throughput_floor_gbps: 0.001\n  capacity_min_gbps: 1',
  };
}
