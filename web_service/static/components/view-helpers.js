// Pieces the search, assistant, memories and digests views share: a cursor-paged list with
// "Load more", record titles fetched once and cached (citations, digests), headings of
// rendered Markdown moved below the view's own, and a delete button that asks first.
import { html, useCallback, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, ApiError, errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { createStore, useStore } from '../lib/store.js';
import { useConfirm } from './confirm-dialog.js';
import { recordTitle } from './record-card.js';

export { recordTitle };

/**
 * A list read page by page: `loadPage(cursor, signal)` answers `{items, next_cursor}`.
 * Answers `{items, nextCursor, loading, error, moreLoading, moreError, reload, loadMore, setItems}`.
 * `initial` (items already known, e.g. from a cache) is shown at once while the first
 * page loads again quietly.
 */
export function usePaged(loadPage, deps = [], { initial = null } = {}) {
  const [state, setState] = useState(() => ({
    items: initial ? initial.items : [],
    nextCursor: initial ? initial.nextCursor : null,
    loading: !initial,
    error: null,
    moreLoading: false,
    moreError: null,
  }));
  const latest = useRef(state);
  latest.current = state;
  const controller = useRef(null);
  const quiet = useRef(Boolean(initial));

  const reload = useCallback(() => {
    if (controller.current) controller.current.abort();
    const current = new AbortController();
    controller.current = current;
    const silent = quiet.current;
    quiet.current = false;
    setState((s) => ({ ...s, loading: !silent, error: null, moreError: null, moreLoading: false }));
    loadPage(null, current.signal).then(
      (page) => !current.signal.aborted && setState((s) => ({ ...s, items: page.items, nextCursor: page.next_cursor, loading: false })),
      (error) => !current.signal.aborted && error.name !== 'AbortError' && setState((s) => ({ ...s, error: silent ? null : error, loading: false })),
    );
  }, deps);

  useEffect(() => {
    reload();
    return () => controller.current && controller.current.abort();
  }, [reload]);

  const loadMore = useCallback(() => {
    const { nextCursor, moreLoading } = latest.current;
    if (!nextCursor || moreLoading) return;
    const signal = controller.current ? controller.current.signal : undefined;
    setState((s) => ({ ...s, moreLoading: true, moreError: null }));
    loadPage(nextCursor, signal).then(
      (page) => (!signal || !signal.aborted) && setState((s) => {
        const seen = new Set(s.items.map((item) => item.id));
        return { ...s, items: [...s.items, ...page.items.filter((item) => !seen.has(item.id))], nextCursor: page.next_cursor, moreLoading: false };
      }),
      (error) => error.name !== 'AbortError' && setState((s) => ({ ...s, moreLoading: false, moreError: error })),
    );
  }, deps);

  const setItems = useCallback((update) => setState((s) => ({ ...s, items: update(s.items) })), []);
  return { ...state, reload, loadMore, setItems };
}

/** "Load more" under a paged list, with its own loading and error states. */
export function LoadMore({ list, label }) {
  if (list.moreError) {
    return html`<div class="error-box" role="alert">
      <p>${t('kit.loadMoreFailed')}</p>
      <button type="button" class="secondary" onClick=${list.loadMore}>${t('common.retry')}</button>
    </div>`;
  }
  if (!list.nextCursor) return null;
  return html`<p class="load-more">
    <button type="button" class="secondary" onClick=${list.loadMore} disabled=${list.moreLoading} aria-busy=${list.moreLoading}>
      ${list.moreLoading ? t('common.loading') : label || t('common.loadMore')}
    </button>
  </p>`;
}

// id → {status: 'loading' | 'ok' | 'gone' | 'error', title}; shared by every view, kept for the session.
const titles = createStore({});

function fetchTitle(id, force = false) {
  const known = titles.get()[id];
  if (known && !force && known.status !== 'error') return;
  titles.set((all) => ({ ...all, [id]: { status: 'loading' } }));
  api.get(`/api/v1/records/${encodeURIComponent(id)}`).then(
    (record) => titles.set((all) => ({ ...all, [id]: { status: 'ok', title: recordTitle(record) } })),
    (error) => {
      const gone = error instanceof ApiError && (error.status === 404 || error.status === 410);
      titles.set((all) => ({ ...all, [id]: { status: gone ? 'gone' : 'error' } }));
    },
  );
}

/** Remember a title already at hand (e.g. from search results), saving a request later. */
export function rememberTitle(record) {
  titles.set((all) => ({ ...all, [record.id]: { status: 'ok', title: recordTitle(record) } }));
}

/** The titles of `ids`, fetched once each: `{id: {status, title}}`; `retry(id)` asks again. */
export function useRecordTitles(ids) {
  const all = useStore(titles);
  const key = ids.join(',');
  useEffect(() => {
    for (const id of ids) fetchTitle(id);
  }, [key]);
  return { titles: all, retry: (id) => fetchTitle(id, true) };
}

/** Links to records by id, each named by the record's title; a deleted one says so. */
export function RecordLinks({ ids, label, className = '' }) {
  const { titles: known, retry } = useRecordTitles(ids);
  if (!ids.length) return null;
  return html`<ul class=${'record-links ' + className} aria-label=${label}>
    ${ids.map((id) => {
      const entry = known[id] || { status: 'loading' };
      if (entry.status === 'gone') {
        return html`<li key=${id}><span class="muted">${t('kit.recordUnavailable')}</span></li>`;
      }
      if (entry.status === 'error') {
        return html`<li key=${id}>
          <a href=${'#/records/' + encodeURIComponent(id)}>${t('kit.recordNoTitle')}</a>
          ${' '}<button type="button" class="link-button small" onClick=${() => retry(id)}>${t('common.retry')}</button>
        </li>`;
      }
      return html`<li key=${id}>
        <a href=${'#/records/' + encodeURIComponent(id)} aria-busy=${entry.status === 'loading'}>
          ${entry.status === 'ok' ? entry.title : t('kit.recordLoading')}
        </a>
      </li>`;
    })}
  </ul>`;
}

/**
 * A delete button that asks first (the app's confirm dialog), then runs `onConfirm()`;
 * a failure is shown next to it with a retry.
 */
export function ConfirmDelete({ label, question, message, onConfirm }) {
  const [dialog, ask] = useConfirm();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const start = async () => {
    if (await ask({ title: question, message, confirmLabel: t('common.delete'), danger: true })) run();
  };
  return html`<button type="button" class="secondary" aria-label=${label} onClick=${start} disabled=${busy} aria-busy=${busy}>
      ${busy ? t('kit.deleting') : t('common.delete')}
    </button>
    ${dialog}
    ${error && html`<span class="delete-error" role="alert">
      ${t('kit.deleteFailed', { message: errorMessage(error) })}
      <button type="button" class="link-button" onClick=${run}>${t('common.retry')}</button>
    </span>`}`;
}
