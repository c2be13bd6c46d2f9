/**
 * The systemd units in deploy/systemd: every citymesh option their ExecStart
 * uses exists in the real CLI's --help, every setting in the example
 * environment files is one citymesh reads, the probe holds exactly
 * CAP_NET_RAW + CAP_NET_BIND_SERVICE and the server none, the stop timeout
 * covers the probe's drain, and `systemd-analyze verify` accepts both units.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingCommand, skipReason } from '../helpers/requirements.js';

const DIR = 'deploy/systemd';
const UNITS = ['citymesh-probe.service', 'citymesh-server.service'] as const;

/** systemd unit syntax: [Section], Key=Value (repeatable), # and ; comments, backslash continuations. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const pair = /^([A-Za-z0-9]+)\s*=\s*(.*)$/.exec(line);
    if (!pair || !current) throw new Error(`line ${i + 1}: not "Key=Value" inside a section: ${line}`);
    current.set(pair[1]!, [...(current.get(pair[1]!) ?? []), pair[2]!]);
  }
  return sections;
}

function service(unit: string): (key: string) => string[] {
  const section = parseUnit(readFileSync(join(DIR, unit), 'utf8')).get('Service');
  if (!section) throw new Error(`${unit} has no [Service] section`);
  return (key) => section.get(key) ?? [];
}

/** The citymesh subcommand and its arguments from ExecStart=/usr/bin/node …/citymesh.js SUB --opt value … */
function execStart(unit: string): { subcommand: string; args: string[] } {
  const [line, ...more] = service(unit)('ExecStart');
  expect(more, `${unit}: one ExecStart`).toEqual([]);
  const words = line!.split(/\s+/);
  const at = words.findIndex((w) => w.endsWith('bin/citymesh.js'));
  expect(at, `${unit}: ExecStart runs bin/citymesh.js`).toBeGreaterThan(0);
  return { subcommand: words[at + 1]!, args: words.slice(at + 2) };
}

