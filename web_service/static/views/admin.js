// `#/admin`: the instance's users for administrators — search, pages with "Load more", and each
// user's role and active flag changed in place. Anyone else sees that the page is for admins.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, errorMessage, query as queryString } from '../lib/api.js';
import { formatDateTime } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';
import { session } from '../lib/session.js';
import { useStore } from '../lib/store.js';
import { Empty, ErrorBox, Loading, useFocusHeading } from '../components/ui.js';

const PAGE_SIZE = 50;

export function AdminView() {
  const { user } = useStore(session);
  const heading = useRef(null);
  const [forbidden, setForbidden] = useState(false);
  useFocusHeading(heading, []);
  const isAdmin = user && user.role === 'admin' && !forbidden;
  return html`<div class="page admin-page">
    <h1 ref=${heading} tabindex="-1">${t('admin.title')}</h1>
    ${isAdmin
      ? html`<${UserDirectory} me=${user} onForbidden=${() => setForbidden(true)} />`
      : html`<div class="card admin-only" role="alert">
          <p><strong>${t('admin.only')}</strong></p>
          <p class="muted">${t('admin.onlyHint')}</p>
          <p><a href=${href('/')}>${t('page.backHome')}</a></p>
        </div>`}
  </div>`;
}

function UserDirectory({ me, onForbidden }) {
  const [search, setSearch] = useState('');
  const [applied, setApplied] = useState('');
  const [state, setState] = useState({ items: [], next: null, loading: true, error: null, more: false });
  const controller = useRef(null);

  const loadPage = async (cursor) => {
    if (controller.current) controller.current.abort();
    const current = new AbortController();
    controller.current = current;
    setState((s) => ({ ...s, loading: true, error: null, more: !!cursor, items: cursor ? s.items : [] }));
    try {
      const page = await api.get(`/api/v1/admin/users${queryString({ limit: PAGE_SIZE, cursor, q: applied })}`, { signal: current.signal });
      setState((s) => ({ items: cursor ? [...s.items, ...page.items] : page.items, next: page.next_cursor, loading: false, error: null, more: false }));
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error.status === 403) onForbidden();
      setState((s) => ({ ...s, loading: false, error, retryCursor: cursor }));
    }
  };

  useEffect(() => {
    loadPage(null);
    return () => controller.current && controller.current.abort();
  }, [applied]);

  const submit = (event) => {
    event.preventDefault();
    setApplied(search.trim());
  };
  const replace = (updated) => setState((s) => ({ ...s, items: s.items.map((u) => (u.id === updated.id ? updated : u)) }));

  return html`
    <form class="toolbar admin-search" role="search" onSubmit=${submit}>
      <label class="visually-hidden" for="admin-search">${t('admin.search')}</label>
      <input id="admin-search" type="search" value=${search} maxLength="64" placeholder=${t('admin.searchPlaceholder')}
        onInput=${(e) => setSearch(e.currentTarget.value)} />
      <button type="submit" class="secondary">${t('admin.searchButton')}</button>
    </form>
    ${applied && html`<p class="small muted">${t('admin.searchingFor', { q: applied })}
      <button type="button" class="link-button" onClick=${() => { setSearch(''); setApplied(''); }}>${t('admin.clearSearch')}</button></p>`}
    ${state.items.length > 0 && html`<ul class="admin-users" aria-label=${t('admin.listLabel')}>
      ${state.items.map((item) => html`<${UserRow} key=${item.id} account=${item} isMe=${item.id === me.id} onChanged=${replace} />`)}
    </ul>`}
    ${state.loading && html`<${Loading} />`}
    ${!state.loading && !state.error && state.items.length === 0 && html`<${Empty}>${applied ? t('admin.noMatch') : t('admin.none')}<//>`}
    ${state.error && html`<${ErrorBox} error=${state.error} what="users" onRetry=${() => loadPage(state.retryCursor || null)} />`}
    ${!state.loading && !state.error && state.next && html`<div class="actions load-more">
      <button type="button" class="secondary" onClick=${() => loadPage(state.next)}>${t('common.loadMore')}</button>
    </div>`}`;
}

function UserRow({ account, isMe, onChanged }) {
  const [busy, setBusy] = useState(null); // 'role' | 'active' | null
  const [message, setMessage] = useState(null); // {ok|error}
  const [draft, setDraft] = useState({}); // what the controls show while the change is sent
  const name = account.username;
  const shown = { ...account, ...draft };

  const change = async (what, body) => {
    setBusy(what);
    setDraft(body);
    setMessage(null);
    try {
      const updated = await api.patch(`/api/v1/admin/users/${encodeURIComponent(account.id)}`, body);
      onChanged(updated);
      let ok = t('admin.saved', { name });
      if (body.role) ok = t(`admin.roleChanged.${body.role}`, { name });
      if (body.is_active === false) ok = t('admin.deactivated', { name });
      if (body.is_active === true) ok = t('admin.activated', { name });
      setMessage({ ok });
    } catch (error) {
      setMessage({ error: error.status === 409 ? t('admin.notYourself') : errorMessage(error) });
    } finally {
      setDraft({}); // the controls show what is stored again (the old values after a failure)
      setBusy(null);
    }
  };

  const roleId = `admin-role-${account.id}`;
  return html`<li class=${'card admin-user' + (account.is_active ? '' : ' inactive')}>
    <div class="admin-user-head">
      <h2 class="admin-user-name">${name}</h2>
      ${isMe && html`<span class="badge">${t('admin.you')}</span>`}
      ${account.role === 'admin' && html`<span class="badge running">${t('admin.role.admin')}</span>`}
      ${!account.is_active && html`<span class="badge failed">${t('admin.inactive')}</span>`}
    </div>
    <dl class="admin-user-facts small">
      <div><dt>${t('admin.displayName')}</dt><dd>${account.display_name || '—'}</dd></div>
      <div><dt>${t('admin.email')}</dt><dd>${account.email || '—'}</dd></div>
      <div><dt>${t('admin.created')}</dt><dd>${formatDateTime(account.created_at)}</dd></div>
    </dl>
    <div class="admin-user-controls">
      <div class="field">
        <label for=${roleId} aria-hidden="true">${t('admin.role')}</label>
        <select id=${roleId} value=${shown.role} disabled=${busy !== null} aria-label=${t('admin.roleOf', { name })}
          onChange=${(e) => change('role', { role: e.currentTarget.value })}>
          <option value="user">${t('admin.role.user')}</option>
          <option value="admin">${t('admin.role.admin')}</option>
        </select>
      </div>
      <label class="check">
        <input type="checkbox" checked=${shown.is_active} disabled=${busy !== null} aria-label=${t('admin.activeOf', { name })}
          onChange=${(e) => change('active', { is_active: e.currentTarget.checked })} />
        <span aria-hidden="true">${t('admin.active')}</span>
      </label>
      ${busy && html`<span class="spinner" role="status" aria-label=${t('common.saving')}></span>`}
    </div>
    <p class=${'form-status ' + (message && message.error ? 'bad' : 'ok')} role=${message && message.error ? 'alert' : 'status'}>
      ${message ? message.ok || message.error : ''}</p>
  </li>`;
}
