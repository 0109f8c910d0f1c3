// Settings: personal API tokens — the list, creating one (shown once), revoking one.
import { html, useEffect, useRef, useState } from '../../vendor/preact-htm.module.js';
import { api } from '../../lib/api.js';
import { formatDateTime } from '../../lib/format.js';
import { t } from '../../lib/i18n.js';
import { CopyButton, Empty, ErrorBox, Loading, useLoad } from '../../components/ui.js';
import { Section, FieldError, FormStatus, described, fieldProblems } from './shared.js';

const EXPIRY_DAYS = ['', '7', '30', '90', '365'];
const PATH = '/api/v1/users/me/api-tokens';

export function TokensSection() {
  const load = useLoad((signal) => api.get(PATH, { signal }), []);
  const [created, setCreated] = useState(null);
  const listHeading = useRef(null);

  const onCreated = (token) => {
    setCreated(token);
    load.reload();
  };

  let list;
  if (load.loading && !load.data) list = html`<${Loading} />`;
  else if (load.error) list = html`<${ErrorBox} error=${load.error} onRetry=${load.reload} what="tokens" />`;
  else if (!load.data.length) list = html`<${Empty}>${t('settings.tokens.none')}<//>`;
  else {
    list = html`<ul class="token-list" aria-label=${t('settings.tokens.listLabel')}>
      ${load.data.map((token) => html`<${TokenItem} key=${token.id} token=${token}
        onRevoked=${() => {
          load.setData((items) => items.filter((item) => item.id !== token.id));
          if (listHeading.current) listHeading.current.focus(); // the focused button is gone
        }} />`)}
    </ul>`;
  }

  return html`<${Section} id="tokens" title=${t('settings.tokens.title')} intro=${t('settings.tokens.intro')}>
    ${created && html`<${NewToken} token=${created} onDone=${() => setCreated(null)} />`}
    <${CreateTokenForm} onCreated=${onCreated} />
    <h3 class="settings-subheading" ref=${listHeading} tabindex="-1">${t('settings.tokens.yours')}</h3>
    ${list}
  <//>`;
}

function CreateTokenForm({ onCreated }) {
  const [name, setName] = useState('');
  const [read, setRead] = useState(true);
  const [write, setWrite] = useState(true);
  const [expiry, setExpiry] = useState('90');
  const [errors, setErrors] = useState({});
  const [status, setStatus] = useState({});
  const [busy, setBusy] = useState(false);

  const create = async (event) => {
    event.preventDefault();
    const found = {};
    if (!name.trim()) found.name = t('settings.tokens.nameMissing');
    if (!read && !write) found.scopes = t('settings.tokens.scopesMissing');
    setErrors(found);
    setStatus({});
    if (found.name) document.getElementById('settings-token-name')?.focus();
    if (Object.keys(found).length) return;
    const body = { name: name.trim(), scopes: [read && 'read', write && 'write'].filter(Boolean) };
    if (expiry) body.expires_in_days = Number(expiry);
    setBusy(true);
    try {
      const token = await api.post(PATH, body);
      setName('');
      onCreated(token);
    } catch (error) {
      if (error.status === 409) setStatus({ error: t('settings.tokens.tooMany') });
      else if (error.status === 422 && fieldProblems(error).name) setErrors({ name: fieldProblems(error).name });
      else setStatus({ error });
    } finally {
      setBusy(false);
    }
  };

  return html`<form class="token-create" onSubmit=${create} noValidate>
    <h3 class="settings-subheading">${t('settings.tokens.create')}</h3>
    <div class="row">
      <div class="field">
        <label for="settings-token-name">${t('settings.tokens.name')}</label>
        <input id="settings-token-name" value=${name} maxLength="64" autocomplete="off" placeholder=${t('settings.tokens.namePlaceholder')}
          onInput=${(e) => setName(e.currentTarget.value)} ...${described('settings-token-name', { error: errors.name })} />
        <${FieldError} id="settings-token-name-error" message=${errors.name} />
      </div>
      <div class="field">
        <label for="settings-token-expiry">${t('settings.tokens.expiry')}</label>
        <select id="settings-token-expiry" value=${expiry} onChange=${(e) => setExpiry(e.currentTarget.value)}>
          ${EXPIRY_DAYS.map((days) => html`<option key=${days} value=${days}>
            ${days ? t('settings.tokens.expiryDays', { days }) : t('settings.tokens.expiryNever')}</option>`)}
        </select>
      </div>
    </div>
    <fieldset class="scopes" ...${described('settings-token-scopes', { error: errors.scopes })}>
      <legend>${t('settings.tokens.scopes')}</legend>
      <label class="check"><input type="checkbox" checked=${read} onChange=${(e) => setRead(e.currentTarget.checked)} />
        ${t('settings.tokens.scopeRead')}</label>
      <label class="check"><input type="checkbox" checked=${write} onChange=${(e) => setWrite(e.currentTarget.checked)} />
        ${t('settings.tokens.scopeWrite')}</label>
      <${FieldError} id="settings-token-scopes-error" message=${errors.scopes} />
    </fieldset>
    <div class="actions">
      <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : undefined}>
        ${busy ? t('settings.tokens.creating') : t('settings.tokens.createButton')}</button>
      <${FormStatus} ...${status} />
    </div>
  </form>`;
}

