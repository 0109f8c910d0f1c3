// The offline outbox as a list: records written on this device that have not reached the
// server yet — waiting, in conflict (both versions side by side, and the choice between them),
// or refused (the reason, and Discard). Renders nothing when the outbox is empty.
// `only` (optional) limits it to some statuses, e.g. only=${['conflict', 'error']}.
import { html, useState } from '../vendor/preact-htm.module.js';
import { errorMessage } from '../lib/api.js';
import { connectivity } from '../lib/connectivity.js';
import { formatDateTime } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { flushOutbox, outbox, resolveConflict } from '../lib/offline.js';
import { useStore } from '../lib/store.js';
import { ErrorBox } from './ui.js';

const BADGE = { waiting: 'pending', conflict: 'failed', error: 'failed' };
const EXCERPT = 600;

function excerpt(text) {
  const value = text || '';
  return value.length > EXCERPT ? value.slice(0, EXCERPT) + '…' : value;
}

/** One version of a record, as text only. */
function Version({ heading, record }) {
  return html`<div class="outbox-version">
    <h4>${heading}</h4>
    ${record.title && html`<p class="outbox-version-title">${record.title}</p>`}
    ${record.content && html`<p class="outbox-version-content">${excerpt(record.content)}</p>`}
    ${record.tags && record.tags.length > 0 && html`<ul class="tags">${record.tags.map((tag) => html`<li key=${tag} class="tag">${tag}</li>`)}</ul>`}
    ${record.occurred_at && html`<p class="small muted">${formatDateTime(record.occurred_at)}</p>`}
  </div>`;
}

function Item({ item }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const titleId = `outbox-item-${item.id}`;
  const choose = async (choice) => {
    setBusy(true);
    setError(null);
    try {
      await resolveConflict(item.id, choice);
    } catch {
      setError(t('outbox.resolveFailed'));
    }
    setBusy(false);
  };
  const data = item.data || {};
  const server = item.server;
  return html`<li class="card outbox-item">
    <div class="outbox-item-head">
      <h3 id=${titleId}>${data.title || excerpt(data.content).slice(0, 80) || t('outbox.untitled')}</h3>
      <span class=${'badge ' + (BADGE[item.status] || 'pending')}>${t(`outbox.status.${item.status}`)}</span>
    </div>
    <p class="small muted">${t('outbox.writtenAt', { time: formatDateTime(item.created_at) })}</p>
    ${item.status === 'conflict' && html`
      <p>${server && server.deleted ? t('outbox.deletedExplain') : t('outbox.conflictExplain')}</p>
      <div class="outbox-versions">
        <${Version} heading=${t('outbox.mine')} record=${data} />
        ${server && !server.deleted && html`<${Version} heading=${t('outbox.theirs')} record=${server} />`}
      </div>
      <div class="actions">
        <button type="button" disabled=${busy} aria-describedby=${titleId} onClick=${() => choose('mine')}>
          ${server && server.deleted ? t('outbox.keepMineAsNew') : t('outbox.keepMine')}
        </button>
        <button type="button" class="secondary" disabled=${busy} aria-describedby=${titleId} onClick=${() => choose('theirs')}>
          ${server && server.deleted ? t('outbox.discard') : t('outbox.keepTheirs')}
        </button>
      </div>`}
    ${item.status === 'error' && html`
      <p class="outbox-error">${t('outbox.errorExplain', { error: item.error || '—' })}</p>
      <div class="actions">
        <button type="button" class="secondary" disabled=${busy} aria-describedby=${titleId} onClick=${() => choose('theirs')}>${t('outbox.discard')}</button>
      </div>`}
    ${error && html`<p class="outbox-error" role="alert">${error}</p>`}
  </li>`;
}

export function OutboxList({ only }) {
  const all = useStore(outbox);
  const { online } = useStore(connectivity);
  const [syncing, setSyncing] = useState(false);
  const [error, setError] = useState(null);
  const items = only ? all.filter((item) => only.includes(item.status)) : all;
  if (!items.length) return null;
  const sync = async () => {
    setSyncing(true);
    setError(null);
    try {
      await flushOutbox();
    } catch (err) {
      setError(err);
    }
    setSyncing(false);
  };
  const waiting = items.some((item) => item.status === 'waiting');
  return html`<section class="outbox" aria-labelledby="outbox-list-heading">
    <h2 id="outbox-list-heading">${t('outbox.heading')}</h2>
    <p class="muted small">${t('outbox.explain')}</p>
    ${waiting && online && html`<div class="actions">
      <button type="button" class="secondary" disabled=${syncing} onClick=${sync}>${syncing ? t('outbox.syncing') : t('outbox.syncNow')}</button>
    </div>`}
    <${ErrorBox} error=${error && t('outbox.syncFailed', { message: errorMessage(error) })} onRetry=${sync} />
    <ul class="outbox-list">
      ${items.map((item) => html`<${Item} key=${item.id} item=${item} />`)}
    </ul>
  </section>`;
}
