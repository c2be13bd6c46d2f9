/**
 * The PromQL a Grafana dashboard would send: template variables expanded as
 * Grafana does for "All" (the variable's allValue), $__rate_interval as 1m,
 * and each label_values() variable as the series query behind it.
 */
export interface DashboardQuery {
  panel: string;
  expr: string;
}

interface Dashboard {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; query: string; allValue?: string }[] };
}

export function dashboardQueries(dashboard: Dashboard): DashboardQuery[] {
  const expand = (expr: string) => {
    let out = expr.replaceAll('$__rate_interval', '1m');
    for (const v of dashboard.templating.list) out = out.replaceAll(`$${v.name}`, v.allValue ?? '.+');
    return out;
  };
  const panels = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: expand(t.expr) })));
  // label_values(metric, label): Grafana asks for the label's values on the metric's series.
  const variables = dashboard.templating.list.map((v) => {
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(v.query);
    if (!m) throw new Error(`variable ${v.name}: unsupported query ${v.query}`);
    return { panel: `variable ${v.name}`, expr: `count by (${m[2]}) (${m[1]})` };
  });
  return [...panels, ...variables];
}
