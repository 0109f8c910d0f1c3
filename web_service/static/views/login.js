// `#/login`: what Jilu is in one line, and the login form. The refresh token becomes an
// HttpOnly cookie (lib/api.js); once the session is known the app shows the timeline.
import { html, useRef, useState } from '../vendor/preact-htm.module.js';
import { errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { href, navigate } from '../lib/router.js';
import { login } from '../lib/session.js';
import { useFocusHeading } from '../components/ui.js';
import { AuthIntro } from '../components/auth-intro.js';

function loginMessage(error) {
  if (error.status === 401) return t('auth.login.wrong');
  if (error.status === 403 && error.code !== 'forbidden_origin') return t('auth.login.deactivated');
  if (error.status === 429) return t('auth.login.rateLimited');
  return errorMessage(error);
}

export function LoginView({ query }) {
  const heading = useRef(null);
  useFocusHeading(heading);
  const [username, setUsername] = useState(query.get('username') || '');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const registered = query.get('registered') === '1';

  const submit = async (event) => {
    event.preventDefault();
    if (busy) return;
    setError(null);
    if (!username.trim() || !password) {
      setError(t('auth.login.missing'));
      return;
    }
    setBusy(true);
    try {
      await login(username.trim(), password);
      navigate('/', { replace: true });
    } catch (err) {
      setError(loginMessage(err));
      setBusy(false);
    }
  };

  return html`<div class="auth">
    <${AuthIntro} />
    <form class="auth-form card" onSubmit=${submit} aria-labelledby="login-heading" novalidate>
      <h1 id="login-heading" tabindex="-1" ref=${heading}>${t('auth.login.heading')}</h1>
      ${registered && !error && html`<p class="notice info" role="status">${t('auth.login.registered')}</p>`}
      <div class="field">
        <label for="login-username">${t('auth.username')}</label>
        <input id="login-username" name="username" type="text" autocomplete="username" autocapitalize="none"
          spellcheck="false" required value=${username} onInput=${(e) => setUsername(e.currentTarget.value)}
          aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'login-error' : undefined} />
      </div>
      <div class="field">
        <label for="login-password">${t('auth.password')}</label>
        <input id="login-password" name="password" type="password" autocomplete="current-password" required
          value=${password} onInput=${(e) => setPassword(e.currentTarget.value)}
          aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'login-error' : undefined} />
      </div>
      <p id="login-error" class="form-error" role="alert">${error || ''}</p>
      <button type="submit" class="auth-submit" disabled=${busy}>${busy ? t('auth.login.busy') : t('auth.login.submit')}</button>
    </form>
    <p class="auth-switch">${t('auth.login.noAccount')} <a href=${href('/register')}>${t('auth.login.toRegister')}</a></p>
  </div>`;
}
