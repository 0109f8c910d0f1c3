// `#/`: the signed-in person's records, newest first, grouped by day; filters (kind, tag,
// date range) live in the hash query so a reload keeps them. Pages load as the end of the
// list scrolls into view (and by a "Load more" button). Live events put new, edited and
// analysed records in place; records still waiting in the offline outbox come first.
import { html, useCallback, useEffect, useMemo, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, query as toQuery } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { href, navigate } from '../lib/router.js';
import { dayKey, formatDay, timeZone } from '../lib/format.js';
import { liveEvents } from '../lib/live.js';
import { outbox } from '../lib/offline.js';
import { useStore } from '../lib/store.js';
import { connectivity } from '../lib/connectivity.js';
import { session } from '../lib/session.js';
import { ErrorBox, Loading, useFocusHeading, useLoad } from '../components/ui.js';
import { RecordCard } from '../components/record-card.js';
import { KindSelect } from '../components/kind-select.js';
import { NoticeBar } from '../components/notice.js';
import { OutboxList } from '../components/outbox-list.js';

const PAGE_SIZE = 30;

// --- the date range, as instants in the user's time zone ---

/** Minutes east of UTC of `timeZoneName` at the instant `ms`. */
function zoneOffset(ms, timeZoneName) {
  const parts = {};
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: timeZoneName, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  for (const part of format.formatToParts(new Date(ms))) parts[part.type] = part.value;
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60_000);
}

/** `YYYY-MM-DD` (plus `days`) at midnight in the user's time zone, as ISO 8601 with its offset. */
export function dayStartIso(date, days = 0) {
  const [y, m, d] = date.split('-').map(Number);
  const zone = timeZone.get();
  const wall = Date.UTC(y, m - 1, d + days);
  let offset = zoneOffset(wall, zone);
  offset = zoneOffset(wall - offset * 60_000, zone); // once more across a DST change
  const local = new Date(wall).toISOString().slice(0, 19);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** The <input type=date> value for a `from` or (exclusive) `to` instant. */
function dateInputValue(iso, exclusiveEnd = false) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '';
  return dayKey(new Date(exclusiveEnd ? ms - 1 : ms).toISOString());
}

function filtersFrom(query) {
  return {
    kind: query.get('kind') || '',
    tag: query.get('tag') || '',
    from: query.get('from') || '',
    to: query.get('to') || '',
  };
}

/** Whether a record belongs in the list under these filters. */
function matches(record, filters) {
  if (filters.kind && record.kind !== filters.kind) return false;
  if (filters.tag && !(record.tags || []).includes(filters.tag)) return false;
  const at = Date.parse(record.occurred_at);
  if (filters.from && at < Date.parse(filters.from)) return false;
  if (filters.to && at >= Date.parse(filters.to)) return false;
  return true;
}

const newerFirst = (a, b) => Date.parse(b.occurred_at) - Date.parse(a.occurred_at) || (a.id < b.id ? 1 : -1);

/** `items` with `record` put where it belongs, or left out when it no longer matches or
 * would sit beyond the pages loaded so far. */
function placed(items, record, filters, complete) {
  const rest = items.filter((item) => item.id !== record.id);
  if (!matches(record, filters)) return rest;
  const last = rest[rest.length - 1];
  if (!complete && last && newerFirst(record, last) > 0) return rest;
  return [...rest, record].sort(newerFirst);
}

function groupByDay(items) {
  const groups = [];
  for (const record of items) {
    const key = dayKey(record.occurred_at);
    const group = groups[groups.length - 1];
    if (group && group.key === key) group.items.push(record);
    else groups.push({ key, label: formatDay(record.occurred_at), items: [record] });
  }
  return groups;
}

// --- the list ---

/** Pages of records for `filters`: `{items, next, loading, error, offline, moreLoading, moreError,
 * reload, loadMore, setItems}`. Offline, or in an offline session (no token yet), nothing is
 * asked: the request could only fail. `online` changing reloads. */
