// Settings: the profile, the password, and the language and time zone.
import { html, useMemo, useState } from '../../vendor/preact-htm.module.js';
import { api } from '../../lib/api.js';
import { t } from '../../lib/i18n.js';
import { updateUser } from '../../lib/session.js';
import { Section, FieldError, FormStatus, described, fieldProblems, passwordProblem } from './shared.js';

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export function ProfileSection({ user }) {
  const [displayName, setDisplayName] = useState(user.display_name || '');
  const [email, setEmail] = useState(user.email || '');
  const [errors, setErrors] = useState({});
  const [status, setStatus] = useState({});
  const [busy, setBusy] = useState(false);

  const save = async (event) => {
    event.preventDefault();
    const name = displayName.trim();
    const mail = email.trim();
    const found = {};
    if (mail && !EMAIL.test(mail)) found.email = t('settings.profile.emailInvalid');
    setErrors(found);
    setStatus({});
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      const saved = await api.patch('/api/v1/users/me', { display_name: name || null, email: mail || null });
      updateUser(saved);
      setDisplayName(saved.display_name || '');
      setEmail(saved.email || '');
      setStatus({ ok: t('settings.profile.saved') });
    } catch (error) {
      if (error.status === 409) setErrors({ email: t('settings.profile.emailTaken') });
      else if (error.status === 422 && Object.keys(fieldProblems(error)).length) setErrors(fieldProblems(error));
      else setStatus({ error });
    } finally {
      setBusy(false);
    }
  };

  return html`<${Section} id="profile" title=${t('settings.profile.title')}>
    <form onSubmit=${save} noValidate>
      <p class="muted small">${t('settings.profile.username', { username: user.username })}</p>
      <div class="field">
        <label for="settings-display-name">${t('settings.profile.displayName')}</label>
        <input id="settings-display-name" value=${displayName} maxLength="64" autocomplete="name"
          onInput=${(e) => setDisplayName(e.currentTarget.value)} ...${described('settings-display-name', { error: errors.display_name })} />
        <${FieldError} id="settings-display-name-error" message=${errors.display_name} />
      </div>
      <div class="field">
        <label for="settings-email">${t('settings.profile.email')} <span class="hint">(${t('common.optional')})</span></label>
        <input id="settings-email" type="email" value=${email} maxLength="254" autocomplete="email"
          onInput=${(e) => setEmail(e.currentTarget.value)} ...${described('settings-email', { error: errors.email })} />
        <${FieldError} id="settings-email-error" message=${errors.email} />
      </div>
      <div class="actions">
        <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : undefined}>${busy ? t('common.saving') : t('settings.profile.save')}</button>
        <${FormStatus} ...${status} />
      </div>
    </form>
  <//>`;
}

export function PasswordSection({ user }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [errors, setErrors] = useState({});
  const [status, setStatus] = useState({});
  const [busy, setBusy] = useState(false);

  const change = async (event) => {
    event.preventDefault();
    const found = {};
    if (!current) found.current = t('settings.password.currentMissing');
    if ([...next].length < 8) found.next = t('settings.password.rule.short');
    if (!found.next && repeat !== next) found.repeat = t('settings.password.mismatch');
    setErrors(found);
    setStatus({});
    if (Object.keys(found).length) {
      document.getElementById(`settings-password-${Object.keys(found)[0]}`)?.focus();
      return;
    }
    setBusy(true);
    try {
      await api.post('/api/v1/users/me/password', { current_password: current, new_password: next });
      setCurrent('');
      setNext('');
      setRepeat('');
      setStatus({ ok: t('settings.password.changed') });
    } catch (error) {
      if (error.status === 400) {
        setErrors({ current: t('settings.password.wrongCurrent') });
        document.getElementById('settings-password-current')?.focus();
      } else if (error.status === 422) {
        const problems = fieldProblems(error);
        const message = problems.new_password || Object.values(problems)[0];
        setErrors({ next: t('settings.password.weak', { reason: passwordProblem(message || '') }) });
        document.getElementById('settings-password-next')?.focus();
      } else setStatus({ error });
    } finally {
      setBusy(false);
    }
  };

  const input = (key, value, setValue, label, autocomplete, hint) => html`<div class="field">
    <label for=${`settings-password-${key}`}>${label}</label>
    ${hint && html`<span class="hint" id=${`settings-password-${key}-hint`}>${hint}</span>`}
    <input id=${`settings-password-${key}`} type="password" value=${value} autocomplete=${autocomplete} maxLength="128"
      onInput=${(e) => setValue(e.currentTarget.value)} ...${described(`settings-password-${key}`, { hint: !!hint, error: errors[key] })} />
    <${FieldError} id=${`settings-password-${key}-error`} message=${errors[key]} />
  </div>`;

  return html`<${Section} id="password" title=${t('settings.password.title')} intro=${t('settings.password.intro')}>
    <form onSubmit=${change} noValidate>
      <input type="text" name="username" autocomplete="username" value=${user.username} readOnly hidden />
      ${input('current', current, setCurrent, t('settings.password.current'), 'current-password')}
      ${input('next', next, setNext, t('settings.password.new'), 'new-password', t('settings.password.rules'))}
      ${input('repeat', repeat, setRepeat, t('settings.password.repeat'), 'new-password')}
      <div class="actions">
        <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : undefined}>${busy ? t('common.saving') : t('settings.password.change')}</button>
        <${FormStatus} ...${status} />
      </div>
    </form>
  <//>`;
}

