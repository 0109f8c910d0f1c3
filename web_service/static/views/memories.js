// Memories (`#/memories`): the facts the assistant keeps about the person, from their
// records, their chats, or written by them. Add, edit in place, delete; filter long-term
// and short-term. See docs/memories-digests.md.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, ApiError, errorMessage, query as toQuery } from '../lib/api.js';
import { formatDateTime } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';
import { ErrorBox, Loading } from '../components/ui.js';
import { ConfirmDelete, LoadMore, usePaged } from '../components/view-helpers.js';

const PAGE = 50;
const FILTERS = { all: undefined, long: true, short: false };

const percent = (importance) => Math.round(importance * 100);

function Source({ memory }) {
  if (memory.source === 'record' && memory.source_id) {
    return html`<a href=${href('/records/' + encodeURIComponent(memory.source_id))}>${t('memories.source.record')}</a>`;
  }
  if (memory.source === 'chat' && memory.source_id) {
    return html`<a href=${href('/assistant/' + encodeURIComponent(memory.source_id))}>${t('memories.source.chat')}</a>`;
  }
  return html`<span>${t(`memories.source.${memory.source}`, {}, t('memories.source.user'))}</span>`;
}

/** Content, importance and lifetime: the same fields to add a memory and to edit one. */
function MemoryFields({ idPrefix, value, onChange }) {
  const set = (field) => (event) => {
    const target = event.currentTarget;
    onChange({ ...value, [field]: field === 'importance' ? Number(target.value) / 100 : field === 'long_term' ? target.value === 'long' : target.value });
  };
  return html`
    <div class="field">
      <label for=${idPrefix + '-content'}>${t('memories.content')}</label>
      <textarea id=${idPrefix + '-content'} class="memory-content-input" rows="2" maxlength="500" required
        value=${value.content} onInput=${set('content')}></textarea>
    </div>
    <div class="row">
      <div class="field">
        <label for=${idPrefix + '-importance'}>${t('memories.importance')}</label>
        <span class="memory-importance-input">
          <input id=${idPrefix + '-importance'} type="range" min="0" max="100" step="5"
            value=${percent(value.importance)} aria-valuetext=${percent(value.importance) + '%'} onInput=${set('importance')} />
          <output for=${idPrefix + '-importance'} aria-hidden="true">${percent(value.importance)}%</output>
        </span>
      </div>
      <div class="field">
        <label for=${idPrefix + '-term'}>${t('memories.term')}</label>
        <select id=${idPrefix + '-term'} value=${value.long_term ? 'long' : 'short'} onChange=${set('long_term')}>
          <option value="long">${t('memories.longTerm')}</option>
          <option value="short">${t('memories.shortTerm')}</option>
        </select>
      </div>
    </div>`;
}

