// The parts of a record's page (views/record.js): its meta line, attachments (thumbnails that
// open full size in a dialog, audio players, downloads), the AI block, the public link, and the
// two versions side by side when an edit met a newer one.
import { html, useEffect, useRef } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { formatDateTime, formatSize } from '../lib/format.js';
import { headingsFrom, renderMarkdown } from '../lib/markdown.js';
import { CopyButton, ErrorBox, Loading } from './ui.js';
import { AiBadge, aiStatus, recordTitle } from './record-card.js';
import { AttachmentImage } from './attachment-image.js';
import { AttachmentAudio, DownloadButton } from './attachment-media.js';

export const attachmentName = (a) => a.filename || t('record.attachment.unnamed');

export function Meta({ record }) {
  return html`<p class="record-meta small">
    <span class="record-kind">${t(`kind.${record.kind}`)}</span>
    <time datetime=${record.occurred_at}>${formatDateTime(record.occurred_at)}</time>
    <${AiBadge} record=${record} />
  </p>`;
}

export function Tags({ tags }) {
  if (!tags || !tags.length) return null;
  return html`<ul class="tags">${tags.map((tag) => html`<li key=${tag} class="tag">${tag}</li>`)}</ul>`;
}

export function Attachments({ record, onOpenImage, onDelete, busyId }) {
  const attachments = record.attachments || [];
  if (!attachments.length) return null;
  return html`<section class="record-section" aria-labelledby="attachments-heading">
    <h2 id="attachments-heading">${t('record.attachments', { count: attachments.length })}</h2>
    <ul class="attachment-list">
      ${attachments.map((a) => {
        const name = attachmentName(a);
        const isImage = a.content_type.startsWith('image/') && a.thumbnail_url;
        const isAudio = a.content_type.startsWith('audio/');
        return html`<li key=${a.id} class=${'attachment' + (isImage ? ' image' : isAudio ? ' audio' : ' file')}>
          ${isImage && html`<button type="button" class="thumb-button" aria-label=${t('record.attachment.open', { name })}
            onClick=${() => onOpenImage(a)}>
            <${AttachmentImage} url=${a.thumbnail_url} alt=${name} className="attachment-thumb" />
          </button>`}
          <div class="attachment-info">
            <span class="attachment-name">${name}</span>
            <span class="small muted">${formatSize(a.size)}</span>
            <${Extraction} extraction=${a.extraction} />
          </div>
          ${isAudio && html`<${AttachmentAudio} attachment=${a} name=${name} />`}
          <div class="attachment-actions">
            ${!isImage && !isAudio && html`<${DownloadButton} attachment=${a} name=${name} />`}
            ${onDelete && html`<button type="button" class="secondary small-button" disabled=${busyId === a.id}
              aria-label=${t('record.attachment.delete', { name })} onClick=${() => onDelete(a)}>${t('common.delete')}</button>`}
          </div>
        </li>`;
      })}
    </ul>
  </section>`;
}

/** What was read out of an attachment (docs/extraction.md): reading, read (pages, length),
 * skipped with the server's reason, or failed. */
export function Extraction({ extraction }) {
  if (!extraction) return null;
  const { status, error, page_count: pages, duration_seconds: seconds } = extraction;
  const facts = [
    pages != null && t('record.extraction.pages', { count: pages }),
    seconds != null && t('record.extraction.seconds', { seconds }),
  ].filter(Boolean);
  let text;
  if (status === 'pending' || status === 'running') text = t('record.extraction.reading');
  else if (status === 'done') text = t('record.extraction.read');
  else if (status === 'failed') text = t('record.extraction.failed', { reason: error || '' });
  else text = error || '';
  return html`<span class="small muted attachment-extraction" data-status=${status}>
    ${[...facts, text].filter(Boolean).join(' · ')}
  </span>`;
}

