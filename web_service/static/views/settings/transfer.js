// Settings: export every record as a zip, and import such a zip back.
import { html, useEffect, useRef, useState } from '../../vendor/preact-htm.module.js';
import { ApiError, errorMessage, fetchAuthed, upload } from '../../lib/api.js';
import { formatSize } from '../../lib/format.js';
import { t } from '../../lib/i18n.js';
import { Section } from './shared.js';

/** The file name a Content-Disposition header gives, or a fallback. */
function fileNameOf(disposition) {
  const encoded = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition || '');
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1].trim());
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(disposition || '');
  return plain ? plain[1].trim() : 'jilu-export.zip';
}

/** Hand a blob to the browser as a download. */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function Progress({ id, label, fraction }) {
  const known = typeof fraction === 'number';
  return html`<div class="transfer-progress">
    <progress id=${id} aria-label=${label} max="1" value=${known ? fraction : undefined}></progress>
    <span class="small muted" aria-hidden="true">${known ? `${Math.round(fraction * 100)}%` : ''}</span>
  </div>`;
}

function ExportPart() {
  const [state, setState] = useState({ phase: 'idle' }); // idle | working | done | failed | cancelled
  const controller = useRef(null);
  useEffect(() => () => controller.current && controller.current.abort(), []);

  const run = async () => {
    const current = new AbortController();
    controller.current = current;
    setState({ phase: 'working', fraction: null, received: 0 });
    try {
      const response = await fetchAuthed('/api/v1/export', { signal: current.signal, headers: { Accept: 'application/zip' } });
      const name = fileNameOf(response.headers.get('content-disposition'));
      const total = Number(response.headers.get('content-length')) || 0;
      const chunks = [];
      let received = 0;
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.length;
        setState({ phase: 'working', name, received, fraction: total && received <= total ? received / total : null });
      }
      const blob = new Blob(chunks, { type: 'application/zip' });
      saveBlob(blob, name);
      setState({ phase: 'done', name, size: blob.size });
    } catch (error) {
      if (error.name === 'AbortError') setState({ phase: 'cancelled' });
      else setState({ phase: 'failed', error });
    } finally {
      controller.current = null;
    }
  };

  const working = state.phase === 'working';
  return html`<div class="transfer-part">
    <h3 class="settings-subheading">${t('settings.transfer.exportTitle')}</h3>
    <p class="muted small">${t('settings.transfer.exportIntro')}</p>
    <div class="actions">
      <button type="button" onClick=${run} disabled=${working} aria-busy=${working ? 'true' : undefined}>
        ${working && html`<span class="spinner" aria-hidden="true"></span>`}
        ${working ? t('settings.transfer.exporting') : t('settings.transfer.export')}</button>
      ${working && html`<button type="button" class="secondary" onClick=${() => controller.current && controller.current.abort()}>
        ${t('settings.transfer.cancelExport')}</button>`}
    </div>
    ${working && html`<${Progress} id="settings-export-progress" label=${t('settings.transfer.exportProgress')} fraction=${state.fraction} />`}
    <div role="status" aria-live="polite" class="transfer-status">
      ${working && state.received > 0 && html`<p class="small muted">${t('settings.transfer.received', { size: formatSize(state.received) })}</p>`}
      ${state.phase === 'done' && html`<p class="ok-text">${t('settings.transfer.exported', { name: state.name, size: formatSize(state.size) })}</p>`}
      ${state.phase === 'cancelled' && html`<p class="muted">${t('settings.transfer.exportCancelled')}</p>`}
    </div>
    ${state.phase === 'failed' && html`<div class="error-box" role="alert">
      <p>${t('settings.transfer.exportFailed', { message: errorMessage(state.error) })}</p>
      <button type="button" class="secondary" onClick=${run}>${t('common.retry')}</button>
    </div>`}
  </div>`;
}

/** Why an import was refused, in words that say what to do. */
function importError(error) {
  if (!(error instanceof ApiError)) return errorMessage(error);
  const detail = Array.isArray(error.detail) ? error.detail.map((p) => p.message || p.msg).join('; ') : error.detail;
  if (error.status === 413) return t('settings.transfer.tooLarge', { detail: detail || '' });
  if (error.status === 422 || error.status === 400) return t('settings.transfer.badArchive', { detail: detail || '' });
  if (error.status === 409) return t('settings.transfer.conflict');
  return errorMessage(error);
}

