// `#/register`: make an account (the first one of an instance is its administrator), then
// log in with it at once and open the timeline. Problems are shown next to their field.
import { html, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, errorMessage } from '../lib/api.js';
import { language, t } from '../lib/i18n.js';
import { href, navigate } from '../lib/router.js';
import { login } from '../lib/session.js';
import { useFocusHeading } from '../components/ui.js';
import { AuthIntro } from '../components/auth-intro.js';

const FIELDS = ['username', 'password', 'email', 'display_name'];

/** A translated message for the server's password rule that failed. */
function passwordMessage(text) {
  const message = String(text || '');
  if (/at least/.test(message)) return t('auth.register.password.short');
  if (/at most/.test(message)) return t('auth.register.password.long');
  if (/different characters/.test(message)) return t('auth.register.password.varied');
  if (/common/.test(message)) return t('auth.register.password.common');
  if (/username/.test(message)) return t('auth.register.password.username');
  return t('auth.register.password.weak');
}

const FIELD_MESSAGES = {
  username: () => t('auth.register.username.invalid'),
  email: () => t('auth.register.email.invalid'),
  display_name: () => t('auth.register.displayName.invalid'),
  password: passwordMessage,
};

/** `{field: message}` and a general message, from a failed registration. */
function problems(error) {
  if (error.status === 409) {
    return /email/i.test(String(error.detail)) ? { email: t('auth.register.email.taken') } : { username: t('auth.register.username.taken') };
  }
  if (error.status === 422 && Array.isArray(error.detail)) {
    const found = {};
    for (const problem of error.detail) {
      const field = String(problem.field || (problem.loc || []).join('.')).split('.').pop();
      if (FIELDS.includes(field) && !found[field]) found[field] = FIELD_MESSAGES[field](problem.message || problem.msg);
    }
    if (Object.keys(found).length) return found;
  }
  if (error.status === 429) return { form: t('auth.register.rateLimited') };
  return { form: errorMessage(error) };
}

function Field({ id, name, label, hint, type = 'text', value, onInput, error, autocomplete, required, optional }) {
  const describedBy = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ') || undefined;
  return html`<div class="field">
    <label for=${id}>${label}${optional && html` <span class="hint">(${t('common.optional')})</span>`}</label>
    <input id=${id} name=${name} type=${type} value=${value} autocomplete=${autocomplete} required=${required}
      autocapitalize=${type === 'text' ? 'none' : undefined} spellcheck=${type === 'text' ? 'false' : undefined}
      aria-invalid=${error ? 'true' : undefined} aria-describedby=${describedBy}
      onInput=${(e) => onInput(e.currentTarget.value)} />
    ${hint && html`<span id=${`${id}-hint`} class="hint">${hint}</span>`}
    ${error && html`<span id=${`${id}-error`} class="field-error">${error}</span>`}
  </div>`;
}

export function RegisterView() {
  const heading = useRef(null);
  useFocusHeading(heading);
  const [values, setValues] = useState({ username: '', password: '', email: '', display_name: '' });
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const set = (name) => (value) => {
    setValues((v) => ({ ...v, [name]: value }));
    setErrors((e) => ({ ...e, [name]: null }));
  };

  const submit = async (event) => {
    event.preventDefault();
    if (busy) return;
    const missing = {};
    if (!values.username.trim()) missing.username = t('auth.register.username.missing');
    if (!values.password) missing.password = t('auth.register.password.missing');
    if (Object.keys(missing).length) {
      setErrors(missing);
      document.getElementById(`register-${Object.keys(missing)[0]}`).focus();
      return;
    }
    setBusy(true);
    setErrors({});
    const body = { username: values.username.trim(), password: values.password };
    if (values.email.trim()) body.email = values.email.trim();
    if (values.display_name.trim()) body.display_name = values.display_name.trim();
    try {
      await api.post('/api/v1/auth/register', body, { auth: false });
    } catch (error) {
      const found = problems(error);
      setErrors(found);
      setBusy(false);
      const first = FIELDS.find((field) => found[field]);
      if (first) document.getElementById(`register-${first}`).focus();
      return;
    }
    // A new account starts in the language this page was read in and in this browser's time
    // zone (the server's defaults are guesses), set before the app first shows it.
    const preferences = { language: language.get(), time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone };
    try {
      await login(body.username, body.password, preferences);
      navigate('/', { replace: true });
    } catch {
      // The account exists; logging in is left to the person.
      navigate(`/login?registered=1&username=${encodeURIComponent(body.username)}`, { replace: true });
    }
  };

  return html`<div class="auth">
    <${AuthIntro} />
    <form class="auth-form card" onSubmit=${submit} aria-labelledby="register-heading" novalidate>
      <h1 id="register-heading" tabindex="-1" ref=${heading}>${t('auth.register.heading')}</h1>
      <${Field} id="register-username" name="username" label=${t('auth.username')} hint=${t('auth.register.username.hint')}
        value=${values.username} onInput=${set('username')} error=${errors.username} autocomplete="username" required=${true} />
      <${Field} id="register-password" name="password" type="password" label=${t('auth.password')}
        hint=${t('auth.register.password.hint')} value=${values.password} onInput=${set('password')}
        error=${errors.password} autocomplete="new-password" required=${true} />
      <${Field} id="register-email" name="email" type="email" label=${t('auth.register.email')} optional=${true}
        value=${values.email} onInput=${set('email')} error=${errors.email} autocomplete="email" />
      <${Field} id="register-display_name" name="display_name" label=${t('auth.register.displayName')} optional=${true}
        value=${values.display_name} onInput=${set('display_name')} error=${errors.display_name} autocomplete="nickname" />
      <p class="form-error" role="alert">${errors.form || ''}</p>
      <button type="submit" class="auth-submit" disabled=${busy}>${busy ? t('auth.register.busy') : t('auth.register.submit')}</button>
    </form>
    <p class="auth-switch">${t('auth.register.haveAccount')} <a href=${href('/login')}>${t('auth.register.toLogin')}</a></p>
  </div>`;
}
