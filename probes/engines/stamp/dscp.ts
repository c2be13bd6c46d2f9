/**
 * DSCP marking for STAMP sockets. Node's dgram cannot set IP_TOS, so a tiny
 * native helper (probes/native/tos.c, built by `npm install`) sets it on the
 * socket's file descriptor. Without the helper packets leave unmarked, and
 * results record DSCP 0: a train never claims a marking it did not carry.
 */
import type { Socket } from 'node:dgram';
import { loadNative } from './native.js';

interface TosHelper {
  setTos(fd: number, family: 4 | 6, tos: number): void;
  getTos(fd: number, family: 4 | 6): number;
}

function loadHelper(): TosHelper | null {
  return loadNative<TosHelper>('citymesh_tos', 'native DSCP helper').module;
}

/** Why DSCP cannot be applied on this host, or null when it can. */
export function dscpUnavailable(): string | null {
  return loadHelper() ? null : loadNative<TosHelper>('citymesh_tos', 'native DSCP helper').reason;
}

/** The OS file descriptor behind a bound dgram socket (Node keeps it in an internal handle). */
function socketFd(socket: Socket): number | null {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const fd = state ? (socket as unknown as Record<symbol, { handle?: { fd?: number } }>)[state]?.handle?.fd : undefined;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** Mark every packet the socket sends with `dscp` (0..63). Returns the DSCP actually set. */
export function applyDscp(socket: Socket, family: 4 | 6, dscp: number): number {
  if (dscp === 0) return 0;
  const native = loadHelper();
  const fd = socketFd(socket);
  if (!native || fd === null) return 0;
  native.setTos(fd, family, (dscp & 0x3f) << 2);
  return dscp;
}

/** The DSCP the socket currently marks with, or null when it cannot be read. */
export function readDscp(socket: Socket, family: 4 | 6): number | null {
  const native = loadHelper();
  const fd = socketFd(socket);
  return native && fd !== null ? native.getTos(fd, family) >> 2 : null;
}
