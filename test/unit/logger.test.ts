/**
 * One logger for everything a process prints on stderr: node-cron's own
 * warnings (here: overlap prevention) arrive as JSON lines like ours, never as
 * coloured console text between them.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('createLogger', () => {
  it("routes node-cron's warnings through the JSON logger", async () => {
    const script = `
      const { createLogger } = await import(new URL('dist/cli/logger.js', 'file://${root}/').href);
      const { default: nodeCron } = await import('node-cron');
      createLogger('info');
      // A task that never finishes: the next second's run is refused by overlap prevention, and node-cron says so.
      nodeCron.schedule('* * * * * *', () => new Promise(() => {}), { noOverlap: true });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('overlap')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`exited ${code} before node-cron warned: ${stderr}`)));
      });
    } finally {
      child.kill();
    }
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    const warning = lines.map((l) => JSON.parse(l) as { component?: string; level?: number; msg?: string }).find((l) => l.msg?.includes('overlap'));
    expect(warning).toMatchObject({ component: 'node-cron', level: 40 });
  });
});