function cliHelp(subcommand: string): string {
  const result = spawnSync(process.execPath, ['bin/citymesh.js', subcommand, '--help'], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

const optionValue = (args: string[], option: string) => args[args.indexOf(option) + 1];
const capabilities = (values: string[]) => new Set(values.flatMap((v) => v.split(/\s+/)).filter(Boolean));

describe('systemd units', () => {
  for (const unit of UNITS) {
    it(`${unit}: every option in ExecStart exists in the CLI`, () => {
      const { subcommand, args } = execStart(unit);
      const help = cliHelp(subcommand);
      const known = new Set([...help.matchAll(/(?:^|\s|,)(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
      const used = args.filter((a) => a.startsWith('--'));
      expect(used.length).toBeGreaterThan(0);
      expect(used.filter((o) => !known.has(o)), `options unknown to \`citymesh ${subcommand}\``).toEqual([]);
    });
  }

  it('every setting in the example environment files is one citymesh reads', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const [file, subcommand] of [['probe.env.example', 'probe'], ['server.env.example', 'server']] as const) {
      const help = cliHelp(subcommand).replace(/\s+/g, ' ');
      const keys = readFileSync(join(DIR, file), 'utf8').split('\n').map((l) => l.trim().replace(/^#/, ''))
        .map((l) => /^([A-Z][A-Z0-9_]*)=/.exec(l)?.[1]).filter((k): k is string => k !== undefined);
      expect(keys.length).toBeGreaterThan(2);
      // token_env names are the topology's own; the README documents the rest of the server's environment.
      const unknown = keys.filter((k) => !help.includes(k) && !readme.includes(k));
      expect(unknown, `${file}: settings citymesh does not document`).toEqual([]);
    }
  });

  it('the probe holds exactly CAP_NET_RAW and CAP_NET_BIND_SERVICE; the server holds none', () => {
    const probe = service('citymesh-probe.service');
    const wanted = new Set(['CAP_NET_RAW', 'CAP_NET_BIND_SERVICE']);
    expect(capabilities(probe('AmbientCapabilities'))).toEqual(wanted);
    expect(capabilities(probe('CapabilityBoundingSet'))).toEqual(wanted);
    const server = service('citymesh-server.service');
    expect(server('CapabilityBoundingSet')).toEqual(['']);
    expect(capabilities(server('AmbientCapabilities'))).toEqual(new Set());
  });

  for (const unit of UNITS) {
    it(`${unit}: hardened, with its state in StateDirectory`, () => {
      const get = service(unit);
      for (const [key, value] of Object.entries({
        NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', PrivateDevices: 'yes',
        ProtectKernelTunables: 'yes', ProtectKernelModules: 'yes', ProtectKernelLogs: 'yes', ProtectControlGroups: 'yes',
        LockPersonality: 'yes', DynamicUser: 'yes', Restart: 'on-failure',
        RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX AF_NETLINK',
      })) {
        expect(get(key), `${unit}: ${key}`).toEqual([value]);
      }
      expect(get('SystemCallFilter')).toContain('@system-service');
      // Node's JIT needs writable+executable memory; the unit says so in a comment instead.
      expect(get('MemoryDenyWriteExecute')).toEqual([]);
      expect(get('EnvironmentFile')).toHaveLength(1);
      const state = get('StateDirectory')[0]!;
      const { args } = execStart(unit);
      expect(optionValue(args, unit.includes('probe') ? '--spool-dir' : '--data-dir')).toMatch(new RegExp(`^%S/${state}(/|$)`));
    });
  }

  it('the probe: token by LoadCredential (not the environment), spool in citymesh-probe, stop waits longer than the drain', () => {
    const get = service('citymesh-probe.service');
    expect(get('StateDirectory')).toEqual(['citymesh-probe']);
    const [credential] = get('LoadCredential');
    expect(credential).toMatch(/^token:\//);
    const { args } = execStart('citymesh-probe.service');
    expect(optionValue(args, '--token-file')).toBe('%d/token');
    expect(get('Environment').join(' ')).not.toMatch(/TOKEN/);
    const drainS = Number(optionValue(args, '--drain-timeout-s') ?? 10);
    const stopS = Number(get('TimeoutStopSec')[0]);
    // A throughput test in progress finishes first: killed at seconds + omit + 20 s (12 + 20 with the defaults).
    expect(stopS).toBeGreaterThan(drainS + 32);
  });

  it.skipIf(skipReason(missingCommand('systemd-analyze', 'systemd')))('systemd-analyze verify accepts both units, without a warning about them', () => {
    // verify checks that ExecStart's program exists: point it at this Node, wherever it is installed here.
    const dir = mkdtempSync(join(tmpdir(), 'citymesh-units-'));
    try {
      const paths = UNITS.map((unit) => {
        const path = join(dir, unit);
        writeFileSync(path, readFileSync(join(DIR, unit), 'utf8').replaceAll('/usr/bin/node ', `${process.execPath} `));
        return path;
      });
      const result = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
      // verify also loads whatever units the host has installed (e.g. Debian's irtt.service warns about
      // User=nobody); only what it says about our two units is ours to answer for.
      const ours = result.stderr.split('\n').filter((line) => UNITS.some((unit) => line.includes(unit)));
      expect(ours).toEqual([]);
      if (result.status !== 0) expect(result.stderr.trim(), 'verify failed without naming our units').toBe('');
      for (const path of paths) {
        const security = spawnSync('systemd-analyze', ['security', '--offline=yes', path], { encoding: 'utf8' });
        const exposure = /Overall exposure level for \S+: ([\d.]+ \S+)/.exec(security.stdout)?.[1];
        process.stdout.write(`systemd-analyze security ${path.split('/').pop()}: exposure ${exposure ?? `not available (${security.stderr.trim().split('\n')[0]})`}\n`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
