// Search (`#/search?q=…&kind=…&tag=…`): the query lives in the hash, so reload and back
// show the same results. `/` anywhere opens this view with the cursor in the box.
// The API answers one ranked page (no cursor): "Load more" asks again for a larger page.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, query as toQuery } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { navigate } from '../lib/router.js';
import { ErrorBox, Loading, useLoad } from '../components/ui.js';
import { RecordCard } from '../components/record-card.js';
import { rememberTitle } from '../components/view-helpers.js';
import { KINDS } from '../components/kind-select.js';

const PAGE = 20;
const MAX_RESULTS = 100; // the API's cap on `limit`

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
  const [more, setMore] = useState({ key, limit: PAGE });
  const limit = more.key === key ? more.limit : PAGE;
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
    if (!q) return { key, limit, items: [] };
    const page = await api.get('/api/v1/search' + toQuery({ q, limit, kind, tag }), { signal });
    for (const hit of page.items) rememberTitle(hit.record);
    return { key, limit, items: page.items };
  }, [key, limit]);

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
  const items = fresh ? data.items : [];
  const canLoadMore = fresh && items.length >= data.limit && data.limit < MAX_RESULTS;

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
      ${canLoadMore && !results.error && html`<p class="load-more">
        <button type="button" class="secondary" disabled=${results.loading} aria-busy=${results.loading}
          onClick=${() => setMore({ key, limit: Math.min(MAX_RESULTS, limit + PAGE) })}>
          ${results.loading ? t('common.loading') : t('common.loadMore')}
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
