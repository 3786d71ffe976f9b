// Services (healthy/desired, scale) and their instances: state, release, pid/container, CPU, memory, uptime.
import { runAction } from '../action.js';
import { api } from '../api.js';
import { badge, bytes, duration, h, table } from '../dom.js';

export default {
  id: 'instances',
  title: 'Services & instances',
  async mount(el, { app }) {
    const path = encodeURIComponent(app);
    const out = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });
    const services = h('div');
    const instances = h('div');
    el.replaceChildren(services, out, h('h3', {}, 'Instances'), instances);

    const render = async () => {
      const [status, list] = await Promise.all([
        api.get(`/v1/apps/${path}`),
        api.get(`/v1/instances?app=${path}`),
      ]);
      services.replaceChildren(
        table(
          'Services',
          [
            'Service',
            'Release',
            'Healthy / desired',
            'Starting',
            'Unhealthy',
            'Old',
            'Draining',
            'Scale',
            'Restart',
          ],
          status.services.map((s) => [
            s.name,
            `v${s.release}`,
            `${s.healthy}/${s.desired}`,
            s.starting,
            s.unhealthy,
            s.outdated,
            s.draining,
            scaleForm(app, s, out, render),
            h('button', { type: 'button', onclick: () => restart(app, s, out, render) }, `Restart ${s.name}`),
          ]),
        ),
      );
      instances.replaceChildren(
        list.length === 0
          ? h('p', {}, 'No live instance.')
          : table(
              'Live instances',
              [
                'Instance',
                'Service',
                'State',
                'Release',
                'Runtime',
                'Pid',
                'Port',
                'CPU',
                'Memory',
                'Uptime',
              ],
              list.map((i) => [
                h('code', {}, i.id),
                i.service,
                badge(i.state),
                `v${i.release}`,
                i.runtime,
                i.pid ?? '-',
                i.port ?? '-',
                i.usage ? `${i.usage.cpuPercent.toFixed(1)}%` : '-',
                i.usage ? bytes(i.usage.memoryBytes) : '-',
                duration(Date.now() - i.createdAt),
              ]),
            ),
      );
    };
    await render();
    let pending = null;
    const soon = () => {
      pending ??= setTimeout(() => {
        pending = null;
        void render().catch(() => undefined);
      }, 200);
    };
    return {
      onEvent: (e) => {
        if (/^(instance|service|deployment)\./.test(e.kind)) soon();
      },
      onTick: soon,
      dispose: () => clearTimeout(pending),
    };
  },
};

function scaleForm(app, service, out, after) {
  const id = `scale-${service.name}`;
  const input = h('input', {
    id,
    type: 'number',
    min: 0,
    max: 100,
    value: service.desired,
    inputmode: 'numeric',
  });
  const form = h(
    'form',
    { class: 'inline' },
    h('label', { for: id, class: 'visually-hidden' }, `Instances of ${service.name}`),
    input,
    h('button', { type: 'submit' }, 'Scale'),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const count = Number(input.value);
    const done = await runAction({
      app,
      out,
      title: `Scale ${app} ${service.name}`,
      text: `Set ${app}'s ${service.name} to ${count} instance${count === 1 ? '' : 's'} (now ${service.desired})?`,
      perform: () =>
        api.post(`/v1/apps/${encodeURIComponent(app)}/scale`, { counts: { [service.name]: count } }),
    });
    if (done) await after();
  });
  return form;
}

async function restart(app, service, out, after) {
  const done = await runAction({
    app,
    out,
    title: `Restart ${app} ${service.name}`,
    text: `Replace every instance of ${app}'s ${service.name} with a fresh one, rolling (each replacement healthy before an old one drains)?`,
    perform: () =>
      api.post(`/v1/apps/${encodeURIComponent(app)}/services/${encodeURIComponent(service.name)}/restart`),
  });
  if (done) await after();
}
