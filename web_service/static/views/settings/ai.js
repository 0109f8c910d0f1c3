// Settings: the AI provider (presets, key, save, test) and today's AI budget.
import { html, useState } from '../../vendor/preact-htm.module.js';
import { api, errorMessage, query } from '../../lib/api.js';
import { formatDateTime } from '../../lib/format.js';
import { language, t } from '../../lib/i18n.js';
import { session } from '../../lib/session.js';
import { useStore } from '../../lib/store.js';
import { ErrorBox, Loading, useLoad } from '../../components/ui.js';
import { Section, FieldError, FormStatus, described, fieldProblems } from './shared.js';

const LOCAL = 'local';
const CUSTOM = 'custom';

/** `scheme://host:port` of a URL, as the server binds a saved key to it ('' when not a URL). */
function hostOf(url) {
  try {
    const parsed = new URL(url);
    const port = parsed.port || { 'http:': '80', 'https:': '443' }[parsed.protocol] || '';
    return `${parsed.protocol}//${parsed.hostname}:${port}`.toLowerCase();
  } catch {
    return '';
  }
}

/** The SSRF guard's refusal of a base URL, in the UI language (the server's sentence otherwise). */
function refusal(message) {
  const reasons = [
    [/does not resolve/, 'settings.ai.refused.unresolved'],
    [/resolves to/, 'settings.ai.refused.private'],
    [/http:\/\/ or https:\/\//, 'settings.ai.refused.scheme'],
    [/user name or password/, 'settings.ai.refused.credentials'],
    [/query or a fragment/, 'settings.ai.refused.query'],
    [/not a valid URL|has no host|invalid port|white space/, 'settings.ai.refused.invalid'],
  ];
  for (const [pattern, key] of reasons) if (pattern.test(message)) return t(key);
  return message;
}

const presetLabel = (preset) => t(`settings.ai.preset.${preset.name}`, {}, preset.label);

export function ProviderSection() {
  const { user } = useStore(session);
  const isAdmin = !!user && user.role === 'admin';
  const [scope, setScope] = useState('user'); // admins may also set the instance's provider
  const load = useLoad(
    (signal) => Promise.all([
      api.get(`/api/v1/llm/config${query({ scope })}`, { signal }),
      api.get('/api/v1/llm/presets', { signal }),
    ]),
    [scope],
  );
  let body;
  if (load.loading && !load.data) body = html`<${Loading} />`;
  else if (load.error) body = html`<${ErrorBox} error=${load.error} onRetry=${load.reload} what="provider" />`;
  else if (load.loading) body = html`<${Loading} />`;
  else body = html`<${ProviderForm} key=${scope} scope=${scope} config=${load.data[0]} presets=${load.data[1]}
    onSaved=${(saved) => load.setData(([, presets]) => [saved, presets])} />`;
  return html`<${Section} id="ai" title=${t('settings.ai.title')} intro=${t('settings.ai.localExplained')}>
    ${isAdmin && html`<div class="field">
      <label for="settings-ai-scope">${t('settings.ai.scope')}</label>
      <select id="settings-ai-scope" value=${scope} onChange=${(e) => setScope(e.currentTarget.value)}
        aria-describedby="settings-ai-scope-hint">
        <option value="user">${t('settings.ai.scope.user')}</option>
        <option value="instance">${t('settings.ai.scope.instance')}</option>
      </select>
      <span class="hint" id="settings-ai-scope-hint">${t(`settings.ai.scopeHint.${scope}`)}</span>
    </div>`}
    ${body}
  <//>`;
}

function ProviderForm({ scope, config, presets, onSaved }) {
  const [provider, setProvider] = useState(config.provider);
  const [baseUrl, setBaseUrl] = useState(config.base_url || '');
  const [model, setModel] = useState(config.model || '');
  const [apiKey, setApiKey] = useState('');
  const [removeKey, setRemoveKey] = useState(false);
  const [errors, setErrors] = useState({});
  const [status, setStatus] = useState({});
  const [busy, setBusy] = useState(null); // 'save' | 'test' | null
  const [testResult, setTestResult] = useState(null);

  const preset = presets.find((p) => p.name === provider);
  const isLocal = provider === LOCAL;
  // The key saved in this scope's own settings; it is only ever sent to the host it was saved for.
  const ownKey = config.source === scope && config.api_key_set;
  const effectiveUrl = baseUrl.trim() || (preset ? preset.base_url : '');
  const keyKept = ownKey && !isLocal && hostOf(effectiveUrl) !== '' && hostOf(effectiveUrl) === hostOf(config.base_url);
  const keyOrphaned = ownKey && !isLocal && !keyKept;

  const choose = (name) => {
    setProvider(name);
    setErrors({});
    setTestResult(null);
    const chosen = presets.find((p) => p.name === name);
    if (name === LOCAL) {
      setBaseUrl('');
      setModel('');
    } else if (chosen && name !== CUSTOM) {
      setBaseUrl(chosen.base_url);
      setModel(chosen.model);
    }
  };

  /** The body of PUT /llm/config and POST /llm/test. */
  const settings = () => {
    if (isLocal) return { provider: LOCAL };
    const body = { provider };
    if (baseUrl.trim()) body.base_url = baseUrl.trim();
    if (model.trim()) body.model = model.trim();
    if (apiKey.trim()) body.api_key = apiKey.trim();
    else if ((keyKept && removeKey) || keyOrphaned) body.api_key = '';
    return body;
  };

  const check = () => {
    const found = {};
    if (!isLocal && provider === CUSTOM && !baseUrl.trim()) found.base_url = t('settings.ai.baseUrlMissing');
    if (!isLocal && provider === CUSTOM && !model.trim()) found.model = t('settings.ai.modelMissing');
    setErrors(found);
    return !Object.keys(found).length;
  };

  const showProblems = (error) => {
    const problems = fieldProblems(error);
    const found = {};
    if (problems.base_url) found.base_url = t('settings.ai.baseUrlRefused', { reason: refusal(problems.base_url) });
    if (problems.api_key) found.api_key = t('settings.ai.keyOtherHost');
    if (problems.model) found.model = problems.model;
    if (problems.provider) found.provider = problems.provider;
    if (Object.keys(found).length) {
      setErrors(found);
      document.getElementById(`settings-ai-${Object.keys(found)[0].replace('_', '-')}`)?.focus();
      return true;
    }
    return false;
  };

  const save = async (event) => {
    event.preventDefault();
    setStatus({});
    setTestResult(null);
    if (!check()) return;
    setBusy('save');
    try {
      const saved = await api.put(`/api/v1/llm/config${query({ scope })}`, settings());
      setApiKey('');
      setRemoveKey(false);
      setBaseUrl(saved.base_url || '');
      setModel(saved.model || '');
      onSaved(saved);
      setStatus({ ok: t('settings.ai.saved') });
    } catch (error) {
      if (!showProblems(error)) setStatus({ error });
    } finally {
      setBusy(null);
    }
  };

  const test = async () => {
    setStatus({});
    setTestResult(null);
    if (!check()) return;
    setBusy('test');
    try {
      setTestResult(await api.post(`/api/v1/llm/test${query({ scope })}`, settings()));
    } catch (error) {
      if (!showProblems(error)) setTestResult({ error });
    } finally {
      setBusy(null);
    }
  };

  let keyPlaceholder = t('settings.ai.keyNone');
  if (keyKept) keyPlaceholder = removeKey ? t('settings.ai.keyWillRemove') : t('settings.ai.keySet');
  let keyHint = null;
  if (keyOrphaned) keyHint = t('settings.ai.keyOrphaned', { host: hostOf(config.base_url).replace(/:\d+$/, '') });
  else if (preset && !preset.needs_api_key) keyHint = t('settings.ai.keyNotNeeded');
  else if (scope === 'user' && !ownKey && config.api_key_set) keyHint = t('settings.ai.keyNotShared');

  return html`
    <p class="ai-current">
      <span class="muted">${scope === 'instance' ? t('settings.ai.inUseInstance') : t('settings.ai.inUse')}</span>
      <strong>${config.provider === LOCAL ? t('settings.ai.preset.local') : `${config.provider} · ${config.model}`}</strong>
      <span class="badge">${t(`settings.ai.source.${config.source}`)}</span>
      ${config.api_key_set && html`<span class="badge done">${t('settings.ai.keyBadge')}</span>`}
    </p>
    <form onSubmit=${save} noValidate>
      <div class="field">
        <label for="settings-ai-provider">${t('settings.ai.provider')}</label>
        <select id="settings-ai-provider" value=${provider} onChange=${(e) => choose(e.currentTarget.value)}
          ...${described('settings-ai-provider', { error: errors.provider })}>
          <option value=${LOCAL}>${t('settings.ai.preset.local')}</option>
          ${presets.map((p) => html`<option key=${p.name} value=${p.name}>${presetLabel(p)}</option>`)}
        </select>
        <${FieldError} id="settings-ai-provider-error" message=${errors.provider} />
      </div>
      ${preset && preset.needs_allowed_host && html`<p class="note small">${t('settings.ai.needsAllowedHost')}</p>`}
      ${!isLocal && html`
        <div class="row">
          <div class="field">
            <label for="settings-ai-base-url">${t('settings.ai.baseUrl')}</label>
            <input id="settings-ai-base-url" type="url" inputmode="url" value=${baseUrl} maxLength="500" spellcheck=${false}
              placeholder=${preset && preset.base_url ? preset.base_url : 'https://…/v1'} autocomplete="off"
              onInput=${(e) => setBaseUrl(e.currentTarget.value)} ...${described('settings-ai-base-url', { error: errors.base_url })} />
            <${FieldError} id="settings-ai-base-url-error" message=${errors.base_url} />
          </div>
          <div class="field">
            <label for="settings-ai-model">${t('settings.ai.model')}</label>
            <input id="settings-ai-model" value=${model} maxLength="200" spellcheck=${false} autocomplete="off"
              placeholder=${preset && preset.model ? preset.model : ''}
              onInput=${(e) => setModel(e.currentTarget.value)} ...${described('settings-ai-model', { error: errors.model })} />
            <${FieldError} id="settings-ai-model-error" message=${errors.model} />
          </div>
        </div>
        <div class="field">
          <label for="settings-ai-api-key">${t('settings.ai.apiKey')}</label>
          ${keyHint && html`<span class="hint" id="settings-ai-api-key-hint">${keyHint}</span>`}
          <input id="settings-ai-api-key" type="password" value=${apiKey} maxLength="500" autocomplete="off" spellcheck=${false}
            placeholder=${keyPlaceholder} disabled=${keyKept && removeKey}
            onInput=${(e) => setApiKey(e.currentTarget.value)} ...${described('settings-ai-api-key', { hint: !!keyHint, error: errors.api_key })} />
          <${FieldError} id="settings-ai-api-key-error" message=${errors.api_key} />
        </div>
        ${keyKept && html`<label class="check">
          <input type="checkbox" checked=${removeKey} onChange=${(e) => { setRemoveKey(e.currentTarget.checked); setApiKey(''); }} />
          ${t('settings.ai.removeKey')}
        </label>`}
      `}
      <div class="actions">
        <button type="submit" disabled=${busy !== null} aria-busy=${busy === 'save' ? 'true' : undefined}>
          ${busy === 'save' ? t('common.saving') : t('settings.ai.save')}</button>
        <button type="button" class="secondary" onClick=${test} disabled=${busy !== null} aria-busy=${busy === 'test' ? 'true' : undefined}>
          ${busy === 'test' && html`<span class="spinner" aria-hidden="true"></span>`}
          ${busy === 'test' ? t('settings.ai.testing') : t('settings.ai.test')}</button>
        <${FormStatus} ...${status} />
      </div>
      <${TestResult} result=${testResult} />
    </form>`;
}

function TestResult({ result }) {
  let content = null;
  if (result && result.error) {
    content = html`<p class="test-result bad"><strong>${t('settings.ai.testFailed')}</strong> ${errorMessage(result.error)}</p>`;
  } else if (result && result.ok) {
    content = html`<p class="test-result ok"><strong>${t('settings.ai.testOk')}</strong>${' '}
      ${result.provider === LOCAL ? t('settings.ai.testOkLocal') : t('settings.ai.testOkRemote', { model: result.model, ms: result.latency_ms })}</p>`;
  } else if (result) {
    // `detail` is Jilu's own English sentence: enough in English, a second line in Chinese.
    const known = t(`settings.ai.errorClass.${result.error_class}`, {}, null);
    const english = language.get() === 'en' && result.detail;
    content = html`<div class="test-result bad">
      <p><strong>${t('settings.ai.testFailed')}</strong> ${english ? result.detail : known || result.detail || result.error_class}</p>
      ${!english && known && result.detail && html`<p class="small">${result.detail}</p>`}
    </div>`;
  }
  return html`<div class="test-result-region" role="status" aria-live="polite">${content}</div>`;
}

function Meter({ id, label, usage, unit }) {
  const limited = usage.limit !== null && usage.limit !== undefined && usage.limit > 0;
  const spent = limited && usage.used >= usage.limit;
  const text = limited
    ? t('settings.budget.usedOf', { used: usage.used.toLocaleString(), limit: usage.limit.toLocaleString(), unit })
    : t('settings.budget.usedUnlimited', { used: usage.used.toLocaleString(), unit });
  return html`<div class=${'budget-meter' + (spent ? ' spent' : '')}>
    <div class="budget-line">
      <span id=${`${id}-label`} class="budget-label">${label}</span>
      <span id=${`${id}-text`} class="small">${text}</span>
    </div>
    ${limited
      ? html`<progress id=${id} max=${usage.limit} value=${Math.min(usage.used, usage.limit)}
          aria-labelledby=${`${id}-label`} aria-describedby=${`${id}-text`}></progress>`
      : html`<p class="small muted">${t('settings.budget.unlimited')}</p>`}
  </div>`;
}

export function BudgetSection() {
  const load = useLoad((signal) => api.get('/api/v1/llm/usage', { signal }), []);
  const usage = load.data;
  let body;
  if (load.loading && !usage) body = html`<${Loading} />`;
  else if (load.error) body = html`<${ErrorBox} error=${load.error} onRetry=${load.reload} what="budget" />`;
  else {
    const spent = [usage.requests, usage.tokens].some((u) => u && u.limit && u.used >= u.limit);
    body = html`
      <${Meter} id="settings-budget-requests" label=${t('settings.budget.requests')} usage=${usage.requests} unit=${t('settings.budget.requestsUnit')} />
      <${Meter} id="settings-budget-tokens" label=${t('settings.budget.tokens')} usage=${usage.tokens} unit=${t('settings.budget.tokensUnit')} />
      ${spent && html`<p class="note warn small">${t('settings.budget.spent')}</p>`}
      <div class="actions">
        ${usage.resets_at && html`<span class="muted small">${t('settings.budget.resets', { time: formatDateTime(usage.resets_at) })}</span>`}
        <button type="button" class="secondary" onClick=${load.reload} disabled=${load.loading}>${t('settings.budget.refresh')}</button>
      </div>`;
  }
  return html`<${Section} id="budget" title=${t('settings.budget.title')} intro=${t('settings.budget.intro')}>${body}<//>`;
}