function useRecordPages(filters, online) {
  const [state, setState] = useState({ items: [], next: null, loading: true, error: null, offline: false, moreLoading: false, moreError: null });
  const controller = useRef(null);
  const current = useRef(state);
  current.current = state;
  const key = JSON.stringify(filters);
  const shownKey = useRef(key); // the filters the items on screen were loaded with

  const fetchPage = (cursor, signal) => api.get('/api/v1/records' + toQuery({ limit: PAGE_SIZE, cursor, ...filters }), { signal });

  const reload = useCallback(() => {
    if (controller.current) controller.current.abort();
    const mine = new AbortController();
    controller.current = mine;
    if (!online) {
      setState((s) => ({ ...s, loading: false, offline: true }));
      return;
    }
    // Other filters: the old list goes at once; the same ones (a retry, a reset) keep it meanwhile.
    const fresh = shownKey.current !== key;
    shownKey.current = key;
    setState((s) => ({ ...s, ...(fresh ? { items: [], next: null } : {}), loading: true, error: null, offline: false, moreError: null }));
    fetchPage(null, mine.signal).then(
      (page) => !mine.signal.aborted && setState({ items: page.items, next: page.next_cursor, loading: false, error: null, offline: false, moreLoading: false, moreError: null }),
      (error) => !mine.signal.aborted && error.name !== 'AbortError' && setState((s) => ({ ...s, loading: false, error })),
    );
  }, [key, online]);

  const loadMore = useCallback(() => {
    const s = current.current;
    if (!s.next || s.loading || s.moreLoading || !online) return;
    const mine = controller.current;
    const signal = mine ? mine.signal : undefined;
    setState((x) => ({ ...x, moreLoading: true, moreError: null }));
    fetchPage(s.next, signal).then(
      (page) => {
        if (signal && signal.aborted) return;
        setState((x) => {
          const seen = new Set(x.items.map((item) => item.id));
          return { ...x, items: [...x.items, ...page.items.filter((item) => !seen.has(item.id))], next: page.next_cursor, moreLoading: false };
        });
      },
      (error) => !(signal && signal.aborted) && error.name !== 'AbortError' && setState((x) => ({ ...x, moreLoading: false, moreError: error })),
    );
  }, [key, online]);

  useEffect(() => {
    reload();
    return () => controller.current && controller.current.abort();
  }, [reload]);

  const setItems = useCallback((update) => setState((s) => ({ ...s, items: update(s.items, s) })), []);
  return { ...state, reload, loadMore, setItems };
}

// More events than this within BURST_MS (an import, a sync of another device) make one
// reload of the list instead of one GET per record.
const BURST_EVENTS = 20;
const BURST_MS = 1000;

/** Keep the list in step with changes made elsewhere (another tab, the phone, the AI).
 * Answers can come back out of order: per record id the latest event seen is kept, and a
 * fetched answer is dropped when a newer event (or a delete) came since; an item is never
 * replaced by a lower version. */
function useLiveRecords(filters, pages) {
  const latest = useRef({ filters, pages });
  latest.current = { filters, pages };
  useEffect(() => {
    let seq = 0;
    const last = new Map(); // record id → {seq, deleted, created} of the latest event seen
    let recent = []; // when the last events came (for the burst)
    let burst = null; // the timer of the one reload a burst makes
    const reloadAll = () => {
      last.clear(); // answers still on their way are dropped: the reload brings everything
      latest.current.pages.reload();
    };
    const unsubscribe = liveEvents.subscribe(async (event) => {
      const { pages: p } = latest.current;
      if (event.type === 'reset') {
        reloadAll();
        return;
      }
      const now = Date.now();
      recent = recent.filter((at) => now - at < BURST_MS);
      recent.push(now);
      if (burst || recent.length > BURST_EVENTS) {
        last.clear();
        if (!burst) {
          burst = setTimeout(() => {
            burst = null;
            recent = [];
            reloadAll();
          }, BURST_MS);
        }
        return;
      }
      const id = event.record_id;
      const previous = last.get(id);
      if (event.type === 'deleted') {
        last.set(id, { seq: ++seq, deleted: true });
        p.setItems((items) => items.filter((item) => item.id !== id));
        return;
      }
      const shown = p.items.find((item) => item.id === id);
      const restored = event.type === 'updated' && previous && previous.deleted; // out of the trash
      const waiting = previous && previous.created && !previous.deleted; // a new one still being fetched
      // An edit or analysis of a record not in the list (filtered out, beyond the pages
      // loaded) is not fetched.
      if (!shown && !restored && !waiting && event.type !== 'created') return;
      // An older version than the one shown is stale news (an analysis keeps the version).
      if (shown && event.version && shown.version > event.version) return;
      const mine = ++seq;
      const placeable = event.type === 'created' || restored || waiting;
      last.set(id, { seq: mine, created: placeable });
      const current = () => {
        const entry = last.get(id);
        return entry && entry.seq === mine;
      };
      let record;
      try {
        record = await api.get(`/api/v1/records/${encodeURIComponent(id)}`);
      } catch (error) {
        if (error.status === 404 && current()) latest.current.pages.setItems((items) => items.filter((item) => item.id !== id));
        return; // otherwise the next event or a reload will catch up
      }
      if (!current()) return; // a newer event (or a delete) came meanwhile: its answer counts
      latest.current.pages.setItems((items, s) => {
        const had = items.find((item) => item.id === record.id);
        if (had && had.version > record.version) return items; // never back to an older version
        if (!had && !placeable) return items;
        return placed(items, record, latest.current.filters, !s.next);
      });
    });
    return () => {
      unsubscribe();
      clearTimeout(burst);
    };
  }, []);
}

