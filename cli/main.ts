/**
 * The one command line: `citymesh server | probe | demo | measure | reflect | config`.
 * Heavy parts are imported lazily so a probe host never loads the database engine.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { createLogger } from './logger.js';
import { version } from '../api/version.js';
import type { ProbeEngineName } from '../protocol/index.js';

/** Stop gracefully on SIGINT/SIGTERM; a second signal exits at once. Returns the trigger. */
function onSignals(stop: () => Promise<void>, logger: Logger): (signal: NodeJS.Signals) => void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn(`second ${signal}: exiting without waiting`);
      process.exit(130);
    }
    signalled = true;
    logger.info(`${signal}: stopping, flushing buffered data`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return handler;
}

const program = new Command()
  .name('citymesh')
  .description('Latency, loss and SLA monitor for a city\'s compute-centre network')
  .version(version)
  .showHelpAfterError();

const serverOptions = (cmd: Command) =>
  cmd
    .option('-c, --config <file>', 'topology file (env CITYMESH_CONFIG)', undefined)
    .option('--host <address>', 'address to listen on (env CITYMESH_HOST; default 127.0.0.1)')
    .option('-p, --port <port>', 'TCP port (env CITYMESH_PORT; default 8080; 0 picks a free one)')
    .option('--data-dir <dir>', 'embedded ClickHouse data directory (env CITYMESH_DATA_DIR; default ./data)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug (env CITYMESH_LOG_LEVEL)')
    .option('--tls-cert <file>', 'PEM certificate chain: serve https/wss only (env CITYMESH_TLS_CERT)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert (env CITYMESH_TLS_KEY)')
    .option('--signing-key <file>', 'Ed25519 key that signs SLA reports, created on first start (env CITYMESH_SIGNING_KEY; default <data-dir>-keys/report-signing.pem)')
    .option('--clickhouse-cluster <name>', 'ClickHouse cluster whose schema `citymesh migrate --cluster` applied; the server checks it instead of migrating (env CITYMESH_CLICKHOUSE_CLUSTER; needs CLICKHOUSE_URL)')
    .option('--clickhouse-replication <mode>', 'keeper (Replicated tables, the default) or none (sharded without replication; see the README) (env CITYMESH_CLICKHOUSE_REPLICATION)');

serverOptions(program.command('server').description('run the collector, API and dashboard (ClickHouse: embedded, or CLICKHOUSE_URL)'))
  .action(async (flags: Record<string, string | undefined>) => {
    const { resolveServerSettings } = await import('../api/settings.js');
    const { startServer } = await import('../api/server.js');
    const settings = resolveServerSettings(flags);
    const logger = createLogger(settings.logLevel);
    const server = await startServer(settings, logger);
    logger.info({ url: server.url }, 'citymesh server listening');
    process.stdout.write(`citymesh server: dashboard ${server.url}/  probes connect to ${server.url.replace(/^http/, 'ws')}/v1/probe\n`);
    onSignals(() => server.close(), logger);
  });

serverOptions(program.command('demo').description('server plus one real probe per demo centre on loopback (what `npm start` runs)'))
  .action(async (flags: Record<string, string | undefined>) => {
    const { resolveServerSettings } = await import('../api/settings.js');
    const { startDemo } = await import('../api/demo.js');
    const settings = resolveServerSettings(flags);
    const logger = createLogger(settings.logLevel === 'info' ? 'warn' : settings.logLevel);
    const demo = await startDemo(settings, logger);
    process.stdout.write(
      `\ncitymesh demo: ${demo.probes.length} probes on loopback measuring each other (${settings.configFile})\n` +
        `  dashboard: ${demo.server.url}/#token=${demo.operatorToken}\n` +
        `  SLA:       ${demo.server.url}/regulator.html#token=${demo.regulatorToken}\n  data:      ${demo.server.store.location}\n  Ctrl-C stops everything (buffered trains are flushed first)\n\n`,
    );
    onSignals(() => demo.stop(), logger);
  });