/** The token just created: shown this once, with a copy button and a warning. */
function NewToken({ token, onDone }) {
  const field = useRef(null);
  useEffect(() => {
    if (field.current) {
      field.current.focus();
      field.current.select();
    }
  }, [token.id]);
  return html`<div class="new-token" role="region" aria-labelledby="settings-new-token-title">
    <h3 id="settings-new-token-title" class="settings-subheading">${t('settings.tokens.newTitle', { name: token.name })}</h3>
    <p class="warn-text" id="settings-new-token-warning"><strong>${t('settings.tokens.onceWarning')}</strong></p>
    <div class="field">
      <label for="settings-new-token">${t('settings.tokens.newLabel')}</label>
      <div class="copy-row">
        <input id="settings-new-token" ref=${field} class="mono" readOnly value=${token.token} spellcheck=${false}
          aria-describedby="settings-new-token-warning" onFocus=${(e) => e.currentTarget.select()} />
        <${CopyButton} text=${token.token} label=${t('settings.tokens.copy')} />
      </div>
    </div>
    <div class="actions"><button type="button" class="secondary" onClick=${onDone}>${t('settings.tokens.done')}</button></div>
  </div>`;
}

function TokenItem({ token, onRevoked }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const confirmRef = useRef(null);
  const revokeRef = useRef(null);
  const expired = token.expires_at && new Date(token.expires_at) < new Date();

  useEffect(() => {
    if (confirming && confirmRef.current) confirmRef.current.focus();
  }, [confirming]);

  const revoke = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.del(`${PATH}/${encodeURIComponent(token.id)}`);
      onRevoked();
    } catch (err) {
      if (err.status === 404) onRevoked();
      else setError(err);
      setBusy(false);
    }
  };
  const cancel = () => {
    setConfirming(false);
    setTimeout(() => revokeRef.current && revokeRef.current.focus());
  };

  return html`<li class="token-item">
    <div class="token-head">
      <strong class="token-name">${token.name}</strong>
      <code class="token-prefix">${token.token_prefix}…</code>
      ${token.scopes.map((scope) => html`<span class="badge" key=${scope}>${t(`settings.tokens.scope.${scope}`)}</span>`)}
      ${expired && html`<span class="badge failed">${t('settings.tokens.expired')}</span>`}
    </div>
    <dl class="token-dates small">
      <div><dt>${t('settings.tokens.created')}</dt><dd>${formatDateTime(token.created_at)}</dd></div>
      <div><dt>${t('settings.tokens.lastUsed')}</dt><dd>${token.last_used_at ? formatDateTime(token.last_used_at) : t('settings.tokens.never')}</dd></div>
      <div><dt>${t('settings.tokens.expires')}</dt><dd>${token.expires_at ? formatDateTime(token.expires_at) : t('settings.tokens.noExpiry')}</dd></div>
    </dl>
    ${confirming
      ? html`<div class="confirm" role="group" aria-label=${t('settings.tokens.confirmLabel', { name: token.name })}>
          <p>${t('settings.tokens.confirm', { name: token.name })}</p>
          <div class="actions">
            <button type="button" class="danger" ref=${confirmRef} onClick=${revoke} disabled=${busy} aria-busy=${busy ? 'true' : undefined}>
              ${busy ? t('settings.tokens.revoking') : t('settings.tokens.confirmYes')}</button>
            <button type="button" class="secondary" onClick=${cancel} disabled=${busy}>${t('common.cancel')}</button>
          </div>
        </div>`
      : html`<div class="actions">
          <button type="button" class="secondary" ref=${revokeRef} onClick=${() => setConfirming(true)}
            aria-label=${t('settings.tokens.revokeLabel', { name: token.name })}>${t('settings.tokens.revoke')}</button>
        </div>`}
    ${error && html`<${ErrorBox} error=${error} onRetry=${revoke} />`}
  </li>`;
}
