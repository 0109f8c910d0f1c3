// A record as a card in a list (timeline, search, trash): kind, time, title, a short
// Markdown excerpt, tags, AI status and image thumbnails. The title links to the record;
// `link={false}` (trash, records still in the offline outbox) leaves it as plain text.
import { html } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';
import { formatDateTime, formatTime } from '../lib/format.js';
import { headingsFrom, renderMarkdown, sanitizeHighlight } from '../lib/markdown.js';
import { AttachmentImage } from './attachment-image.js';

const EXCERPT_CHARS = 280;
const MAX_THUMBS = 4;

/** The first line of Markdown as plain words (no heading marks, bullets, quotes). */
function firstLine(content) {
  const line = (content || '').split('\n').find((l) => l.trim()) || '';
  return line.replace(/^\s{0,3}(#{1,6}\s+|[-*+]\s+(\[[ xX]\]\s+)?|>\s*|\d+[.)]\s+)/, '').trim();
}

/** What to call a record: its title, else the AI's title, else its first line. */
export function recordTitle(record) {
  if (record.title && record.title.trim()) return record.title.trim();
  if (record.ai && record.ai.title) return record.ai.title;
  const line = firstLine(record.content);
  if (line) return line.length > 80 ? line.slice(0, 79) + '…' : line;
  return t('card.untitled');
}

/** The beginning of the content, cut at a line or word boundary, without the line used as title. */
export function excerpt(record, chars = EXCERPT_CHARS) {
  let text = (record.content || '').trim();
  // The first line already shown as the title is not repeated below it.
  const lines = text.split('\n');
  const index = lines.findIndex((l) => l.trim());
  const first = firstLine(text);
  const titledByFirstLine = !(record.title && record.title.trim()) && !(record.ai && record.ai.title);
  if (first && (titledByFirstLine || first === recordTitle(record))) {
    text = lines.slice(index + 1).join('\n').trim();
  }
  if (text.length <= chars) return text;
  let cut = text.slice(0, chars);
  const lineEnd = cut.lastIndexOf('\n');
  if (lineEnd > chars * 0.6) cut = cut.slice(0, lineEnd);
  else {
    const space = cut.lastIndexOf(' ');
    if (space > chars * 0.6) cut = cut.slice(0, space);
  }
  return cut.trimEnd() + ' …';
}

export function aiStatus(record) {
  if (record.ai_opt_out) return 'skipped';
  return (record.ai && record.ai.status) || 'pending';
}

export function AiBadge({ record }) {
  const status = aiStatus(record);
  return html`<span class=${'badge ai-badge ' + status}>${t(`ai.status.${status}`)}</span>`;
}

function attachmentKindLabel(attachment) {
  const type = attachment.content_type || '';
  if (type.startsWith('image/')) return t('card.attachment.image');
  if (type.startsWith('audio/')) return t('card.attachment.audio');
  if (type === 'application/pdf') return t('card.attachment.pdf');
  return t('card.attachment.file');
}

function Attachments({ attachments }) {
  if (!attachments || !attachments.length) return null;
  const thumbs = attachments.filter((a) => a.thumbnail_url).slice(0, MAX_THUMBS);
  const others = attachments.filter((a) => !thumbs.includes(a));
  return html`<div class="record-card-files">
    ${thumbs.length > 0 && html`<ul class="record-card-thumbs" aria-label=${t('card.attachments')}>
      ${thumbs.map((a) => html`<li key=${a.id}>
        <${AttachmentImage} url=${a.thumbnail_url} alt=${a.filename || t('card.attachment.image')} className="record-card-thumb" />
      </li>`)}
    </ul>`}
    ${others.length > 0 && html`<p class="record-card-others small muted">
      ${others.length === 1 ? attachmentKindLabel(others[0]) : t('card.moreFiles', { count: others.length })}
    </p>`}
  </div>`;
}

/**
 * `record`: the API's record (or an outbox item's data). Options: `headingLevel` (2–4, 3
 * by default), `timeOnly` (under a date header), `link` (false: no link), `highlight`
 * (the API's search highlight, sanitised here, shown instead of the excerpt), `badge` (replaces the AI
 * badge), `meta` (extra text after the time), `headingId` (to point actions at the title),
 * `children` (actions, below).
 */
export function RecordCard({ record, headingLevel = 3, headingId, timeOnly = false, link = true, highlight, badge, meta, children }) {
  const Heading = `h${headingLevel}`;
  const title = recordTitle(record);
  const text = highlight === undefined ? excerpt(record) : null;
  const when = record.occurred_at || record.created_at;
  return html`<article class=${'card record-card' + (link ? ' linked' : '')}>
    <div class="record-card-meta small">
      <span class="record-kind">${t(`kind.${record.kind || 'note'}`)}</span>
      ${when && html`<time datetime=${when}>${timeOnly ? formatTime(when) : formatDateTime(when)}</time>`}
      ${meta && html`<span class="muted">${meta}</span>`}
      <span class="record-card-badge">${badge || html`<${AiBadge} record=${record} />`}</span>
    </div>
    <${Heading} class="record-card-title" id=${headingId}>
      ${link ? html`<a href=${href(`/records/${encodeURIComponent(record.id)}`)}>${title}</a>` : title}
    </${Heading}>
    ${highlight !== undefined
      ? html`<p class="record-card-excerpt highlight" dangerouslySetInnerHTML=${{ __html: sanitizeHighlight(highlight) }}></p>`
      : text && html`<div class="record-card-excerpt markdown" dangerouslySetInnerHTML=${{ __html: headingsFrom(renderMarkdown(text), headingLevel + 1) }}></div>`}
    ${record.tags && record.tags.length > 0 && html`<ul class="tags">
      ${record.tags.map((tag) => html`<li key=${tag} class="tag">${tag}</li>`)}
    </ul>`}
    <${Attachments} attachments=${record.attachments} />
    ${children && html`<div class="record-card-actions actions">${children}</div>`}
  </article>`;
}
