// User content as HTML, only ever through the sanitiser: Markdown rendered with raw HTML
// off, then DOMPurify; the API's search highlights (escaped text with <mark>) reduced to
// exactly that. Everything else a user wrote goes into the DOM as text.
import markdownit from '../vendor/markdown-it.esm.min.mjs';

// DOMPurify's minified build is a classic script (index.html loads it before the app): half
// the size of its ES module build, which comes only unminified.
const { DOMPurify } = window;

const md = markdownit({ html: false, linkify: true, breaks: true });

/** An image the CSP lets load (`img-src 'self' data: blob:`): same origin, data: or blob:. */
function loadableImage(src) {
  try {
    const url = new URL(src, location.href);
    return url.protocol === 'data:' || url.protocol === 'blob:' || url.origin === location.origin;
  } catch {
    return false;
  }
}

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'nofollow noopener noreferrer');
  }
  if (node.tagName === 'IMG') {
    node.removeAttribute('srcset');
    const src = node.getAttribute('src') || '';
    if (loadableImage(src) || !node.parentNode) return;
    // A remote image would break the CSP (and tell another host who reads this): a link
    // to it instead (http(s) only), so nothing is requested.
    const link = node.ownerDocument.createElement('a');
    if (/^https?:\/\//i.test(src)) {
      link.setAttribute('href', src);
      link.setAttribute('target', '_blank');
      link.setAttribute('rel', 'nofollow noopener noreferrer');
    }
    link.textContent = node.getAttribute('alt') || src;
    node.parentNode.replaceChild(link, node);
  }
});

const MARKDOWN_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'],
  FORBID_ATTR: ['style'],
};

/** Safe HTML for a record's Markdown. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(md.render(text || ''), MARKDOWN_CONFIG);
}

/** Safe HTML for a search highlight: text with <mark> and nothing else. */
export function sanitizeHighlight(html) {
  return DOMPurify.sanitize(html || '', { ALLOWED_TAGS: ['mark'], ALLOWED_ATTR: [] });
}

/**
 * Sanitised HTML (from renderMarkdown) whose headings are moved so that the highest of them is
 * `top` (a record's "# Title" under the page's h1 becomes an h2), keeping their order.
 */
export function headingsFrom(safeHtml, top) {
  const levels = [...safeHtml.matchAll(/<h([1-6])[\s>]/gi)].map((m) => Number(m[1]));
  if (!levels.length) return safeHtml;
  const shift = top - Math.min(...levels);
  if (!shift) return safeHtml;
  return safeHtml.replace(/<(\/?)h([1-6])(?=[\s>])/gi, (_, slash, n) => `<${slash}h${Math.min(6, Number(n) + shift)}`);
}
