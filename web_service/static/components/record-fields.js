// The fields of a record, shared by the composer and the record's edit form: title, text
// (Markdown, with a preview), kind, when it happened, tags, and "never send to AI".
import { html, useState } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { fromLocalInput, toLocalInput } from '../lib/format.js';
import { headingsFrom, renderMarkdown } from '../lib/markdown.js';
import { KindSelect } from './kind-select.js';
import { TagInput } from './tag-input.js';

/** The form's values for a record (or a fresh one). */
export function draftFrom(record) {
  return {
    kind: (record && record.kind) || 'note',
    title: (record && record.title) || '',
    content: (record && record.content) || '',
    tags: (record && record.tags) || [],
    occurred: toLocalInput(record && record.occurred_at),
    ai_opt_out: Boolean(record && record.ai_opt_out),
  };
}

/** The API body for a draft: `{kind, title, content, tags, occurred_at, ai_opt_out}`. */
export function bodyFrom(draft) {
  return {
    kind: draft.kind,
    title: draft.title.trim() || null,
    content: draft.content,
    tags: draft.tags,
    occurred_at: fromLocalInput(draft.occurred) || new Date().toISOString(),
    ai_opt_out: draft.ai_opt_out,
  };
}

/** Only what the draft changed from `record` (a minute-precise time is no change). */
export function changesFrom(draft, record) {
  const base = draftFrom(record);
  const body = bodyFrom(draft);
  const changes = {};
  if (draft.kind !== base.kind) changes.kind = body.kind;
  if (draft.title.trim() !== base.title.trim()) changes.title = body.title;
  if (draft.content !== base.content) changes.content = body.content;
  if (draft.tags.join('\n') !== base.tags.join('\n')) changes.tags = body.tags;
  if (draft.occurred !== base.occurred) changes.occurred_at = body.occurred_at;
  if (draft.ai_opt_out !== base.ai_opt_out) changes.ai_opt_out = body.ai_opt_out;
  return changes;
}

export function RecordFields({ idPrefix, draft, onChange }) {
  const [preview, setPreview] = useState(false);
  const set = (name) => (event) => onChange({ [name]: event.currentTarget.value });
  const id = (name) => `${idPrefix}-${name}`;
  return html`<div class="record-fields">
    <div class="field">
      <label for=${id('title')}>${t('fields.title')} <span class="hint">(${t('common.optional')})</span></label>
      <input id=${id('title')} type="text" maxlength="200" value=${draft.title} onInput=${set('title')} />
    </div>
    <div class="field content-field">
      <div class="content-field-head">
        <label for=${id('content')}>${t('fields.content')}</label>
        <button type="button" class="secondary small-button" aria-pressed=${preview ? 'true' : 'false'}
          aria-controls=${id('preview')} onClick=${() => setPreview(!preview)}>${t('fields.preview')}</button>
      </div>
      <textarea id=${id('content')} rows="10" value=${draft.content} hidden=${preview}
        placeholder=${t('fields.contentPlaceholder')} onInput=${set('content')}></textarea>
      <div id=${id('preview')} class="content-preview" hidden=${!preview} role="region" aria-label=${t('fields.previewLabel')}>
        ${preview && (draft.content.trim()
          ? html`<div class="markdown" dangerouslySetInnerHTML=${{ __html: headingsFrom(renderMarkdown(draft.content), 2) }}></div>`
          : html`<p class="muted">${t('fields.previewEmpty')}</p>`)}
      </div>
      <span class="hint">${t('fields.markdownHint')}</span>
    </div>
    <div class="row">
      <div class="field">
        <label for=${id('kind')}>${t('fields.kind')}</label>
        <${KindSelect} id=${id('kind')} value=${draft.kind} onChange=${(kind) => onChange({ kind })} />
      </div>
      <div class="field">
        <label for=${id('occurred')}>${t('fields.occurred')}</label>
        <input id=${id('occurred')} type="datetime-local" required value=${draft.occurred} onInput=${set('occurred')} />
      </div>
    </div>
    <${TagInput} id=${id('tags')} value=${draft.tags} onChange=${(tags) => onChange({ tags })} />
    <div class="switch-field">
      <label class="check switch">
        <input type="checkbox" role="switch" checked=${draft.ai_opt_out} aria-describedby=${id('ai-hint')}
          onChange=${(event) => onChange({ ai_opt_out: event.currentTarget.checked })} />
        <span>${t('fields.aiOptOut')}</span>
      </label>
      <span id=${id('ai-hint')} class="hint small muted">${t('fields.aiOptOutHint')}</span>
    </div>
  </div>`;
}
