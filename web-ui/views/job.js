// View: one job (state, timeline, live log over server-sent events, outputs, stop and clean-up actions).
import { api } from '../api.js';
import { safeUrl } from '../markdown.js';
import { h, muted, code, errorBox, panel } from '../dom.js';
import { arr } from '../format.js';

function jobView(main, id, ctx) {
  document.title = `Job ${id} · PVE App Store`;
  const state = h('span', { class: 'pill', tid: 'job-state' }, '…');
  const timeline = h('ol', { class: 'timeline', tid: 'job-timeline' });
  const log = h('pre', { class: 'log', tid: 'job-log', tabindex: 0 });
  const outputs = h('div', { tid: 'job-outputs' });
  const actions = h('div', 'job-actions');
  const title = h('h1', null, `Job ${id}`);
  main.replaceChildren(h('section', { class: 'job', tid: 'job', 'data-job-id': id }, title, h('p', null, 'State: ', state), actions,
    h('div', 'detail-grid', h('div', null, panel('Log', 'log', log)), h('aside', 'detail-side', panel('Timeline', 'timeline', timeline), panel('Outputs', 'outputs', outputs)))));
  let follow = true;
  log.onscroll = () => { follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; };
  const fmt = (ms) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

  async function refresh() {
    const j = await api.job(id);
    if (!ctx.alive) return;
    const job = j.job || {};
    title.textContent = job.user_action || `Job ${id}`;
    state.textContent = job.state;
    state.className = 'pill t-' + (job.state === 'completed' ? 'ok' : job.state === 'failed' ? 'warn' : 'info');
    const tr = arr(j.transitions);
    timeline.replaceChildren(...tr.map((t, i) => h('li', { 'data-state': t.to_state }, h('span', null, t.to_state),
      i + 1 < tr.length ? muted(' ' + fmt(tr[i + 1].at_ms - t.at_ms)) : null, t.reason && h('p', 'field-error', t.reason))));
    actions.replaceChildren();
    const terminal = ['completed', 'failed', 'canceled'].includes(job.state);
    if (!terminal) actions.append(h('button', { type: 'button', class: 'btn', tid: 'job-cancel', onclick: () => api.cancelJob(id).catch(() => {}) }, 'Stop job'));
    if (terminal && job.kind === 'install' && job.state !== 'completed' && job.ctid) {
      actions.append(h('button', { type: 'button', class: 'btn', tid: 'job-destroy', onclick: async () => {
        const typed = prompt(`Destroy container ${job.ctid}? Type its id to confirm.`);
        if (typed === String(job.ctid)) { const r = await api.destroyFailed(id); location.hash = '#/jobs/' + r.job_id; }
      } }, 'Destroy failed container'));
    }
    if (job.state === 'completed' && job.install_id) {
      const list = await api.installs();
      const inst = arr(list.installs).find((x) => x.id === job.install_id);
      outputs.replaceChildren(h('ul', 'outputs', arr(inst?.outputs).map((o) => {
        const url = typeof o.value === 'string' && /^https?:\/\//.test(o.value) ? safeUrl(o.value) : null;
        return h('li', { tid: 'job-output', 'data-key': o.key }, h('span', null, o.label || o.key, ': '),
          o.secret ? muted('(secret: reveal it on the installed app\'s page)') : code(o.value ?? ''),
          !o.secret && h('button', { type: 'button', class: 'btn btn-sm', onclick: () => navigator.clipboard?.writeText(String(o.value)) }, 'Copy'),
          url && h('a', { class: 'btn btn-sm', href: url, target: '_blank', rel: 'noopener noreferrer', tid: 'open-app' }, 'Open app'));
      })));
    }
    return terminal;
  }

  const es = new EventSource(`/api/jobs/${encodeURIComponent(id)}/stream`);
  es.addEventListener('log', (e) => {
    const l = JSON.parse(e.data);
    log.append(h('span', { class: 'log-line ' + l.stream, 'data-seq': l.seq }, l.line + '\n'));
    if (follow) log.scrollTop = log.scrollHeight;
  });
  es.addEventListener('state', async (e) => {
    const s = JSON.parse(e.data);
    const terminal = await refresh().catch(() => false);
    if (terminal || ['completed', 'failed', 'canceled'].includes(s.state)) es.close();
  });
  es.onerror = () => { if (!ctx.alive) es.close(); };
  refresh().catch((err) => ctx.alive && main.prepend(errorBox(err)));
  return { cleanup: () => es.close() };
}

export { jobView };
