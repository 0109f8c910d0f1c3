// `#/trash`: deleted records, most recently deleted first, until they are purged. Each can
// be restored, or deleted for good at once (after a confirmation).
import { html, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, errorMessage, query } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';
import { formatDateTime } from '../lib/format.js';
import { ErrorBox, Loading, useFocusHeading, useLoad } from '../components/ui.js';
import { RecordCard, recordTitle } from '../components/record-card.js';
import { useConfirm } from '../components/confirm-dialog.js';

const PAGE_SIZE = 30;

export function TrashView() {
  const heading = useRef(null);
  useFocusHeading(heading);
  const first = useLoad((signal) => api.get('/api/v1/trash' + query({ limit: PAGE_SIZE }), { signal }), []);
  const [more, setMore] = useState({ loading: false, error: null });
  const [busy, setBusy] = useState({}); // id → 'restore' | 'purge'
  const [errors, setErrors] = useState({}); // id → message
  const [done, setDone] = useState(null); // {kind: 'restored'|'purged', id, title}
  const [confirmDialog, ask] = useConfirm();

  const page = first.data;
  const items = page ? page.items : [];

  const loadMore = async () => {
    if (!page || !page.next_cursor || more.loading) return;
    setMore({ loading: true, error: null });
    try {
      const next = await api.get('/api/v1/trash' + query({ limit: PAGE_SIZE, cursor: page.next_cursor }));
      first.setData((p) => {
        const seen = new Set(p.items.map((item) => item.id));
        return { items: [...p.items, ...next.items.filter((item) => !seen.has(item.id))], next_cursor: next.next_cursor };
      });
      setMore({ loading: false, error: null });
    } catch (error) {
      setMore({ loading: false, error });
    }
  };

  const act = async (record, kind) => {
    const title = recordTitle(record);
    if (kind === 'purge') {
      const yes = await ask({ title: t('trash.purge.title'), message: t('trash.purge.text', { title }), confirmLabel: t('trash.purge.confirm'), danger: true });
      if (!yes) return;
    }
    setBusy((b) => ({ ...b, [record.id]: kind }));
    setErrors((e) => ({ ...e, [record.id]: null }));
    try {
      const path = `/api/v1/records/${encodeURIComponent(record.id)}`;
      if (kind === 'restore') await api.post(`${path}/restore`);
      else await api.post(`${path}/purge`);
      first.setData((p) => ({ ...p, items: p.items.filter((item) => item.id !== record.id) }));
      setDone({ kind: kind === 'restore' ? 'restored' : 'purged', id: record.id, title });
    } catch (error) {
      setErrors((e) => ({ ...e, [record.id]: errorMessage(error) }));
    } finally {
      setBusy((b) => ({ ...b, [record.id]: null }));
    }
  };

  return html`<section class="trash">
    <div class="page-header">
      <h1 tabindex="-1" ref=${heading}>${t('trash.heading')}</h1>
    </div>
    <p class="muted small">${t('trash.intro')}</p>
    <div class="trash-status" role="status">
      ${done && html`<p class="notice info">
        ${done.kind === 'restored'
          ? html`${t('trash.restored', { title: done.title })} <a href=${href(`/records/${encodeURIComponent(done.id)}`)}>${t('trash.openRestored')}</a>`
          : t('trash.purged', { title: done.title })}
      </p>`}
    </div>
    ${first.loading && !page && html`<${Loading} label=${t('trash.loading')} />`}
    ${first.error && html`<${ErrorBox} error=${first.error} what=${true} onRetry=${first.reload} />`}
    ${page && !items.length && !page.next_cursor && html`<div class="empty">
      <p>${t('trash.empty')}</p>
      <p><a href=${href('/')}>${t('page.backHome')}</a></p>
    </div>`}
    ${items.length > 0 && html`<ul class="record-list">
      ${items.map((record) => html`<li key=${record.id}>
        <${RecordCard} record=${record} headingLevel=${2} link=${false} headingId=${`trash-${record.id}`}
          meta=${t('trash.deletedAt', { when: formatDateTime(record.deleted_at) })}>
          <button type="button" class="secondary" disabled=${Boolean(busy[record.id])}
            aria-describedby=${`trash-${record.id}`}
            onClick=${() => act(record, 'restore')}>${busy[record.id] === 'restore' ? t('trash.restoring') : t('trash.restore')}</button>
          <button type="button" class="secondary danger-text" disabled=${Boolean(busy[record.id])}
            aria-describedby=${`trash-${record.id}`}
            onClick=${() => act(record, 'purge')}>${busy[record.id] === 'purge' ? t('trash.purging') : t('trash.purge')}</button>
          ${errors[record.id] && html`<p class="error-text small" role="alert">${errors[record.id]}</p>`}
        <//>
      </li>`)}
    </ul>`}
    ${more.error && html`<${ErrorBox} error=${more.error} what=${true} onRetry=${loadMore} />`}
    ${page && page.next_cursor && html`<div class="timeline-more">
      ${more.loading ? html`<${Loading} />` : html`<button type="button" class="secondary" onClick=${loadMore}>${t('common.loadMore')}</button>`}
    </div>`}
    ${confirmDialog}
  </section>`;
}
