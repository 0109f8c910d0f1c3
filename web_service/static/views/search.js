// Search (`#/search?q=…&kind=…&tag=…`): the query lives in the hash, so reload and back
// show the same results. `/` anywhere opens this view with the cursor in the box.
// Results come in ranked pages: "Load more" follows the page's `next_cursor`.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, query as toQuery } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { navigate } from '../lib/router.js';
import { ErrorBox, Loading, useLoad } from '../components/ui.js';
import { RecordCard } from '../components/record-card.js';
import { rememberTitle } from '../components/view-helpers.js';
import { KINDS } from '../components/kind-select.js';

const PAGE = 20;
const NO_MORE = { items: [], next: null, loading: false, error: null };

function searchPath(q, kind, tag, cursor) {
  return '/api/v1/search' + toQuery({ q, limit: PAGE, kind, tag, cursor });
}

function TagFilter({ value, onChange }) {
  const tags = useLoad((signal) => api.get('/api/v1/tags', { signal }), []);
  const names = (tags.data || []).map((tag) => tag.name);
  if (value && !names.includes(value)) names.unshift(value);
  return html`<div class="field">
    <label for="search-tag">${t('search.tag')}</label>
    <select id="search-tag" value=${value} onChange=${(e) => onChange(e.currentTarget.value)} aria-busy=${tags.loading}>
      <option value="">${tags.loading ? t('common.loading') : t('search.anyTag')}</option>
      ${names.map((name) => html`<option key=${name} value=${name}>${name}</option>`)}
    </select>
    ${tags.error && html`<span class="hint search-tag-error" role="alert">
      ${t('search.tagsFailed')} <button type="button" class="link-button" onClick=${tags.reload}>${t('common.retry')}</button>
    </span>`}
  </div>`;
}

export function SearchView({ query }) {
  const q = (query.get('q') || '').trim();
  const kind = KINDS.includes(query.get('kind')) ? query.get('kind') : '';
  const tag = query.get('tag') || '';
  const key = JSON.stringify([q, kind, tag]);

  const [draft, setDraft] = useState(q);
  // The pages after the first, valid only on top of the first page they followed (`base`).
  const [extra, setExtra] = useState({ base: null, ...NO_MORE });
  const inputRef = useRef(null);

  // The person came here to type: the box has the focus on arrival, and again when `/` is
  // pressed while this view is open (the path stays the same, so the view is not re-mounted).
  useEffect(() => inputRef.current && inputRef.current.focus(), []);
  useEffect(() => {
    if (query.has('focus') && inputRef.current) inputRef.current.focus();
  }, [query]);
  // Back and forward change the hash: show its query in the box.
  useEffect(() => setDraft(q), [q]);

  const results = useLoad(async (signal) => {
    if (!q) return { key, items: [], next: null };
    const page = await api.get(searchPath(q, kind, tag), { signal });
    for (const hit of page.items) rememberTitle(hit.record);
    return { key, items: page.items, next: page.next_cursor };
  }, [key]);

  const go = (next) => {
    const params = { q: draft, kind, tag, ...next };
    navigate('/search' + toQuery({ q: params.q.trim(), kind: params.kind, tag: params.tag }));
  };
  const submit = (event) => {
    event.preventDefault();
    go({ q: draft });
  };

  const data = results.data;
  const fresh = data && data.key === key;
  const more = fresh && extra.base === data ? extra : { ...NO_MORE, next: fresh ? data.next : null };
  // A record edited between two pages may move across them: show it once.
  const seen = new Set();
  const items = (fresh ? [...data.items, ...more.items] : []).filter((hit) => !seen.has(hit.record.id) && seen.add(hit.record.id));
  const canLoadMore = Boolean(more.next) && !results.loading;

  const loadMore = async () => {
    if (!more.next || more.loading) return;
    const base = data;
    setExtra({ ...more, base, loading: true, error: null });
    try {
      const page = await api.get(searchPath(q, kind, tag, more.next));
      for (const hit of page.items) rememberTitle(hit.record);
      setExtra((x) => (x.base !== base ? x : { base, items: [...x.items, ...page.items], next: page.next_cursor, loading: false, error: null }));
    } catch (error) {
      setExtra((x) => (x.base !== base ? x : { ...x, loading: false, error }));
    }
  };

  let body;
  if (!q) {
    body = html`<p class="muted search-hint">${t('search.hint')}</p>`;
  } else if (results.error && !fresh) {
    body = html`<${ErrorBox} error=${results.error} what onRetry=${results.reload} />`;
  } else if (results.loading && !fresh) {
    body = html`<${Loading} label=${t('search.searching')} />`;
  } else {
    body = html`
      <p class=${items.length ? 'small muted search-count' : 'empty'} role="status">
        ${items.length ? t('search.count', { count: items.length, q }) : t('search.none', { q })}
      </p>
      ${items.length > 0 && html`<ol class="search-hits">
        ${items.map((hit) => html`<li key=${hit.record.id}>
          <${RecordCard} record=${hit.record} headingLevel=${2} highlight=${hit.highlight || undefined} />
        </li>`)}
      </ol>`}
      ${results.error && html`<${ErrorBox} error=${results.error} what onRetry=${results.reload} />`}
      ${more.error && html`<${ErrorBox} error=${more.error} what onRetry=${loadMore} />`}
      ${canLoadMore && !results.error && !more.error && html`<p class="load-more">
        <button type="button" class="secondary" disabled=${more.loading} aria-busy=${more.loading} onClick=${loadMore}>
          ${more.loading ? t('common.loading') : t('common.loadMore')}
        </button>
      </p>`}`;
  }

  return html`<section class="page search-page">
    <h1 tabindex="-1">${t('search.title')}</h1>
    <form role="search" class="search-form" onSubmit=${submit}>
      <div class="search-box">
        <label for="search-q" class="visually-hidden">${t('search.label')}</label>
        <input id="search-q" ref=${inputRef} type="search" name="q" value=${draft} maxlength="200"
          autocomplete="off" enterkeyhint="search" placeholder=${t('search.placeholder')}
          onInput=${(e) => setDraft(e.currentTarget.value)} />
        <button type="submit">${t('search.submit')}</button>
      </div>
      <div class="row search-filters">
        <div class="field">
          <label for="search-kind">${t('search.kind')}</label>
          <select id="search-kind" value=${kind} onChange=${(e) => go({ kind: e.currentTarget.value })}>
            <option value="">${t('search.anyKind')}</option>
            ${KINDS.map((k) => html`<option key=${k} value=${k}>${t(`kind.${k}`)}</option>`)}
          </select>
        </div>
        <${TagFilter} value=${tag} onChange=${(value) => go({ tag: value })} />
      </div>
    </form>
    ${body}
  </section>`;
}
