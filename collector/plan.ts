/**
 * Builds each probe's measurement plan from the central topology, so probes
 * are never configured one by one: a centre measures every centre it links to.
 */
import type { Topology } from '../topology/index.js';
import { PROTOCOL_VERSION, type PlanTask, type ProbePlan } from '../protocol/index.js';

export function planFor(topology: Topology, centreId: string): ProbePlan {
  const centre = topology.centre(centreId);
  if (!centre) throw new Error(`unknown centre "${centreId}"`);
  const { stamp, icmp } = topology.probing;
  const tasks: PlanTask[] = [];
  for (const peerId of topology.peersOf(centreId)) {
    const peer = topology.centre(peerId)!;
    const link = topology.linkBetween(centreId, peerId)!;
    const target = { rttP99Ms: link.rttTargetMs, lossRatioMax: link.sla.lossRatioMax };
    tasks.push({
      id: `stamp:${centreId}>${peerId}`,
      engine: 'stamp',
      dst: peerId,
      host: peer.probe.host,
      port: peer.probe.stampPort,
      schedule: stamp.schedule,
      count: stamp.count,
      intervalMs: stamp.intervalMs,
      timeoutMs: stamp.timeoutMs,
      dscp: stamp.dscp,
      flows: stamp.flows,
      sourceAddress: centre.probe.sourceAddress,
      target,
    });
    if (icmp.enabled) {
      tasks.push({
        id: `icmp:${centreId}>${peerId}`,
        engine: 'icmp',
        dst: peerId,
        host: peer.probe.host,
        port: 0,
        schedule: icmp.schedule,
        count: icmp.count,
        intervalMs: icmp.intervalMs,
        timeoutMs: icmp.timeoutMs,
        dscp: icmp.dscp,
        flows: 1,
        sourceAddress: centre.probe.sourceAddress,
        target,
      });
    }
  }
  return {
    type: 'plan',
    centre: centreId,
    protocol: PROTOCOL_VERSION,
    batchIntervalMs: topology.probing.batchIntervalMs,
    reflector: {
      listenAddress: centre.probe.listenAddress,
      port: centre.probe.stampPort,
      policy: {
        allowAny: stamp.reflector.answer === 'any',
        allow: [
          // This host itself (a relay, a sidecar, `citymesh measure` here): loopback sources cannot arrive from outside.
          '127.0.0.0/8', '::1',
          ...stamp.reflector.allow,
          ...topology.peersOf(centreId).flatMap((id) => {
            const peer = topology.centre(id)!.probe;
            return peer.sourceAddress ? [peer.host, peer.sourceAddress] : [peer.host];
          }),
        ],
        ratePps: stamp.reflector.rateLimitPps,
        burst: stamp.reflector.burst,
      },
    },
    tasks,
    throughputServer: topology.probing.throughput.enabled
      ? { engine: topology.probing.throughput.engine, port: centre.probe.throughputPort, listenAddress: centre.probe.listenAddress }
      : null,
    nic: topology.probing.nic.enabled && centre.probe.interfaces.length > 0
      ? { intervalS: topology.probing.nic.intervalS, interfaces: centre.probe.interfaces }
      : null,
    diagnostics: topology.probing.diagnostics,
  };
}
