#!/usr/bin/env python3
"""An independent STAMP peer written from RFC 8762 alone (no citymesh code),
so interop tests do not check our codec against itself.

  stamp_peer.py reflect HOST PORT          stateless Session-Reflector (§4.3),
                                           prints "listening PORT", runs until killed
  stamp_peer.py send HOST PORT COUNT       Session-Sender (§4.2): COUNT packets 10 ms
                                           apart, prints one JSON object with what
                                           came back and every layout check

Unauthenticated mode, NTP 64-bit timestamps (Z = 0), 44-octet packets:
  sender:    seq(4) T1(8) EE(2) MBZ(30)
  reflector: seq(4) T3(8) EE(2) MBZ(2) T2(8) sender-seq(4) sender-T1(8)
             sender-EE(2) MBZ(2) sender-TTL(1) MBZ(3)
"""
import json
import socket
import struct
import sys
import time

NTP_OFFSET = 2208988800
EE_UNSYNC_1S = (32 << 8) | 1  # S=0 Z=0 Scale=32 Multiplier=1: one second


def ntp_now():
    t = time.time_ns()
    secs, ns = divmod(t, 1_000_000_000)
    return ((secs + NTP_OFFSET) & 0xFFFFFFFF, (ns << 32) // 1_000_000_000)


def ntp_to_ns(secs, frac):
    return (secs - NTP_OFFSET) * 1_000_000_000 + (frac * 1_000_000_000 >> 32)


def family_of(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def reflect(host, port):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.bind((host, port))
    print(f"listening {s.getsockname()[1]}", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        t2 = ntp_now()
        if len(data) < 44:
            continue
        seq, t1s, t1f, ee = struct.unpack_from('!IIIH', data, 0)
        t3 = ntp_now()
        reply = struct.pack('!IIIHHIIIIIHHB3x', seq, t3[0], t3[1], EE_UNSYNC_1S, 0, t2[0], t2[1], seq, t1s, t1f, ee, 0, 255)
        s.sendto(reply + bytes(len(data) - 44), peer)


def send(host, port, count):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(1.0)
    out = {"sent": 0, "replies": [], "problems": []}
    for seq in range(count):
        t1 = ntp_now()
        pkt = struct.pack('!IIIH', seq, t1[0], t1[1], EE_UNSYNC_1S) + bytes(30)
        t1_ns = time.monotonic_ns()
        s.sendto(pkt, (host, port))
        out["sent"] += 1
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            continue
        rtt_ns = time.monotonic_ns() - t1_ns
        if len(data) != 44:
            out["problems"].append(f"seq {seq}: reply is {len(data)} octets, not 44")
            continue
        (rseq, t3s, t3f, ree, mbz1, t2s, t2f, sseq, st1s, st1f, see, mbz2, ttl) = struct.unpack('!IIIHHIIIIIHHB', data[:41])
        mbz3 = data[41:44]
        checks = {
            "reflector seq equals sender seq (stateless)": rseq == seq,
            "sender seq copied": sseq == seq,
            "sender T1 copied": (st1s, st1f) == t1,
            "sender Error Estimate copied": see == EE_UNSYNC_1S,
            "MBZ octets zero": mbz1 == 0 and mbz2 == 0 and mbz3 == b'\0\0\0',
            "T2 <= T3": ntp_to_ns(t2s, t2f) <= ntp_to_ns(t3s, t3f),
            "T2 within 10 s of T1": abs(ntp_to_ns(t2s, t2f) - ntp_to_ns(*t1)) < 10_000_000_000,
            "Error Estimate multiplier non-zero": (ree & 0xFF) != 0,
        }
        for name, ok in checks.items():
            if not ok:
                out["problems"].append(f"seq {seq}: {name}")
        out["replies"].append({"seq": rseq, "ttl": ttl, "rttUs": rtt_ns / 1000,
                               "holdNs": ntp_to_ns(t3s, t3f) - ntp_to_ns(t2s, t2f)})
        time.sleep(0.01)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    mode = sys.argv[1] if len(sys.argv) > 1 else ''
    if mode == 'reflect':
        reflect(sys.argv[2], int(sys.argv[3]))
    elif mode == 'send':
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
