// Tags as removable chips plus a text field with suggestions from the user's existing tags
// (a <datalist>). Enter or a comma adds the typed tag, Backspace in the empty field takes
// the last one back, each chip has its own remove button.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { session } from '../lib/session.js';

const MAX_TAGS = 32;
const MAX_TAG_CHARS = 32;
const SEPARATORS = /[,，、;；]/;

let tagsRequest = null;
/** The user's tags (`[{name, count}]`), fetched once per page view of a form. */
export function loadTags({ fresh = false } = {}) {
  if (!tagsRequest || fresh) {
    tagsRequest = api.get('/api/v1/tags').catch((error) => {
      tagsRequest = null;
      throw error;
    });
  }
  return tagsRequest;
}

/** Like the server's normalisation, near enough to avoid visible duplicates. */
export function cleanTag(text) {
  return text.normalize('NFKC').trim().replace(/^#+/, '').replace(/\s+/g, ' ').trim().slice(0, MAX_TAG_CHARS);
}

export function TagInput({ id, value, onChange, label }) {
  const [text, setText] = useState('');
  const [suggestions, setSuggestions] = useState([]);
  const input = useRef(null);
  useEffect(() => {
    if (!navigator.onLine || session.get().offline) return undefined; // suggestions only; nothing to ask offline
    let live = true;
    loadTags({ fresh: true }).then(
      (tags) => live && setSuggestions(tags.map((tag) => tag.name)),
      () => {}, // suggestions are a convenience; the field works without them
    );
    return () => {
      live = false;
    };
  }, []);

  const add = (raw) => {
    const names = raw.split(SEPARATORS).map(cleanTag).filter(Boolean);
    if (!names.length) return;
    const next = [...value];
    for (const name of names) {
      if (next.length >= MAX_TAGS) break;
      if (!next.some((tag) => tag.toLowerCase() === name.toLowerCase())) next.push(name);
    }
    onChange(next);
  };
  const remove = (tag) => {
    onChange(value.filter((item) => item !== tag));
    if (input.current) input.current.focus();
  };

  const onInput = (event) => {
    const typed = event.currentTarget.value;
    // A suggestion picked from the list replaces the text at once: take it as a tag.
    if (event.inputType === 'insertReplacementText' || (event.inputType === undefined && suggestions.includes(typed))) {
      add(typed);
      setText('');
      return;
    }
    if (SEPARATORS.test(typed)) {
      const parts = typed.split(SEPARATORS);
      add(parts.slice(0, -1).join(','));
      setText(parts[parts.length - 1]);
      return;
    }
    setText(typed);
  };
  const onKeyDown = (event) => {
    if (event.isComposing) return;
    if (event.key === 'Enter') {
      event.preventDefault(); // never submit the form from here
      add(text);
      setText('');
    } else if (event.key === 'Backspace' && !text && value.length) {
      event.preventDefault();
      onChange(value.slice(0, -1));
    }
  };
  const onBlur = () => {
    if (text.trim()) {
      add(text);
      setText('');
    }
  };

  const listId = `${id}-suggestions`;
  const offered = suggestions.filter((name) => !value.some((tag) => tag.toLowerCase() === name.toLowerCase()));
  return html`<div class="field tag-field">
    <label for=${id}>${label || t('tags.label')}</label>
    <div class="tag-input">
      ${value.length > 0 && html`<ul class="tags tag-chips">
        ${value.map((tag) => html`<li key=${tag} class="tag chip">
          <span>${tag}</span>
          <button type="button" class="chip-remove" aria-label=${t('tags.remove', { tag })}
            onClick=${() => remove(tag)}><span aria-hidden="true">×</span></button>
        </li>`)}
      </ul>`}
      <input id=${id} ref=${input} type="text" list=${listId} value=${text} autocomplete="off"
        enterkeyhint="done" placeholder=${value.length >= MAX_TAGS ? '' : t('tags.placeholder')}
        disabled=${value.length >= MAX_TAGS} aria-describedby=${`${id}-hint`}
        onInput=${onInput} onKeyDown=${onKeyDown} onBlur=${onBlur} />
      <datalist id=${listId}>${offered.map((name) => html`<option key=${name} value=${name}></option>`)}</datalist>
    </div>
    <span id=${`${id}-hint`} class="hint">${t('tags.hint')}</span>
  </div>`;
}
