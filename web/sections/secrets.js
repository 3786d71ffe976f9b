// Secrets: names, versions, when changed and which services use them. Values are never asked for.
import { api } from '../api.js';
import { ago, h, table } from '../dom.js';

export default {
  id: 'secrets',
  title: 'Secrets',
  async mount(el, { app }) {
    const render = async () => {
      const secrets = await api.get(`/v1/apps/${encodeURIComponent(app)}/secrets`);
      el.replaceChildren(
        secrets.length === 0
          ? h('p', {}, 'No secret: berth secrets set adds one.')
          : table(
              'Secrets (values are never shown here)',
              ['Name', 'Version', 'Previous', 'Updated', 'Used by', 'Status'],
              secrets.map((s) => [
                h('code', {}, s.name),
                `v${s.version}`,
                s.previousVersion ? `v${s.previousVersion}` : '-',
                ago(s.updatedAt),
                s.usedBy.join(', ') || '-',
                s.deletedAt ? `unset, purged ${new Date(s.purgeAt).toISOString().slice(0, 10)}` : 'active',
              ]),
            ),
      );
    };
    await render();
    return {
      onEvent: (e) => {
        if (e.kind.startsWith('secret')) void render().catch(() => undefined);
      },
    };
  },
};