program
  .command('probe')
  .description('run the probe agent of one centre: reflector plus scheduled trains, plan from the server')
  .option('-s, --server <url>', 'collector WebSocket URL, e.g. wss://citymesh.example/v1/probe; several (repeated or comma-separated) are used one at a time, failing over in turn (env CITYMESH_SERVER)', collectServerUrls)
  .option('--centre <id>', 'this host\'s centre id in the topology (env CITYMESH_CENTRE)', process.env.CITYMESH_CENTRE)
  .option('--token-file <file>', 'file holding the probe token (default: env CITYMESH_TOKEN)')
  .option('--spool-dir <dir>', 'disk spool for unacknowledged batches (env CITYMESH_SPOOL_DIR; default ./spool/<centre>)', process.env.CITYMESH_SPOOL_DIR)
  .option('--spool-max-mb <n>', 'spool bound; beyond it the oldest batches are dropped and counted', '256')
  .option('--drain-timeout-s <n>', 'on stop, how long to wait for the collector to acknowledge what is spooled', '10')
  .option('--ca <file>', 'PEM CA certificate to verify a wss:// server signed by a private CA (env CITYMESH_CA)', process.env.CITYMESH_CA)
  .option('--log-level <level>', 'fatal|error|warn|info|debug (env CITYMESH_LOG_LEVEL)', process.env.CITYMESH_LOG_LEVEL ?? 'info')
  .option('--check', 'check this host instead of running: token, centre, clock sync, ping, iperf3, ports, spool, each collector (exit 1 if any check fails)')
  .option('--json', 'with --check: print the results as JSON')
  .action(async (flags: { server?: string[]; centre?: string; tokenFile?: string; logLevel: string; spoolDir?: string; spoolMaxMb: string; ca?: string; drainTimeoutS: string; check?: boolean; json?: boolean }) => {
    const servers = flags.server ?? splitServerUrls(process.env.CITYMESH_SERVER ?? '');
    const spoolMaxMb = Number(flags.spoolMaxMb);
    if (!(spoolMaxMb > 0)) throw new Error(`--spool-max-mb: "${flags.spoolMaxMb}" must be a positive number`);
    if (flags.check) {
      const { runProbeChecks, formatCheckResults, anyFailed } = await import('../probes/check.js');
      const results = await runProbeChecks({
        serverUrls: servers, centre: flags.centre, tokenFile: flags.tokenFile, envToken: process.env.CITYMESH_TOKEN,
        spoolDir: flags.spoolDir ?? `spool/${flags.centre ?? ''}`, spoolMaxBytes: spoolMaxMb * 1024 * 1024, caFile: flags.ca, version,
      });
      process.stdout.write((flags.json ? JSON.stringify(results, null, 2) : formatCheckResults(results)) + '\n');
      process.exitCode = anyFailed(results) ? 1 : 0;
      return;
    }
    if (servers.length === 0) throw new Error('no collector: pass --server wss://HOST/v1/probe (or set CITYMESH_SERVER)');
    if (!flags.centre) throw new Error('no centre: pass --centre ID (or set CITYMESH_CENTRE)');
    const centre = flags.centre;
    const { ProbeAgent } = await import('../probes/agent.js');
    const token = flags.tokenFile ? readFileSync(flags.tokenFile, 'utf8').trim() : process.env.CITYMESH_TOKEN;
    if (!token) throw new Error('no token: set CITYMESH_TOKEN or pass --token-file (tokens are not accepted on the command line, where ps would show them)');
    const logger = createLogger(flags.logLevel, 'citymesh-probe').child({ centre });
    const agent = new ProbeAgent({
      serverUrl: servers, centre, token, version, logger,
      spoolDir: flags.spoolDir ?? `spool/${centre}`,
      spoolMaxBytes: spoolMaxMb * 1024 * 1024,
      caFile: flags.ca,
      drainTimeoutMs: Number(flags.drainTimeoutS) * 1000,
      onTrainSpooled: (trainId) => logger.debug({ trainId }, 'train spooled'),
    });
    const shutdown = onSignals(() => agent.stop(), logger);
    // Started by `citymesh demo` with an IPC channel: stop when the parent goes away.
    if (process.connected) process.once('disconnect', () => shutdown('SIGTERM'));
    await agent.start();
    logger.info({ tasks: agent.currentPlan()?.tasks.length }, 'probe running');
  });

