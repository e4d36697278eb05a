// The System page's notification targets: ntfy, Gotify or a JSON webhook, told about updates,
// failed backups and GPU drift. Targets of config.yml are shown; those added here can be tested
// and removed. A token is sent once and kept sealed; it is never shown again.
import { api } from '../api.js';
import { h, code, errorBox, panel } from '../dom.js';
import { arr } from '../format.js';

const EVENT_LABELS = {
  update_available: 'Update available', update_done: 'Update done', update_failed: 'Update failed',
  update_rolled_back: 'Update rolled back', backup_failed: 'Backup failed', gpu_drift: 'GPU drift',
};

function notificationsPanel(ctx) {
  const body = h('div', { tid: 'notify-body' }, h('p', 'muted', 'Loading…'));
  const status = h('div', { tid: 'notify-status', 'aria-live': 'polite' });
  const show = (results) => status.replaceChildren(h('ul', { tid: 'notify-results' }, results.map((r) =>
    h('li', { class: r.ok ? 'ok-line' : 'field-error', 'data-name': r.name }, r.ok ? `${r.name}: delivered` : r.error))));
  async function load() {
    let r;
    try { r = await api.notifications(); } catch (err) { if (ctx.alive) body.replaceChildren(errorBox(err)); return; }
    if (!ctx.alive) return;
    const targets = arr(r.targets);
    const err = (k) => h('span', { class: 'field-error', tid: 'notify-error', 'data-field': k, role: 'alert' });
    const form = h('form', { class: 'notify-form', tid: 'notify-form', onsubmit: async (e) => {
      e.preventDefault();
      for (const slot of form.querySelectorAll('[data-testid="notify-error"]')) slot.textContent = '';
      const v = (k) => form.querySelector('#nt-' + k).value.trim();
      const events = [...form.querySelectorAll('input[name="nt-event"]:checked')].map((c) => c.value);
      try {
        await api.addNotification({ name: v('name'), kind: v('kind'), url: v('url'), token: v('token') || null, events });
        status.replaceChildren(h('p', { class: 'muted', tid: 'notify-added' }, 'Target added.'));
        load();
      } catch (error) {
        status.replaceChildren(errorBox(error));
        for (const [k, m] of Object.entries(error.fields || {})) {
          const slot = form.querySelector(`[data-testid="notify-error"][data-field="${k}"]`);
          if (slot) slot.textContent = m;
        }
      }
    } },
    h('div', 'resize-fields',
      h('div', 'field', h('label', { for: 'nt-name' }, 'Name'), h('input', { id: 'nt-name', tid: 'nt-name', placeholder: 'phone' }), err('name')),
      h('div', 'field', h('label', { for: 'nt-kind' }, 'Kind'),
        h('select', { id: 'nt-kind', tid: 'nt-kind' }, [['ntfy', 'ntfy'], ['gotify', 'Gotify'], ['webhook', 'JSON webhook']].map(([k, l]) => h('option', { value: k }, l))), err('kind')),
      h('div', 'field', h('label', { for: 'nt-url' }, 'URL'), h('input', { id: 'nt-url', tid: 'nt-url', placeholder: 'https://ntfy.sh/my-topic' }), err('url')),
      h('div', 'field', h('label', { for: 'nt-token' }, 'Token (optional)'), h('input', { id: 'nt-token', tid: 'nt-token', type: 'password', autocomplete: 'off' }), err('token'))),
    h('fieldset', 'notify-events', h('legend', null, 'Events'),
      arr(r.events).map((ev) => h('label', { class: 'toggle' }, h('input', { type: 'checkbox', name: 'nt-event', value: ev, checked: true, tid: 'nt-event-' + ev }), ' ', EVENT_LABELS[ev] || ev)),
      err('events')),
    h('button', { type: 'submit', class: 'btn', tid: 'notify-add' }, 'Add target'));
    body.replaceChildren(...[
      targets.length
        ? h('ul', { class: 'backup-list', tid: 'notify-targets' }, targets.map((t) => h('li', { tid: 'notify-target', 'data-name': t.name },
          h('div', null, h('strong', null, t.name), h('span', 'muted', ` ${t.kind} · ${t.source === 'config' ? 'config.yml' : 'added here'}${t.has_token ? ' · token kept sealed' : ''}`)),
          code(t.url, 'break small'),
          h('p', 'muted small', t.events ? t.events.map((e) => EVENT_LABELS[e] || e).join(', ') : 'All events'),
          h('div', 'job-actions',
            h('button', { type: 'button', class: 'btn btn-sm', tid: 'notify-test', disabled: t.id == null, title: t.id == null ? 'Use "Test all" for targets of config.yml' : null,
              onclick: async () => { try { show((await api.testNotifications(t.id)).results); } catch (error) { status.replaceChildren(errorBox(error)); } } }, 'Test'),
            t.id != null && h('button', { type: 'button', class: 'btn btn-sm', tid: 'notify-delete',
              onclick: async () => { try { await api.deleteNotification(t.id); load(); } catch (error) { status.replaceChildren(errorBox(error)); } } }, 'Remove')))))
        : h('p', { class: 'muted', tid: 'no-notify-targets' }, 'No targets yet.'),
      targets.length > 0 && h('button', { type: 'button', class: 'btn', tid: 'notify-test-all',
        onclick: async () => { try { show((await api.testNotifications(null)).results); } catch (error) { status.replaceChildren(errorBox(error)); } } }, 'Test all'),
      h('h3', 'sub', 'Add a target'), form].filter(Boolean));
  }
  load();
  return panel('Notifications', 'notifications', h('p', 'muted', 'Webhook targets hear about updates, failed backups and GPU drift. Targets can also be set in config.yml (notifications).'), body, status);
}

export { notificationsPanel };