function Filters({ filters, onChange, online }) {
  const tags = useLoad((signal) => (online ? api.get('/api/v1/tags', { signal }) : Promise.resolve([])), [online]);
  const names = (tags.data || []).map((tag) => tag.name);
  if (filters.tag && !names.includes(filters.tag)) names.unshift(filters.tag);
  const active = filters.kind || filters.tag || filters.from || filters.to;
  const setDate = (name) => (event) => {
    const value = event.currentTarget.value;
    onChange({ [name]: value ? dayStartIso(value, name === 'to' ? 1 : 0) : '' });
  };
  return html`<form class="timeline-filters" aria-label=${t('timeline.filters')} onSubmit=${(e) => e.preventDefault()}>
    <div class="field">
      <label for="filter-kind">${t('timeline.filter.kind')}</label>
      <${KindSelect} id="filter-kind" value=${filters.kind} allLabel=${t('timeline.filter.allKinds')}
        onChange=${(kind) => onChange({ kind })} />
    </div>
    <div class="field">
      <label for="filter-tag">${t('timeline.filter.tag')}</label>
      <select id="filter-tag" value=${filters.tag} aria-busy=${tags.loading ? 'true' : 'false'}
        onChange=${(event) => onChange({ tag: event.currentTarget.value })}>
        <option value="">${tags.loading ? t('common.loading') : t('timeline.filter.allTags')}</option>
        ${names.map((name) => html`<option key=${name} value=${name}>${name}</option>`)}
      </select>
    </div>
    <div class="field">
      <label for="filter-from">${t('timeline.filter.from')}</label>
      <input id="filter-from" type="date" value=${filters.from ? dateInputValue(filters.from) : ''} onChange=${setDate('from')} />
    </div>
    <div class="field">
      <label for="filter-to">${t('timeline.filter.to')}</label>
      <input id="filter-to" type="date" value=${filters.to ? dateInputValue(filters.to, true) : ''} onChange=${setDate('to')} />
    </div>
    ${active && html`<button type="button" class="secondary filter-clear"
      onClick=${() => onChange({ kind: '', tag: '', from: '', to: '' })}>${t('timeline.filter.clear')}</button>`}
    ${tags.error && html`<div class="filter-error"><${ErrorBox} error=${tags.error} what=${true} onRetry=${tags.reload} /></div>`}
  </form>`;
}

function Outbox({ shownIds }) {
  const items = useStore(outbox) || [];
  // New records only: an edit made offline shows once it has synced.
  const waiting = items.filter((item) => item.status === 'waiting' && item.op !== 'delete' && !item.base_version && item.data && !shownIds.has(item.id));
  if (!waiting.length) return null;
  return html`<section class="timeline-outbox" aria-labelledby="outbox-heading">
    <h2 id="outbox-heading">${t('timeline.outbox.heading')}</h2>
    <ul class="record-list">
      ${waiting.map((item) => html`<li key=${item.id}>
        <${RecordCard} record=${{ ...item.data, id: item.id }} link=${false}
          badge=${html`<span class="badge outbox-badge">${t('timeline.outbox.waiting')}</span>`} />
      </li>`)}
    </ul>
  </section>`;
}

