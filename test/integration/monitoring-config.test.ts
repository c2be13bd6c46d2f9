/**
 * The ready-made configuration in deploy/ is valid for the real tools:
 * Prometheus's scrape jobs and rules (`promtool check config`, `promtool check
 * rules`), the Alertmanager route (`amtool check-config`), and the Grafana
 * dashboard's structure. Its panel queries and the recording rules are run by a
 * real Prometheus against a running citymesh in prometheus.test.ts (Grafana is
 * not installable here, so the JSON is checked, not rendered).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../helpers/processes.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { dashboardQueries } from '../helpers/grafana.js';

afterAll(() => removeTempDirs());

function run(command: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(skipReason(missingCommand('promtool', 'prometheus')))('deploy/prometheus', () => {
  it('passes promtool check config (with the token file it names in place) and check rules', () => {
    const dir = tempDir('promtool');
    const token = join(dir, 'citymesh-operator.token');
    writeFileSync(token, 'operator-token\n', { mode: 0o600 });
    const config = readFileSync('deploy/prometheus/prometheus.yml', 'utf8');
    expect(config).toContain('/etc/prometheus/citymesh-operator.token');
    writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/etc/prometheus/citymesh-operator.token', token));
    copyFileSync('deploy/prometheus/citymesh-rules.yml', join(dir, 'citymesh-rules.yml'));
    const checked = run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
    expect(checked.output).toContain('SUCCESS: 9 rules found');
    expect(checked.status, checked.output).toBe(0);
    const rules = run('promtool', ['check', 'rules', 'deploy/prometheus/citymesh-rules.yml']);
    expect(rules.status, rules.output).toBe(0);
  });
});

describe.skipIf(skipReason(missingCommand('amtool', 'prometheus-alertmanager')))('deploy/alertmanager', () => {
  it('passes amtool check-config, with the inhibition of loss and latency by LinkDown', () => {
    const checked = run('amtool', ['check-config', 'deploy/alertmanager/alertmanager.yml']);
    expect(checked.status, checked.output).toBe(0);
    expect(checked.output).toContain('1 inhibit rules');
    expect(checked.output).toContain('2 receivers');
  });
});

describe('deploy/grafana', () => {
  it('is a dashboard for a Prometheus data source whose every panel has a query, with unique ids and no overlap', () => {
    const dashboard = JSON.parse(readFileSync('deploy/grafana/citymesh-network.json', 'utf8'));
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
    }
    // No two panels share a grid cell.
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
    expect(dashboardQueries(dashboard).length).toBe(18);
  });
});