export function ImageViewer({ image, onClose }) {
  const dialog = useRef(null);
  useEffect(() => {
    if (image && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [image]);
  const name = image ? attachmentName(image) : '';
  return html`<dialog ref=${dialog} class="image-viewer" aria-label=${name || t('record.attachment.viewer')} onClose=${onClose}>
    ${image && html`<div class="image-viewer-head">
      <span class="image-viewer-name">${name}</span>
      <button type="button" class="secondary" onClick=${() => dialog.current.close()}>${t('common.close')}</button>
    </div>
    <${AttachmentImage} url=${image.url} alt=${name} className="image-viewer-image" />`}
  </dialog>`;
}

/** A failed analysis's error class (llm_service's short word) as words a person can read. */
function aiErrorText(errorClass) {
  return t(`record.ai.error.${errorClass || 'unknown'}`, {}, null) || t('record.ai.error.unknown');
}

export function AiBlock({ record, onAnalyse, busy, error }) {
  const status = aiStatus(record);
  const ai = record.ai || {};
  return html`<section class="record-section ai-block card" aria-labelledby="ai-heading">
    <div class="section-head">
      <h2 id="ai-heading">${t('record.ai.heading')}</h2>
      <${AiBadge} record=${record} />
    </div>
    ${record.ai_opt_out
      ? html`<p class="muted">${t('record.ai.optedOut')}</p>`
      : html`
        ${(status === 'pending' || status === 'running') && html`<p class="muted">${t('record.ai.working')}</p>`}
        ${status === 'failed' && html`<p class="error-text">${t('record.ai.failed', { error: aiErrorText(ai.error) })}</p>`}
        ${(ai.title || ai.summary || (ai.tags && ai.tags.length)) && html`<dl class="ai-results">
          ${ai.title && html`<dt>${t('record.ai.title')}</dt><dd>${ai.title}</dd>`}
          ${ai.summary && html`<dt>${t('record.ai.summary')}</dt><dd class="ai-summary">${ai.summary}</dd>`}
          ${ai.tags && ai.tags.length > 0 && html`<dt>${t('record.ai.tags')}</dt><dd><${Tags} tags=${ai.tags} /></dd>`}
        </dl>`}
        ${status === 'done' && !ai.title && !ai.summary && html`<p class="muted">${t('record.ai.nothing')}</p>`}
        <div class="actions">
          <button type="button" class="secondary" disabled=${busy} onClick=${onAnalyse}>${busy ? t('record.ai.queueing') : t('record.ai.again')}</button>
        </div>
        ${error && html`<${ErrorBox} error=${error} />`}`}
  </section>`;
}

export function ShareBlock({ record, share, onShare, onUnshare }) {
  return html`<section class="record-section share-block card" aria-labelledby="share-heading">
    <h2 id="share-heading">${t('record.share.heading')}</h2>
    ${record.shared
      ? html`
        ${share.url
          ? html`<div class="share-link">
              <label for="share-url" class="visually-hidden">${t('record.share.address')}</label>
              <input id="share-url" type="text" readonly value=${share.url} onFocus=${(e) => e.currentTarget.select()} />
              <${CopyButton} text=${share.url} label=${t('record.share.copy')} />
            </div>
            <p class="small"><a href=${share.url} target="_blank" rel="noopener">${t('record.share.open')}</a></p>`
          : !share.error && html`<${Loading} />`}
        <p class="small muted">${t('record.share.on')}</p>
        <div class="actions">
          <button type="button" class="secondary" disabled=${share.busy} onClick=${onUnshare}>${t('record.share.stop')}</button>
        </div>`
      : html`
        <p class="small muted">${t('record.share.off')}</p>
        <div class="actions">
          <button type="button" class="secondary" disabled=${share.busy} onClick=${onShare}>${t('record.share.start')}</button>
        </div>`}
    ${share.error && html`<${ErrorBox} error=${share.error} />`}
  </section>`;
}

/** One side of a conflict: a record (or the draft made into one) with who changed it when. */
function Version({ title, who, record }) {
  return html`<article class="conflict-version card">
    <h3>${title}</h3>
    <p class="small muted">${who}</p>
    <p class="conflict-title"><strong>${recordTitle(record)}</strong></p>
    <p class="record-meta small">
      <span class="record-kind">${t(`kind.${record.kind}`)}</span>
      <time datetime=${record.occurred_at}>${formatDateTime(record.occurred_at)}</time>
      ${record.ai_opt_out && html`<span class="badge skipped">${t('ai.status.skipped')}</span>`}
    </p>
    <${Tags} tags=${record.tags} />
    <div class="markdown conflict-content" dangerouslySetInnerHTML=${{ __html: headingsFrom(renderMarkdown(record.content), 4) }}></div>
  </article>`;
}

export function ConflictPanel({ conflict, draft, base, busy, onKeepMine, onTakeTheirs, onKeepEditing }) {
  const server = conflict.current;
  const mine = {
    ...base,
    kind: draft.kind,
    title: draft.title.trim() || null,
    content: draft.content,
    tags: draft.tags,
    occurred_at: new Date(draft.occurred).toISOString(),
    ai_opt_out: draft.ai_opt_out,
  };
  return html`<section class="conflict" aria-labelledby="conflict-heading">
    <div class="notice warn" role="alert">
      <h2 id="conflict-heading">${t('record.conflict.heading')}</h2>
      <p>${t('record.conflict.text')}</p>
    </div>
    <div class="conflict-versions">
      <${Version} title=${t('record.conflict.mine')} record=${mine}
        who=${t('record.conflict.mineWho', { version: base.version })} />
      <${Version} title=${t('record.conflict.theirs')} record=${server}
        who=${t('record.conflict.theirsWho', { version: server.version, when: formatDateTime(server.updated_at) })} />
    </div>
    <div class="actions conflict-actions">
      <button type="button" disabled=${busy} onClick=${onKeepMine}>${t('record.conflict.keepMine')}</button>
      <button type="button" class="secondary" disabled=${busy} onClick=${onTakeTheirs}>${t('record.conflict.takeTheirs')}</button>
      <button type="button" class="secondary" disabled=${busy} onClick=${onKeepEditing}>${t('record.conflict.keepEditing')}</button>
    </div>
    <p class="small muted">${t('record.conflict.hint')}</p>
  </section>`;
}