/** `--server a,b --server c` and CITYMESH_SERVER="a,b": every URL, in order. */
function splitServerUrls(value: string): string[] {
  return value.split(',').map((url) => url.trim()).filter((url) => url.length > 0);
}

function collectServerUrls(value: string, previous: string[] | undefined): string[] {
  const urls = splitServerUrls(value);
  if (urls.length === 0) throw new Error(`--server: "${value}" holds no URL`);
  return [...(previous ?? []), ...urls];
}

const measure = program.command('measure').description('one train now, for troubleshooting');
const measureOptions = (cmd: Command, defaults: { interval: string; timeout: string }) =>
  cmd
    .requiredOption('-n, --count <n>', 'packets per flow', '10')
    .option('--interval-ms <ms>', 'spacing between packets', defaults.interval)
    .option('--timeout-ms <ms>', 'wait for replies after the last packet', defaults.timeout)
    .option('--dscp <0-63>', 'DSCP code point to mark packets with', '0')
    .option('--source <address>', 'local address to send from')
    .option('--json', 'print the train summaries as JSON');

measureOptions(
  measure.command('stamp').description('STAMP (RFC 8762) train to a reflector').requiredOption('-t, --target <host:port>', 'reflector address'),
  { interval: '10', timeout: '1000' },
)
  .addOption(new Option('--flows <n>', 'UDP source ports to sweep (ECMP/LAG members)').default('1'))
  .action(async (flags: Record<string, string | boolean | undefined>) => runMeasure('stamp', flags));

measureOptions(
  measure.command('icmp').description('ICMP echo train through the system ping').requiredOption('-t, --target <host>', 'host to ping'),
  { interval: '200', timeout: '2000' },
).action(async (flags: Record<string, string | boolean | undefined>) => runMeasure('icmp', { ...flags, flows: '1' }));

measure
  .command('throughput')
  .description('one throughput test against a peer\'s iperf3 or native server (loads the link: use sparingly)')
  .requiredOption('-t, --target <host[:port]>', 'the peer running `iperf3 -s` or a citymesh probe')
  .option('--streams <n>', 'parallel TCP streams', '4')
  .option('--seconds <s>', 'measured seconds (warm-up excluded)', '10')
  .option('--omit <s>', 'warm-up seconds left out of the figures', '1')
  .addOption(new Option('--direction <d>', 'forward (we send), reverse (peer sends) or bidir').choices(['forward', 'reverse', 'bidir']).default('forward'))
  .addOption(new Option('--engine <e>', 'iperf3, native, or auto (iperf3 when installed)').choices(['iperf3', 'native', 'auto']).default('auto'))
  .option('--source <address>', 'local address to connect from')
  .option('--json', 'print the result as JSON')
  .action(async (flags: { target: string; streams: string; seconds: string; omit: string; direction: string; engine: 'iperf3' | 'native' | 'auto'; source?: string; json?: boolean }) => {
    const { runThroughput, parseThroughputTarget, formatThroughputResult } = await import('../probes/engines/throughput/index.js');
    const { host, port } = parseThroughputTarget(flags.target);
    const result = await runThroughput({
      engine: flags.engine, host, port, streams: Number(flags.streams), seconds: Number(flags.seconds), omitSeconds: Number(flags.omit),
      reverse: flags.direction === 'reverse', bidir: flags.direction === 'bidir', bindAddress: flags.source,
    });
    process.stdout.write((flags.json ? JSON.stringify(result, null, 2) : formatThroughputResult(result)) + '\n');
    if (!result.ok) process.exitCode = 1;
  });

measure
  .command('nic')
  .description('negotiated speed, state and rates of network interfaces, from /sys/class/net')
  .option('-i, --interface <name...>', 'interfaces to read (default: all)')
  .option('--interval-ms <ms>', 'sampling interval for the rates', '1000')
  .option('--json', 'print the samples as JSON')
  .action(async (flags: { interface?: string[]; intervalMs: string; json?: boolean }) => {
    const { measureNic, formatNicSamples, nicSamplesToJson } = await import('../probes/engines/nic/index.js');
    const samples = await measureNic({ interfaces: flags.interface, intervalMs: Number(flags.intervalMs) });
    process.stdout.write((flags.json ? JSON.stringify(nicSamplesToJson(samples), null, 2) : formatNicSamples(samples)) + '\n');
  });

