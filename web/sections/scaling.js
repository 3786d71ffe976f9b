// Alarms (state, threshold, why) and autoscaling decisions with their numbers, re-read on each metrics tick.
import { api } from '../api.js';
import { ago, badge, h, table, time } from '../dom.js';

export default {
  id: 'scaling',
  title: 'Alarms & autoscaling',
  async mount(el, { app }) {
    const path = encodeURIComponent(app);
    const render = async () => {
      const [alarms, autoscale, events] = await Promise.all([
        api.get(`/v1/alarms?app=${path}`),
        api.get(`/v1/apps/${path}/autoscale`),
        api.get(`/v1/events?app=${path}&limit=1000`),
      ]);
      const decisions = events
        .filter((e) => e.kind.startsWith('autoscale.') || e.kind === 'alarm.state_changed')
        .reverse()
        .slice(0, 50);
      el.replaceChildren(
        h('h3', {}, 'Alarms'),
        alarms.length === 0
          ? h('p', {}, 'No alarm: berth alarms set adds one.')
          : table(
              'Alarms',
              ['Alarm', 'Service', 'Rule', 'State', 'Since', 'Why'],
              alarms.map((a) => [
                a.name,
                a.service,
                `${a.metric} ${a.comparison} ${a.threshold}, ${a.datapointsToAlarm}/${a.evaluationPeriods} × ${a.periodMs / 1000}s`,
                badge(a.state),
                ago(a.stateAt),
                a.reason,
              ]),
            ),
        h('h3', {}, 'Autoscaling'),
        autoscale.length === 0
          ? h('p', {}, 'No service has an autoscale policy.')
          : autoscale.map((s) =>
              h(
                'article',
                { class: 'policy' },
                h(
                  'h4',
                  {},
                  `${s.service}: `,
                  s.paused
                    ? `paused (${s.paused})`
                    : `${s.decision.action} ${s.decision.current} → ${s.decision.desired}`,
                ),
                h('p', {}, s.decision.reason),
                table(
                  `${s.service}: metrics over the last ${s.windowMs / 1000}s`,
                  ['Metric', 'Vote', 'Details'],
                  s.decision.metrics.map((m) => [
                    m.metric,
                    m.vote,
                    JSON.stringify(
                      Object.fromEntries(Object.entries(m).filter(([k]) => k !== 'metric' && k !== 'vote')),
                    ),
                  ]),
                ),
                h(
                  'p',
                  { class: 'muted' },
                  `Last scale-out: ${s.lastScaleOut ? `${s.lastScaleOut.from} → ${s.lastScaleOut.to} ${ago(s.lastScaleOut.at)}` : 'none'}; last scale-in: ${s.lastScaleIn ? `${s.lastScaleIn.from} → ${s.lastScaleIn.to} ${ago(s.lastScaleIn.at)}` : 'none'}`,
                ),
              ),
            ),
        h('h3', {}, 'Recent decisions'),
        decisions.length === 0
          ? h('p', {}, 'None yet.')
          : h(
              'ul',
              {},
              decisions.map((e) => h('li', {}, `${time(e.at)} `, h('code', {}, e.kind), ` ${e.message}`)),
            ),
      );
    };
    await render();
    return { onTick: () => void render().catch(() => undefined) };
  },
};
