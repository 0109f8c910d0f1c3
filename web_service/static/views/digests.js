// Digests (`#/digests`): the daily and weekly reviews the scheduler writes, newest period
// first. Opening one marks it read; pin the ones worth keeping at hand; write today's or
// this week's now. See docs/memories-digests.md.
import { html, useEffect, useMemo, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, errorMessage, query as toQuery } from '../lib/api.js';
import { formatDateTime, timeZone } from '../lib/format.js';
import { language, t } from '../lib/i18n.js';
import { headingsFrom, renderMarkdown } from '../lib/markdown.js';
import { ErrorBox, Loading } from '../components/ui.js';
import { LoadMore, RecordLinks, usePaged } from '../components/view-helpers.js';

const PAGE = 20;
const LINKED_RECORDS = 12; // records named under an open digest; the rest are counted

const locale = () => (language.get() === 'en' ? 'en-GB' : 'zh-CN');

/** "Wednesday, 10 March 2026" for a day, "9–15 Mar 2026" for a week (the end is exclusive). */
function periodText(digest) {
  const start = new Date(digest.period_start);
  if (digest.period === 'day') {
    return new Intl.DateTimeFormat(locale(), { dateStyle: 'full', timeZone: timeZone.get() }).format(start);
  }
  const last = new Date(new Date(digest.period_end).getTime() - 1);
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeZone: timeZone.get() }).formatRange(start, last);
}