export function TimelineView({ query }) {
  const heading = useRef(null);
  useFocusHeading(heading);
  const filters = useMemo(() => filtersFrom(query), [query.toString()]);
  const { online: browserOnline } = useStore(connectivity);
  const { offline: sessionOffline } = useStore(session);
  const online = browserOnline && !sessionOffline;
  const pages = useRecordPages(filters, online);
  useLiveRecords(filters, pages);

  const setFilters = (change) => {
    const next = { ...filters, ...change };
    navigate('/' + toQuery(next), { replace: true });
  };

  // Infinite scroll: load the next page as the sentinel nears the viewport.
  const sentinel = useRef(null);
  const loadMore = useRef(pages.loadMore);
  loadMore.current = pages.loadMore;
  useEffect(() => {
    if (!sentinel.current || !pages.next || !('IntersectionObserver' in window)) return undefined;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadMore.current();
    }, { rootMargin: '600px 0px' });
    observer.observe(sentinel.current);
    return () => observer.disconnect();
  }, [pages.next, pages.items.length]);

  const filtered = Boolean(filters.kind || filters.tag || filters.from || filters.to);
  const groups = groupByDay(pages.items);
  const shownIds = new Set(pages.items.map((item) => item.id));

  return html`<section class="timeline">
    <div class="page-header">
      <h1 tabindex="-1" ref=${heading}>${t('timeline.heading')}</h1>
      <a class="button" href=${href('/new')}>${t('timeline.new')}</a>
    </div>
    <${NoticeBar} />
    <${Filters} filters=${filters} onChange=${setFilters} online=${online} />
    <${Outbox} shownIds=${shownIds} />
    <${OutboxList} only=${['conflict', 'error']} />
    ${pages.loading && !pages.items.length && html`<${Loading} label=${t('timeline.loading')} />`}
    ${pages.error && html`<${ErrorBox} error=${pages.error} what=${true} onRetry=${pages.reload} />`}
    ${pages.offline && html`<p class="notice warn">${t('timeline.offline')}</p>`}
    ${!pages.loading && !pages.error && !pages.offline && !pages.items.length && (filtered
      ? html`<div class="timeline-empty empty">
          <p>${t('timeline.empty.filtered')}</p>
          <button type="button" class="secondary" onClick=${() => setFilters({ kind: '', tag: '', from: '', to: '' })}>${t('timeline.filter.clear')}</button>
        </div>`
      : html`<div class="timeline-empty empty">
          <p class="timeline-empty-title">${t('timeline.empty.title')}</p>
          <p>${t('timeline.empty.text')}</p>
          <a class="button" href=${href('/new')}>${t('timeline.empty.action')}</a>
        </div>`)}
    ${groups.map((group) => html`<section key=${group.key} class="timeline-day">
      <h2 class="day-header">${group.label}</h2>
      <ul class="record-list">
        ${group.items.map((record) => html`<li key=${record.id}><${RecordCard} record=${record} timeOnly=${true} /></li>`)}
      </ul>
    </section>`)}
    ${pages.items.length > 0 && pages.loading && html`<${Loading} label=${t('timeline.loading')} />`}
    <div ref=${sentinel} class="timeline-sentinel" aria-hidden="true"></div>
    ${pages.moreError && html`<${ErrorBox} error=${pages.moreError} what=${true} onRetry=${pages.loadMore} />`}
    ${pages.next && !pages.error && !pages.offline && html`<div class="timeline-more">
      ${pages.moreLoading
        ? html`<${Loading} label=${t('timeline.loadingMore')} />`
        : html`<button type="button" class="secondary" onClick=${pages.loadMore}>${t('common.loadMore')}</button>`}
    </div>`}
    ${!pages.next && pages.items.length > PAGE_SIZE && html`<p class="timeline-end muted small">${t('timeline.end')}</p>`}
  </section>`;
}