function AddMemory({ onAdded }) {
  const blank = { content: '', importance: 0.7, long_term: true };
  const [value, setValue] = useState(blank);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const submit = async (event) => {
    event.preventDefault();
    if (!value.content.trim()) return;
    setBusy(true);
    setError(null);
    setNotice('');
    try {
      const memory = await api.post('/api/v1/memories', { ...value, content: value.content.trim() });
      const known = onAdded(memory);
      setNotice(known ? t('memories.reinforced') : t('memories.added'));
      setValue(blank);
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  return html`<form class="card memory-add" onSubmit=${submit} aria-labelledby="memory-add-heading">
    <h2 id="memory-add-heading">${t('memories.addHeading')}</h2>
    <${MemoryFields} idPrefix="memory-new" value=${value} onChange=${setValue} />
    <div class="actions">
      <button type="submit" disabled=${busy || !value.content.trim()} aria-busy=${busy}>${busy ? t('common.saving') : t('memories.add')}</button>
      <span class="small muted" role="status">${notice}</span>
    </div>
    ${error && html`<${ErrorBox} error=${t('memories.addFailed', { message: errorMessage(error) })} />`}
  </form>`;
}

function EditMemory({ memory, onSaved, onCancel }) {
  const [value, setValue] = useState({ content: memory.content, importance: memory.importance, long_term: memory.long_term });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const formRef = useRef(null);
  useEffect(() => {
    const input = formRef.current && formRef.current.querySelector('textarea');
    if (input) input.focus();
  }, []);
  const save = async (event) => {
    event.preventDefault();
    const changes = {};
    if (value.content.trim() !== memory.content) changes.content = value.content.trim();
    if (value.importance !== memory.importance) changes.importance = value.importance;
    if (value.long_term !== memory.long_term) changes.long_term = value.long_term;
    if (!Object.keys(changes).length) return onCancel();
    setBusy(true);
    setError(null);
    try {
      onSaved(await api.patch(`/api/v1/memories/${encodeURIComponent(memory.id)}`, changes));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const message = error && (error instanceof ApiError && error.status === 409 ? t('memories.duplicate') : errorMessage(error));
  return html`<form class="memory-edit" ref=${formRef} onSubmit=${save} onKeyDown=${(e) => e.key === 'Escape' && onCancel()}>
    <${MemoryFields} idPrefix=${'memory-' + memory.id} value=${value} onChange=${setValue} />
    <p class="small muted">${t('memories.editNote')}</p>
    <div class="actions">
      <button type="submit" disabled=${busy || !value.content.trim()} aria-busy=${busy}>${busy ? t('common.saving') : t('common.save')}</button>
      <button type="button" class="secondary" onClick=${onCancel}>${t('common.cancel')}</button>
    </div>
    ${error && html`<${ErrorBox} error=${t('memories.saveFailed', { message })} />`}
  </form>`;
}

function MemoryItem({ memory, onSaved, onDeleted }) {
  const [editing, setEditing] = useState(false);
  const editRef = useRef(null);
  const wasEditing = useRef(false);
  useEffect(() => {
    if (!editing && wasEditing.current && editRef.current) editRef.current.focus();
    wasEditing.current = editing;
  }, [editing]);
  if (editing) {
    return html`<li class="card memory editing">
      <${EditMemory} memory=${memory} onCancel=${() => setEditing(false)}
        onSaved=${(saved) => { setEditing(false); onSaved(saved); }} />
    </li>`;
  }
  return html`<li class="card memory">
    <p class="memory-content">${memory.content}</p>
    <p class="memory-meta small muted">
      <span class=${'badge ' + (memory.long_term ? 'long-term' : 'short-term')}>${memory.long_term ? t('memories.longTerm') : t('memories.shortTerm')}</span>
      <span>${t('memories.importanceValue', { value: percent(memory.importance) })}</span>
      <span><${Source} memory=${memory} /></span>
      ${!memory.long_term && memory.expires_at && html`<span>${t('memories.expires', { date: formatDateTime(memory.expires_at) })}</span>`}
      <span>${t('memories.updated', { date: formatDateTime(memory.reinforced_at || memory.updated_at) })}</span>
    </p>
    <div class="actions">
      <button type="button" class="secondary" ref=${editRef} aria-label=${t('memories.edit')} onClick=${() => setEditing(true)}>${t('common.edit')}</button>
      <${ConfirmDelete} label=${t('memories.delete')} question=${t('memories.confirmDelete')} message=${memory.content}
        onConfirm=${async () => { await api.del(`/api/v1/memories/${encodeURIComponent(memory.id)}`); onDeleted(memory.id); }} />
    </div>
  </li>`;
}

export function MemoriesView() {
  const [filter, setFilter] = useState('all');
  const headingRef = useRef(null);
  useEffect(() => headingRef.current && headingRef.current.focus({ preventScroll: true }), []);
  const list = usePaged(
    (cursor, signal) => api.get('/api/v1/memories' + toQuery({ limit: PAGE, cursor, long_term: FILTERS[filter] }), { signal }),
    [filter],
  );

  const fits = (memory) => FILTERS[filter] === undefined || memory.long_term === FILTERS[filter];
  // A new memory (or a known one, reinforced) goes to the top; answers whether it was known.
  const added = (memory) => {
    const known = list.items.some((m) => m.id === memory.id) || Date.now() - new Date(memory.created_at).getTime() > 60_000;
    list.setItems((items) => [...(fits(memory) ? [memory] : []), ...items.filter((m) => m.id !== memory.id)]);
    return known;
  };
  const saved = (memory) => list.setItems((items) => (fits(memory)
    ? items.map((m) => (m.id === memory.id ? memory : m))
    : items.filter((m) => m.id !== memory.id)));
  const deleted = (id) => list.setItems((items) => items.filter((m) => m.id !== id));

  let body;
  if (list.loading) body = html`<${Loading} />`;
  else if (list.error) body = html`<${ErrorBox} error=${list.error} what onRetry=${list.reload} />`;
  else if (!list.items.length) body = html`<p class="empty">${filter === 'all' ? t('memories.empty') : t('memories.emptyFiltered')}</p>`;
  else {
    body = html`<ul class="memory-list">
        ${list.items.map((m) => html`<${MemoryItem} key=${m.id} memory=${m} onSaved=${saved} onDeleted=${deleted} />`)}
      </ul>
      <${LoadMore} list=${list} />`;
  }

  return html`<section class="page memories-page">
    <h1 tabindex="-1" ref=${headingRef}>${t('memories.title')}</h1>
    <p class="muted">${t('memories.intro')}</p>
    <${AddMemory} onAdded=${added} />
    <div class="toolbar memory-toolbar">
      <h2 class="memory-list-heading">${t('memories.listHeading')}</h2>
      <div class="field memory-filter">
        <label for="memory-filter">${t('memories.show')}</label>
        <select id="memory-filter" value=${filter} onChange=${(e) => setFilter(e.currentTarget.value)}>
          <option value="all">${t('memories.filter.all')}</option>
          <option value="long">${t('memories.filter.long')}</option>
          <option value="short">${t('memories.filter.short')}</option>
        </select>
      </div>
    </div>
    ${body}
  </section>`;
}