/** The first line of text that is not a heading, as a preview of a closed digest. */
function preview(content) {
  const line = (content || '').split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
  if (!line) return '';
  const plain = line.replace(/^[-*>\d.\s]+/, '').replace(/[*_`]/g, '');
  return plain.length > 140 ? plain.slice(0, 140) + '…' : plain;
}

function Digest({ digest, open, onToggle, onChange }) {
  const [pinBusy, setPinBusy] = useState(false);
  const [failure, setFailure] = useState(null); // {what: 'read'|'pin', error}
  const body = useMemo(() => (open ? headingsFrom(renderMarkdown(digest.content), 3) : ''), [open, digest.content]);
  const bodyId = `digest-body-${digest.id}`;

  const patch = async (changes, what) => {
    setFailure(null);
    const before = digest;
    onChange({ ...digest, ...changes });
    try {
      onChange(await api.patch(`/api/v1/digests/${encodeURIComponent(digest.id)}`, changes));
    } catch (error) {
      onChange(before);
      setFailure({ what, error, changes });
    }
  };

  // Opening an unread digest marks it read.
  useEffect(() => {
    if (open && !digest.is_read) patch({ is_read: true }, 'read');
  }, [open]);

  const togglePin = async () => {
    setPinBusy(true);
    await patch({ is_pinned: !digest.is_pinned }, 'pin');
    setPinBusy(false);
  };

  const title = t(digest.period === 'day' ? 'digests.daily' : 'digests.weekly', { period: periodText(digest) });
  const extra = digest.record_ids.length - LINKED_RECORDS;
  return html`<li class=${'card digest' + (digest.is_read ? '' : ' unread') + (digest.is_pinned ? ' pinned' : '')}>
    <h2 class="digest-heading">
      <button type="button" class="digest-toggle" aria-expanded=${open} aria-controls=${bodyId} onClick=${onToggle}>
        ${!digest.is_read && html`<span class="unread-dot" aria-hidden="true"></span>`}
        <span class="digest-title">${title}</span>
      </button>
    </h2>
    <p class="digest-meta small muted">
      ${!digest.is_read && html`<span class="badge unread">${t('digests.unread')}</span>`}
      ${digest.is_pinned && html`<span class="badge pinned">${t('digests.pinned')}</span>`}
      <span>${t('digests.recordCount', { count: digest.record_ids.length })}</span>
      <span>${t('digests.written', { date: formatDateTime(digest.updated_at) })}</span>
    </p>
    ${!open && preview(digest.content) && html`<p class="digest-preview">${preview(digest.content)}</p>`}
    <div id=${bodyId} class="digest-body" hidden=${!open}>
      ${open && html`
        <div class="markdown" dangerouslySetInnerHTML=${{ __html: body }}></div>
        ${digest.record_ids.length > 0 && html`<div class="digest-records">
          <h3>${t('digests.records')}</h3>
          <${RecordLinks} ids=${digest.record_ids.slice(0, LINKED_RECORDS)} label=${t('digests.records')} />
          ${extra > 0 && html`<p class="small muted">${t('digests.moreRecords', { count: extra })}</p>`}
        </div>`}`}
    </div>
    <div class="actions">
      <button type="button" class="secondary" onClick=${togglePin} disabled=${pinBusy} aria-busy=${pinBusy}>
        ${digest.is_pinned ? t('digests.unpin') : t('digests.pin')}
      </button>
    </div>
    ${failure && html`<div class="error-box" role="alert">
      <p>${t(failure.what === 'pin' ? 'digests.pinFailed' : 'digests.readFailed', { message: errorMessage(failure.error) })}</p>
      <button type="button" class="secondary" onClick=${() => patch(failure.changes, failure.what)}>${t('common.retry')}</button>
    </div>`}
  </li>`;
}

function Generate({ onGenerated }) {
  const [busy, setBusy] = useState(null); // 'day' | 'week' while writing
  const [failure, setFailure] = useState(null); // {period, error}
  const generate = async (period) => {
    setBusy(period);
    setFailure(null);
    try {
      onGenerated(await api.post('/api/v1/digests/generate', { period }));
    } catch (error) {
      setFailure({ period, error });
    }
    setBusy(null);
  };
  return html`<div class="card digest-generate" role="group" aria-labelledby="digest-generate-label">
    <p id="digest-generate-label" class="digest-generate-label">${t('digests.generateLabel')}</p>
    <div class="actions">
      ${['day', 'week'].map((period) => html`<button key=${period} type="button" class=${period === 'day' ? '' : 'secondary'}
        onClick=${() => generate(period)} disabled=${busy !== null} aria-busy=${busy === period}>
        ${busy === period ? t('digests.generating') : t(period === 'day' ? 'digests.generateDay' : 'digests.generateWeek')}
      </button>`)}
    </div>
    <p class="small muted" role="status">${busy ? t('digests.generatingHint') : ''}</p>
    ${failure && html`<div class="error-box" role="alert">
      <p>${t('digests.generateFailed', { message: errorMessage(failure.error) })}</p>
      <button type="button" class="secondary" onClick=${() => generate(failure.period)}>${t('common.retry')}</button>
    </div>`}
  </div>`;
}

export function DigestsView() {
  const [period, setPeriod] = useState('');
  const [openIds, setOpenIds] = useState(() => new Set());
  const headingRef = useRef(null);
  useEffect(() => headingRef.current && headingRef.current.focus({ preventScroll: true }), []);
  const list = usePaged(
    (cursor, signal) => api.get('/api/v1/digests' + toQuery({ limit: PAGE, cursor, period }), { signal }),
    [period],
  );

  const toggle = (id) => setOpenIds((ids) => {
    const next = new Set(ids);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    return next;
  });
  const changed = (digest) => list.setItems((items) => items.map((d) => (d.id === digest.id ? digest : d)));
  const generated = (digest) => {
    if (!period || digest.period === period) {
      // A rewritten digest keeps its id: replace it; a new one goes where its period sorts.
      list.setItems((items) => [digest, ...items.filter((d) => d.id !== digest.id)]
        .sort((a, b) => new Date(b.period_start) - new Date(a.period_start) || (a.period === 'week') - (b.period === 'week')));
    }
    setOpenIds((ids) => new Set(ids).add(digest.id));
  };

  let body;
  if (list.loading) body = html`<${Loading} />`;
  else if (list.error) body = html`<${ErrorBox} error=${list.error} what onRetry=${list.reload} />`;
  else if (!list.items.length) body = html`<p class="empty">${t('digests.empty')}</p>`;
  else {
    body = html`<ul class="digest-list">
        ${list.items.map((d) => html`<${Digest} key=${d.id} digest=${d} open=${openIds.has(d.id)}
          onToggle=${() => toggle(d.id)} onChange=${changed} />`)}
      </ul>
      <${LoadMore} list=${list} />`;
  }

  return html`<section class="page digests-page">
    <h1 tabindex="-1" ref=${headingRef}>${t('digests.title')}</h1>
    <p class="muted">${t('digests.intro')}</p>
    <${Generate} onGenerated=${generated} />
    <div class="toolbar digest-toolbar">
      <div class="field digest-filter">
        <label for="digest-period">${t('digests.show')}</label>
        <select id="digest-period" value=${period} onChange=${(e) => setPeriod(e.currentTarget.value)}>
          <option value="">${t('digests.filter.all')}</option>
          <option value="day">${t('digests.filter.day')}</option>
          <option value="week">${t('digests.filter.week')}</option>
        </select>
      </div>
    </div>
    ${body}
  </section>`;
}
