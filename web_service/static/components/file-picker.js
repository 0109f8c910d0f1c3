// Files chosen for a record before they are uploaded: images by picker, drag-and-drop
// or paste, audio by picker; each previewed (an object URL) and removable.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { formatSize } from '../lib/format.js';

let nextKey = 1;

/** A chosen file with its preview URL. Call `releaseFiles` when done with them. */
export function pickedFile(file) {
  return { key: `f${nextKey++}`, file, url: URL.createObjectURL(file) };
}

export function releaseFiles(files) {
  for (const item of files) URL.revokeObjectURL(item.url);
}

/** Pasted images come as "image.png": give each its own name. */
function namePasted(file) {
  const extension = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
  return new File([file], `pasted-${stamp}.${extension}`, { type: file.type });
}

const takeable = (file) => file.type.startsWith('image/') || file.type.startsWith('audio/');

/**
 * Drag-and-drop and paste of files onto the element in `ref`: `onFiles(files)` gets images
 * and audio; other data (plain text pasted into a field) is left alone. Answers whether
 * something is being dragged over it.
 */
export function useFileDrop(ref, onFiles, enabled = true) {
  const [dragging, setDragging] = useState(false);
  const handler = useRef(onFiles);
  handler.current = onFiles;
  useEffect(() => {
    const element = ref.current;
    if (!element || !enabled) return undefined;
    let depth = 0;
    const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes('Files');
    const enter = (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      setDragging(true);
    };
    const leave = (event) => {
      if (!hasFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) setDragging(false);
    };
    const over = (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
    };
    const drop = (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      setDragging(false);
      const files = [...event.dataTransfer.files].filter(takeable);
      if (files.length) handler.current(files);
    };
    const paste = (event) => {
      const files = [...((event.clipboardData && event.clipboardData.files) || [])].filter(takeable);
      if (!files.length) return;
      event.preventDefault();
      handler.current(files.map(namePasted));
    };
    element.addEventListener('dragenter', enter);
    element.addEventListener('dragleave', leave);
    element.addEventListener('dragover', over);
    element.addEventListener('drop', drop);
    element.addEventListener('paste', paste);
    return () => {
      element.removeEventListener('dragenter', enter);
      element.removeEventListener('dragleave', leave);
      element.removeEventListener('dragover', over);
      element.removeEventListener('drop', drop);
      element.removeEventListener('paste', paste);
    };
  }, [ref, enabled]);
  return dragging;
}

function Preview({ item }) {
  const { file, url } = item;
  if (file.type.startsWith('image/')) return html`<img class="file-preview-image" src=${url} alt=${file.name} />`;
  if (file.type.startsWith('audio/')) {
    return html`<audio class="file-preview-audio" controls preload="metadata" src=${url} aria-label=${file.name}></audio>`;
  }
  return html`<span class="file-preview-icon" aria-hidden="true">📄</span>`;
}

/** The pickers (a label styled as a button over a real file input) and the previews. */
export function FilePicker({ idPrefix, files, onAdd, onRemove, dragging, disabled }) {
  const choose = (event) => {
    const chosen = [...event.currentTarget.files];
    event.currentTarget.value = ''; // picking the same file again still fires
    if (chosen.length) onAdd(chosen);
  };
  return html`<div class=${'file-picker' + (dragging ? ' dragging' : '')}>
    <div class="file-picker-buttons">
      <span class="file-button">
        <input id=${`${idPrefix}-images`} class="visually-hidden" type="file" accept="image/*" multiple
          disabled=${disabled} onChange=${choose} />
        <label for=${`${idPrefix}-images`} class="button secondary">${t('files.addImages')}</label>
      </span>
      <span class="file-button">
        <input id=${`${idPrefix}-audio`} class="visually-hidden" type="file" accept="audio/*" multiple
          disabled=${disabled} onChange=${choose} />
        <label for=${`${idPrefix}-audio`} class="button secondary">${t('files.addAudio')}</label>
      </span>
      <span class="hint small muted">${t('files.dropHint')}</span>
    </div>
    ${files.length > 0 && html`<ul class="file-previews" aria-label=${t('files.chosen')}>
      ${files.map((item) => html`<li key=${item.key} class="file-preview">
        <${Preview} item=${item} />
        <span class="file-preview-name small">${item.file.name} <span class="muted">${formatSize(item.file.size)}</span></span>
        <button type="button" class="secondary small-button" disabled=${disabled}
          aria-label=${t('files.remove', { name: item.file.name })} onClick=${() => onRemove(item.key)}>${t('files.removeShort')}</button>
      </li>`)}
    </ul>`}
  </div>`;
}