program
  .command('throughput-server')
  .description('serve throughput tests for peers (what a probe runs when its plan enables throughput testing)')
  .addOption(new Option('--engine <e>', 'iperf3, native, or auto').choices(['iperf3', 'native', 'auto']).default('auto'))
  .option('-p, --port <port>', 'TCP port (default 5201 for iperf3, 5301 for native)')
  .option('--host <address>', 'address to listen on')
  .action(async (flags: { engine: 'iperf3' | 'native' | 'auto'; port?: string; host?: string }) => {
    const { serveThroughput } = await import('../probes/engines/throughput/index.js');
    const server = await serveThroughput({ engine: flags.engine, port: flags.port ? Number(flags.port) : undefined, host: flags.host });
    process.stdout.write(`${server.engine} throughput server listening on port ${server.port}\n`);
    onSignals(() => server.stop(), createLogger('info'));
  });

async function runMeasure(engine: ProbeEngineName, flags: Record<string, string | boolean | undefined>): Promise<void> {
  const { measure: run, formatResults } = await import('../probes/measure.js');
  const f = flags as unknown as import('../probes/measure.js').MeasureFlags;
  const results = await run(engine, f);
  process.stdout.write((f.json ? JSON.stringify(results, null, 2) : formatResults(f.target, results)) + '\n');
}

program
  .command('reflect')
  .description('run a standalone STAMP reflector (stateless, RFC 8762 §4)')
  .requiredOption('-p, --port <port>', 'UDP port (862 is the IANA port and needs root or CAP_NET_BIND_SERVICE)')
  .option('--host <address>', 'address to bind', '0.0.0.0')
  .action(async (flags: { port: string; host: string }) => {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${flags.port}" is not a UDP port number`);
    const { reflect } = await import('../probes/measure.js');
    const reflector = await reflect(port, flags.host);
    const address = reflector.address();
    process.stdout.write(`STAMP reflector listening on ${address.address}:${address.port}\n`);
    onSignals(() => reflector.close(), createLogger('info'));
  });

program
  .command('migrate')
  .description('apply the ClickHouse schema (embedded, CLICKHOUSE_URL, or a cluster with --cluster) and list what was applied or skipped')
  .option('--cluster <name>', 'render ON CLUSTER DDL (Replicated + Distributed tables; needs ClickHouse Keeper) and apply it through CLICKHOUSE_URL (env CITYMESH_CLICKHOUSE_CLUSTER)')
  .option('--replication <mode>', 'with --cluster: keeper (Replicated tables, ON CLUSTER; default) or none (sharded without replication, applied node by node; env CITYMESH_CLICKHOUSE_REPLICATION)')
  .option('--node <url>', 'with --replication none: HTTP URL of a node of the cluster, once per node (env CITYMESH_CLICKHOUSE_NODES, comma-separated; default CLICKHOUSE_URL)', (url: string, list: string[] = []) => [...list, url])
  .option('--database <db>', 'database that holds citymesh\'s tables (env CLICKHOUSE_DATABASE; default "default")')
  .option('--print', 'print the SQL, one statement per `;`, without connecting (for review or `clickhouse-client --multiquery`)')
  .option('--data-dir <dir>', 'embedded ClickHouse data directory (env CITYMESH_DATA_DIR; default ./data)')
  .action(async (flags: import('../api/migrate-cli.js').MigrateFlags) => {
    const { runMigrate } = await import('../api/migrate-cli.js');
    await runMigrate(flags);
  });

program
  .command('config')
  .description('topology file tools')
  .command('check')
  .description('check a topology file and print a summary')
  .argument('<file>', 'topology YAML file')
  .action(async (file: string) => {
    const { loadTopology } = await import('../topology/index.js');
    const topology = loadTopology(file, { requireTokens: false });
    const missing = topology.centres.filter((c) => c.probe.tokenSha256s.length === 0).map((c) => c.id);
    process.stdout.write(
      `${file}: ok — "${topology.name}", ${topology.centres.length} centres, ${topology.links.length} links\n` +
        (missing.length ? `  note: no token available here for ${missing.join(', ')} (token_env not set in this environment)\n` : ''),
    );
  });