/** Whether sending the same file again may work (not when the archive itself was refused). */
const retryable = (error) => !(error instanceof ApiError) || error.isNetwork || error.status >= 500 || [409, 429].includes(error.status);

function ImportPart() {
  const [file, setFile] = useState(null);
  const [state, setState] = useState({ phase: 'idle' }); // idle | uploading | processing | done | failed | cancelled
  const [fileError, setFileError] = useState(null);
  const running = useRef(null);
  const input = useRef(null);
  useEffect(() => () => running.current && running.current.abort(), []);

  const start = async (event) => {
    event.preventDefault();
    if (!file) {
      setFileError(t('settings.transfer.chooseFirst'));
      if (input.current) input.current.focus();
      return;
    }
    setFileError(null);
    const form = new FormData();
    form.append('file', file, file.name);
    setState({ phase: 'uploading', fraction: 0 });
    const job = upload('/api/v1/import', form, {
      onProgress: (fraction) => setState(fraction >= 1 ? { phase: 'processing' } : { phase: 'uploading', fraction }),
    });
    running.current = job;
    try {
      const report = await job.promise;
      setState({ phase: 'done', report });
      setFile(null);
      if (input.current) input.current.value = '';
    } catch (error) {
      if (error.name === 'AbortError') setState({ phase: 'cancelled' });
      else setState({ phase: 'failed', error });
    } finally {
      running.current = null;
    }
  };

  const busy = state.phase === 'uploading' || state.phase === 'processing';
  const report = state.report;
  return html`<form class="transfer-part" onSubmit=${start} noValidate>
    <h3 class="settings-subheading">${t('settings.transfer.importTitle')}</h3>
    <p class="muted small">${t('settings.transfer.importIntro')}</p>
    <div class="field">
      <label for="settings-import-file">${t('settings.transfer.file')}</label>
      <input id="settings-import-file" ref=${input} type="file" accept=".zip,application/zip" disabled=${busy}
        aria-invalid=${fileError ? 'true' : undefined} aria-describedby=${fileError ? 'settings-import-file-error' : undefined}
        onChange=${(e) => { setFile(e.currentTarget.files[0] || null); setFileError(null); }} />
      ${fileError && html`<p class="field-error" id="settings-import-file-error">${fileError}</p>`}
    </div>
    <div class="actions">
      <button type="submit" disabled=${busy} aria-busy=${busy ? 'true' : undefined}>
        ${busy && html`<span class="spinner" aria-hidden="true"></span>`}
        ${busy ? t('settings.transfer.importing') : t('settings.transfer.import')}</button>
      ${state.phase === 'uploading' && html`<button type="button" class="secondary" onClick=${() => running.current && running.current.abort()}>
        ${t('settings.transfer.cancelImport')}</button>`}
    </div>
    ${state.phase === 'uploading' && html`<${Progress} id="settings-import-progress" label=${t('settings.transfer.importProgress')} fraction=${state.fraction} />`}
    ${state.phase === 'processing' && html`<${Progress} id="settings-import-progress" label=${t('settings.transfer.importProgress')} fraction=${null} />`}
    <div role="status" aria-live="polite" class="transfer-status">
      ${state.phase === 'processing' && html`<p class="small muted">${t('settings.transfer.processing')}</p>`}
      ${state.phase === 'cancelled' && html`<p class="muted">${t('settings.transfer.importCancelled')}</p>`}
      ${state.phase === 'done' && html`<div class="import-report">
        <p class="ok-text"><strong>${t('settings.transfer.imported')}</strong></p>
        <ul>
          <li>${t('settings.transfer.reportRecords', { count: report.records })}</li>
          <li>${t('settings.transfer.reportAttachments', { count: report.attachments })}</li>
          ${report.renamed > 0 && html`<li>${t('settings.transfer.reportRenamed', { count: report.renamed })}</li>`}
          ${report.skipped > 0 && html`<li>${t('settings.transfer.reportSkipped', { count: report.skipped })}</li>`}
        </ul>
      </div>`}
    </div>
    ${state.phase === 'failed' && html`<div class="error-box" role="alert">
      <p>${importError(state.error)}</p>
      ${file && retryable(state.error) && html`<button type="submit" class="secondary">${t('common.retry')}</button>`}
    </div>`}
  </form>`;
}

export function TransferSection() {
  return html`<${Section} id="transfer" title=${t('settings.transfer.title')}>
    <${ExportPart} />
    <${ImportPart} />
  <//>`;
}
