// The app page's sections, in tab order: one per capability. A new capability adds a file and a line here.
import events from './events.js';
import instances from './instances.js';
import logs from './logs.js';
import metrics from './metrics.js';
import pipeline from './pipeline.js';
import releases from './releases.js';
import scaling from './scaling.js';
import secrets from './secrets.js';

/**
 * Each section: `{ id, title, mount(el, ctx) }`; `ctx` is `{ app, status, query, hashFor }` and `mount` may
 * return `{ onEvent(event), onTick(), dispose() }` to follow the live feed (events of this app, metrics ticks).
 */
export const SECTIONS = [instances, metrics, releases, logs, events, scaling, secrets, pipeline];
