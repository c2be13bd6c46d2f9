#!/usr/bin/env python3
"""Send hand-made IPv4/UDP datagrams through a raw socket (root only), so a
test can send what no ordinary socket can: source port 0, a forged source
address (a reflector's own address and port), any size and content.

Reads a JSON array on stdin, one object per datagram kind:
  {"src": "127.0.31.2", "sport": 0, "dst": "127.0.31.1", "dport": 40000,
   "hex": "0011..." | "size": 100, "fill": "zero"|"random"|"sender",
   "count": 1}
"sender" fills a valid STAMP Session-Sender packet (seq, T1, zero MBZ) padded
with zeros to `size`. Prints the number of datagrams sent.
"""
import json
import os
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack(f'!{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def payload(kind, seq):
    if 'hex' in kind:
        return bytes.fromhex(kind['hex'])
    size = kind.get('size', 44)
    fill = kind.get('fill', 'zero')
    if fill == 'random':
        return os.urandom(size)
    if fill == 'sender':
        t = time.time_ns()
        secs, ns = divmod(t, 1_000_000_000)
        head = struct.pack('!IIIH', seq, (secs + 2208988800) & 0xFFFFFFFF, (ns << 32) // 1_000_000_000, (32 << 8) | 1)
        return (head + bytes(max(0, size - len(head))))[:size] if size >= len(head) else head[:size]
    return bytes(size)


def main():
    kinds = json.load(sys.stdin)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sent = 0
    for kind in kinds:
        src = socket.inet_aton(kind['src'])
        dst = socket.inet_aton(kind['dst'])
        for n in range(kind.get('count', 1)):
            data = payload(kind, n)
            udp_len = 8 + len(data)
            pseudo = src + dst + struct.pack('!BBH', 0, socket.IPPROTO_UDP, udp_len)
            udp = struct.pack('!HHHH', kind['sport'], kind['dport'], udp_len, 0) + data
            csum = checksum(pseudo + udp) or 0xFFFF
            udp = udp[:6] + struct.pack('!H', csum) + udp[8:]
            ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + udp_len, n & 0xFFFF, 0, 64, socket.IPPROTO_UDP, 0, src, dst)
            s.sendto(ip + udp, (kind['dst'], 0))
            sent += 1
    print(sent, flush=True)


if __name__ == '__main__':
    main()
