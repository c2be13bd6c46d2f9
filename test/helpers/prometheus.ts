/**
 * The real Prometheus and Alertmanager from Debian, started by a test on
 * 127.0.0.1 with a free port and a temporary data directory, and stopped
 * (SIGTERM, then SIGKILL) by stop(). Nothing here talks to anything but
 * loopback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir } from './processes.js';
import { missingCommand } from './requirements.js';
import { waitFor } from './stack.js';

export const PROMETHEUS = 'prometheus';
export const ALERTMANAGER = 'prometheus-alertmanager';

export const missingPrometheus = (): string | null => missingCommand(PROMETHEUS, 'prometheus');
export const missingAlertmanager = (): string | null => missingCommand(ALERTMANAGER, 'prometheus-alertmanager');

export interface RunningTool {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  /** Everything the process wrote on stderr (its log). */
  log(): string;
  stop(): Promise<void>;
}

async function startTool(command: string, name: string, args: (port: number, dir: string) => string[], readyPath: string): Promise<RunningTool> {
  const dir = tempDir(name);
  const port = await freePort();
  const child = spawn(command, args(port, dir), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const tool: RunningTool = {
    url, port, dir, child, log: () => log,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
  try {
    await waitFor(`${name} ready on ${url}`, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${log.slice(-2000)}`);
      const r = await fetch(`${url}${readyPath}`).catch(() => null);
      return r?.ok === true;
    }, 30_000);
  } catch (error) {
    await tool.stop();
    throw error;
  }
  return tool;
}

/** Prometheus with `config` (YAML text) and optional rule files (name → YAML text). */
export function startPrometheus(config: string, rules: Record<string, string> = {}): Promise<RunningTool> {
  return startTool(PROMETHEUS, 'prometheus', (port, dir) => {
    for (const [file, text] of Object.entries(rules)) writeFileSync(join(dir, file), text);
    writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('$DIR', dir));
    return [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ];
  }, '/-/ready');
}

/** Alertmanager with `config` (YAML text), clustering off unless `peers` are given. */
export function startAlertmanager(config: string, options: { cluster?: { listenPort: number; peers: number[] } } = {}): Promise<RunningTool> {
  return startTool(ALERTMANAGER, 'alertmanager', (port, dir) => {
    writeFileSync(join(dir, 'alertmanager.yml'), config);
    const cluster = options.cluster
      ? [`--cluster.listen-address=127.0.0.1:${options.cluster.listenPort}`, ...options.cluster.peers.map((p) => `--cluster.peer=127.0.0.1:${p}`),
        '--cluster.advertise-address=127.0.0.1:' + options.cluster.listenPort]
      : ['--cluster.listen-address='];
    return [
      `--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...cluster,
    ];
  }, '/-/ready');
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant PromQL query; throws with Prometheus's error text when it refuses the query. */
export async function promQuery(prometheus: { url: string }, expr: string, timeS?: number): Promise<PromSample[]> {
  const params = new URLSearchParams({ query: expr });
  if (timeS !== undefined) params.set('time', String(timeS));
  const response = await fetch(`${prometheus.url}/api/v1/query?${params}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
  if (body.status !== 'success') throw new Error(`PromQL ${expr}: ${body.error ?? response.status}`);
  return body.data!.result;
}
