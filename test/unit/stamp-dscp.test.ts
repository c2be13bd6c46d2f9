/**
 * DSCP on STAMP packets, checked where it matters: a receiver asks the kernel
 * for the TOS byte of each datagram (IP_RECVTOS) and reports what arrived.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { applyDscp, dscpUnavailable, readDscp } from '../../probes/engines/stamp/dscp.js';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';

// Prints, for every datagram reaching it on 127.0.0.1, the TOS byte the kernel
// saw, the length and the source port (other tests' stray packets may arrive too).
const receiver = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(2048, socket.CMSG_SPACE(4))
    tos = [c[2][0] for c in anc if c[0] == socket.IPPROTO_IP and c[1] == socket.IP_TOS]
    print(tos[0] if tos else -1, len(data), addr[1], flush=True)
`;

describe.skipIf(skipReason(dscpUnavailable()))('STAMP DSCP marking', () => {
  it('sets and reads back the TOS byte on a socket', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    expect(readDscp(socket, 4)).toBe(0);
    expect(applyDscp(socket, 4, 46)).toBe(46);
    expect(readDscp(socket, 4)).toBe(46);
    socket.close();
  });

  it.skipIf(skipReason(missingCommand('python3', 'python3')))('packets arrive carrying the DSCP the train asked for', async () => {
    const child = spawn('python3', ['-c', receiver], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const nextLine = () =>
      new Promise<string>((resolve) => {
        const check = () => (lines.length ? resolve(lines.shift()!) : setTimeout(check, 20));
        check();
      });
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
    const port = Number(await nextLine());
    const engine = new StampEngine();
    try {
      const [result] = await engine.runTrain({ host: '127.0.0.1', port, count: 1, intervalMs: 1, timeoutMs: 50, dscp: 46, flows: 1 });
      expect(result!.dscp).toBe(46);
      let fields: number[] = [];
      while (fields[2] !== result!.srcPort) fields = (await nextLine()).split(' ').map(Number);
      const [tos, length] = fields;
      expect(tos).toBe(46 << 2); // EF: DSCP 46 in the upper six bits, ECN 0
      expect(length).toBe(44);
    } finally {
      await engine.close();
      child.kill();
    }
  });
});