let zoneOptions = null;
/** Every IANA zone the browser knows, with its current UTC offset, computed once. */
function timeZones() {
  if (!zoneOptions) {
    const names = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    const now = new Date();
    zoneOptions = names.map((name) => {
      let offset = '';
      try {
        const part = new Intl.DateTimeFormat('en-US', { timeZone: name, timeZoneName: 'shortOffset' })
          .formatToParts(now).find((p) => p.type === 'timeZoneName');
        offset = part ? part.value : '';
      } catch {
        // a zone this engine cannot format: show the name alone
      }
      return { name, label: offset ? `${name.replaceAll('_', ' ')} (${offset})` : name.replaceAll('_', ' ') };
    });
  }
  return zoneOptions;
}

const deviceZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

export function LanguageSection({ user }) {
  const [lang, setLang] = useState(user.language || 'zh-CN');
  const [zone, setZone] = useState(user.time_zone || deviceZone());
  const [errors, setErrors] = useState({});
  const [status, setStatus] = useState({});
  const [busy, setBusy] = useState(false);
  const zones = useMemo(() => {
    const list = timeZones();
    const extra = [zone, user.time_zone].filter((z, i, all) => z && all.indexOf(z) === i && !list.some((o) => o.name === z));
    return [...extra.map((name) => ({ name, label: name })), ...list];
  }, [zone, user.time_zone]);
  const device = deviceZone();

  const save = async (event) => {
    event.preventDefault();
    setErrors({});
    setStatus({});
    setBusy(true);
    try {
      const saved = await api.patch('/api/v1/users/me', { language: lang, time_zone: zone });
      updateUser(saved); // switches the UI language at once
      setStatus({ ok: t('settings.language.saved') });
    } catch (error) {
      const problems = fieldProblems(error);
      if (problems.time_zone) setErrors({ time_zone: t('settings.language.zoneUnknown') });
      else setStatus({ error });
    } finally {
      setBusy(false);
    }
  };

  return html`<${Section} id="language" title=${t('settings.language.title')}>
    <form onSubmit=${save} noValidate>
      <div class="row">
        <div class="field">
          <label for="settings-language">${t('settings.language.language')}</label>
          <select id="settings-language" value=${lang} onChange=${(e) => setLang(e.currentTarget.value)}>
            <option value="zh-CN" lang="zh-CN">中文（简体）</option>
            <option value="en" lang="en">English</option>
          </select>
        </div>
        <div class="field">
          <label for="settings-time-zone">${t('settings.language.timeZone')}</label>
          <select id="settings-time-zone" value=${zone} onChange=${(e) => setZone(e.currentTarget.value)}
            ...${described('settings-time-zone', { hint: true, error: errors.time_zone })}>
            ${zones.map((option) => html`<option key=${option.name} value=${option.name}>${option.label}</option>`)}
          </select>
          <span class="hint" id="settings-time-zone-hint">${t('settings.language.zoneHint')}</span>
          <${FieldError} id="settings-time-zone-error" message=${errors.time_zone} />
        </div>
      </div>
      <div class="actions">
        <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : undefined}>${busy ? t('common.saving') : t('settings.language.save')}</button>
        ${device && device !== zone && html`<button type="button" class="secondary" onClick=${() => setZone(device)}>
          ${t('settings.language.useDevice', { zone: device })}</button>`}
        <${FormStatus} ...${status} />
      </div>
    </form>
  <//>`;
}
