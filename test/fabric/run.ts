/**
 * `npm run fabric` (root): the Shanghai example as network namespaces, with
 * the real server and one probe per centre, delays from the real coordinates
 * and rates scaled; prints the dashboard URL; Ctrl-C tears everything down.
 * `npm run fabric:cleanup`: removes what a crashed run left behind.
 *
 *   node dist-tools/test/fabric/run.js [--config FILE] [--centres a,b,c] [--scale 0.01]
 *        [--route-factor 1.5] [--port 8080] [--flows 1] [--scheduling nice|default]
 *        [--log-level warn] [--keep]
 *   node dist-tools/test/fabric/run.js --cleanup [--force]
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { repoRoot } from '../helpers/netns.js';
import { missingCommand } from '../helpers/requirements.js';
import { cleanupLeftovers, Fabric } from './fabric.js';
import { formatRate, scaleLabel, specFromTopologyFile } from './plan.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: join(repoRoot, 'config', 'shanghai.yaml') },
    centres: { type: 'string' },
    scale: { type: 'string', default: '0.01' },
    'route-factor': { type: 'string', default: '1.5' },
    port: { type: 'string', default: '8080' },
    'log-level': { type: 'string', default: 'warn' },
    scheduling: { type: 'string', default: 'nice' },
    flows: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    cleanup: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function usage(): string {
  return `usage: npm run fabric -- [--config FILE] [--centres a,b,c] [--scale 0.01] [--route-factor 1.5] [--port 8080]
                           [--flows 1] [--scheduling nice|default] [--log-level warn] [--keep]
       npm run fabric:cleanup [-- --force]
Builds the topology's centres as network namespaces (root needed), links as shaped veth pairs with
delay relays, runs the server in a "noc" namespace and one probe per centre, and prints the dashboard URL.`;
}

async function cleanupCommand(): Promise<void> {
  const reason = Fabric.unavailable();
  if (reason) throw new Error(reason);
  const { removed, skipped } = await cleanupLeftovers({ force: values.force });
  for (const r of removed) process.stdout.write(`removed ${r}\n`);
  for (const s of skipped) process.stdout.write(`kept ${s}; --force removes it too\n`);
  if (removed.length === 0 && skipped.length === 0) process.stdout.write('nothing to clean up\n');
}

async function main(): Promise<void> {
  if (values.help) {
    process.stdout.write(usage() + '\n');
    return;
  }
  if (values.cleanup) return cleanupCommand();
  const reason = Fabric.unavailable() ?? missingCommand('iperf3', 'iperf3');
  if (reason) throw new Error(`cannot build the fabric: ${reason}`);
  const scale = Number(values.scale);
  const routeFactor = Number(values['route-factor']);
  if (!(scale > 0 && scale <= 1)) throw new Error(`--scale: "${values.scale}" must be in (0, 1]`);
  if (!(routeFactor >= 1 && routeFactor <= 3)) throw new Error(`--route-factor: "${values['route-factor']}" must be in [1, 3]`);
  const base = specFromTopologyFile(values.config!, { centres: values.centres?.split(',').map((s) => s.trim()).filter(Boolean), rateScale: scale, routeFactor });
  // STAMP flows capped (default 1): a veth has no ECMP or LAG members to sweep, and every centre's
  // probe, reflector and relay share this machine's cores: 5 centres x 4 peers x 8 flows of
  // user-space STAMP, all leaving in the same second, saturate 2 cores for a moment each train
  // (medians then rise by milliseconds), where a real probe host has its cores to itself.
  // Throughput tests on (scaled links are cheap to load) and NIC sampling of the veths.
  const flows = Number(values.flows);
  if (!(Number.isInteger(flows) && flows >= 1 && flows <= 64)) throw new Error(`--flows: "${values.flows}" must be an integer 1..64`);
  const stamp = { ...((base.probing.stamp as Record<string, unknown> | undefined) ?? {}) };
  stamp.flows = Math.min(flows, typeof stamp.flows === 'number' ? stamp.flows : flows);
  const spec = {
    ...base,
    probing: {
      ...base.probing,
      stamp,
      throughput: { enabled: true, schedule: '0 */15 * * * *', spread_s: 120, seconds: 5, omit_seconds: 1, streams: 2, direction: 'bidir', engine: 'auto', port: base.throughputPort },
      nic: { enabled: true, interval_s: 5 },
    },
  };

  process.stdout.write(`citymesh fabric: building ${spec.centres.length} centres, ${spec.links.length} links from ${values.config} (${scaleLabel(scale)})\n`);
  const scheduling = values.scheduling as 'nice' | 'default';
  if (!['nice', 'default'].includes(scheduling)) throw new Error(`--scheduling: "${values.scheduling}" must be nice (relays and probes at nice -10) or default`);
  const fabric = await Fabric.create(spec, { logLevel: values['log-level'], keepRunDir: values.keep, scheduling });
  let stopping: Promise<void> | null = null;
  const teardown = (why: string) => {
    stopping ??= (async () => {
      process.stdout.write(`\n${why}: stopping probes (they flush), server, relays; deleting namespaces ...\n`);
      await fabric.stop().catch(() => undefined);
      await fabric.cleanup();
      process.stdout.write(values.keep ? `done; logs and data kept in ${fabric.runDir}\n` : 'done; nothing left behind\n');
      process.exit(0);
    })();
    return stopping;
  };
  process.on('SIGINT', () => {
    if (stopping) process.exit(130); // second Ctrl-C: the exit hook removes namespaces synchronously
    void teardown('Ctrl-C');
  });
  process.on('SIGTERM', () => void teardown('SIGTERM'));
  try {
    await fabric.start();
    await fabric.applyDelays();
  } catch (error) {
    await fabric.cleanup();
    throw error;
  }

  let bridge;
  try {
    bridge = await fabric.rootBridge(Number(values.port));
  } catch {
    bridge = await fabric.rootBridge(0); // that port is taken here: any free one
  }
  const port = bridge.port!;

  const rows = fabric.plan.links.map((l) => [
    l.id, `${l.distanceKm.toFixed(1)} km`, `${(l.delayUs / 1000).toFixed(3)} ms`, `+${((2 * l.delayUs) / 1000).toFixed(3)} ms`,
    `${l.capacityGbps} Gb/s -> ${formatRate(l.rateMbit)}`, `${l.a.centre}:${l.a.dev} <-> ${l.b.centre}:${l.b.dev}`,
  ]);
  const head = ['link', 'straight line', `one way (x${routeFactor} x 5 us/km)`, 'RTT added', `rate (${scaleLabel(scale)})`, 'veth'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(
    `\n${line(head)}\n${rows.map(line).join('\n')}\n\n` +
      `  namespaces: ${fabric.namespaces.join(' ')}\n` +
      `  server:     in ${fabric.plan.nocNs} (port ${fabric.plan.serverPort}), probes reach it over unshaped management veths\n` +
      `  dashboard:  http://127.0.0.1:${port}/#token=${fabric.operatorToken}\n` +
      `              (127.0.0.1:${port} here -> Unix socket ${fabric.socketPath} -> the server inside ${fabric.plan.nocNs})\n` +
      `  ICMP measures the bare veth path; STAMP crosses the delay relays (the fibre delay above).\n` +
      `  a shell in a centre: ip netns exec ${fabric.plan.centres[0]!.ns} bash\n` +
      `  logs: ${join(fabric.runDir, 'logs')}\n` +
      `  Ctrl-C stops everything and deletes the namespaces; after a crash: npm run fabric:cleanup\n\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`citymesh fabric: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
