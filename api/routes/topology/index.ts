import { Hono } from 'hono';
import type { ApiRoutes, CentreView, LinkView } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';

export function topologyRoutes(deps: ApiDeps) {
  const centres: CentreView[] = deps.topology.centres.map((c) => ({
    id: c.id, name: c.name, nameLocal: c.nameLocal, district: c.district, lat: c.lat, lon: c.lon,
  }));
  const links: LinkView[] = deps.topology.links.map((l) => ({
    id: l.id, a: l.a, b: l.b, capacityGbps: l.capacityGbps, rttTargetMs: l.rttTargetMs,
  }));
  return new Hono()
    .get('/centres', (c) => c.json({ name: deps.topology.name, centres } satisfies ApiRoutes['GET /v1/centres']))
    .get('/links', (c) => c.json({ links } satisfies ApiRoutes['GET /v1/links']));
}