const report = program
  .command('report')
  .description('fetch a month\'s SLA report from a running server (regulator or operator token)')
  .option('-m, --month <YYYY-MM>', 'calendar month in the topology\'s time zone, e.g. 2026-11')
  .option('--link <a-b>', 'one link\'s detail and breach timeline (a~b, or a-b when unambiguous)')
  .addOption(new Option('--format <f>', 'json or csv').choices(['json', 'csv']).default('json'))
  .option('--minutes', 'with --link: the minute-level evidence instead of the breach timeline')
  .option('--signed', 'the finalised, signed report (byte for byte; check it with `citymesh report verify`)')
  .option('-o, --output <file>', 'write to a file instead of stdout')
  .option('-s, --server <url>', 'server base URL (env CITYMESH_API_URL)', process.env.CITYMESH_API_URL ?? 'http://127.0.0.1:8080')
  .option('--token-file <file>', 'file holding a regulator or operator token (default: env CITYMESH_TOKEN)')
  .action(async (flags: import('../api/report-cli.js').ReportFlags) => {
    if (!flags.month) throw new Error('--month is required, e.g. --month 2026-11 (or: citymesh report verify FILE)');
    const { runReport } = await import('../api/report-cli.js');
    await runReport(flags);
  });

report
  .command('verify')
  .description('verify a downloaded signed report offline: canonical form, key fingerprint, Ed25519 signature')
  .argument('<file>', 'signed report (citymesh report --signed, or GET /v1/sla/months/M/report)')
  .option('--public-key <file>', 'the server\'s public key (PEM), obtained out of band: the strongest check')
  .option('-s, --server <url>', 'fetch the public key from GET /v1/sla/public-key instead')
  .action(async (file: string, flags: import('../api/report-cli.js').VerifyFlags) => {
    const { runVerify } = await import('../api/report-cli.js');
    // `report verify FILE --server URL`: the parent `report` also knows --server and takes it first.
    const server = flags.server ?? (report.getOptionValueSource('server') === 'cli' ? (report.opts() as { server?: string }).server : undefined);
    process.exitCode = await runVerify(file, { ...flags, server });
  });

program
  .command('store')
  .description('the embedded ClickHouse store')
  .command('serve')
  .description('serve a data directory with the engine\'s own HTTP and native listeners (a real ClickHouse node), so several servers on this machine share it (CLICKHOUSE_URL)')
  .option('--data-dir <dir>', 'embedded ClickHouse data directory (env CITYMESH_DATA_DIR; default ./data)', process.env.CITYMESH_DATA_DIR ?? 'data')
  .option('--host <address>', 'address to listen on (plain HTTP and native protocol: keep it on loopback unless the network is trusted)', '127.0.0.1')
  .option('-p, --port <port>', 'HTTP port, the one CLICKHOUSE_URL names (0 picks a free one)', '8123')
  .option('--tcp-port <port>', 'native protocol port (clickhouse-client, remote()); 0 picks a free one', '9000')
  .option('--user <name>', 'the user clients sign in as (env CLICKHOUSE_USER; default citymesh)')
  .option('--password-file <file>', 'file holding that user\'s password (default: env CLICKHOUSE_PASSWORD)')
  .action(async (flags: import('../api/store-cli.js').StoreServeFlags) => {
    const { serveStore, storeServePlan } = await import('../api/store-cli.js');
    const plan = storeServePlan(flags);
    const node = await serveStore(plan);
    const logger = createLogger('info');
    let stopping = false;
    void node.exited.then((code) => {
      if (stopping) return;
      process.stderr.write(`citymesh store: the engine exited (${code ?? 'killed'}): ${node.output().trim().split('\n').slice(-3).join(' | ')}\n`);
      process.exit(1);
    });
    process.stdout.write(
      `citymesh store: ${node.dataDir} served at ${node.url} (native ${node.host}:${node.tcpPort}), user ${plan.user}; ` +
        `set CLICKHOUSE_URL=${node.url} CLICKHOUSE_USER=${plan.user} and CLICKHOUSE_PASSWORD for each server\n`,
    );
    onSignals(async () => {
      stopping = true;
      await node.stop();
    }, logger);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`citymesh: ${message}\n`);
  process.exit(1);
});
